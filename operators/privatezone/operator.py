"""The PrivateZone operator's entry module: it only registers handlers.

    kopf run --standalone --all-namespaces -m operators.privatezone.operator
"""
import kopf

from .. import GROUP, VERSION, kopfsettings
from .handlers import handle_delete_zone, handle_ensure_zone, handle_startup

RESOURCE = (GROUP, VERSION, "privatezones")

kopf.on.login()(kopfsettings.login)
kopf.on.startup()(handle_startup.start)

kopf.on.create(*RESOURCE, id="zone", when=kopfsettings.owns)(handle_ensure_zone.ensure_zone)
kopf.on.resume(*RESOURCE, id="zone", when=kopfsettings.owns)(handle_ensure_zone.ensure_zone)
kopf.on.update(*RESOURCE, id="zone", when=kopfsettings.owns, field="spec")(handle_ensure_zone.ensure_zone)
kopf.on.delete(*RESOURCE, id="delete-zone", when=kopfsettings.owns)(handle_delete_zone.delete_zone)
