"""The ServiceLB operator's entry module: it only registers handlers.

    kopf run --standalone --all-namespaces -m operators.servicelb.operator
"""
import kopf

from .. import GROUP, VERSION, kopfsettings
from .handlers import handle_delete_servicelb, handle_ensure_servicelb, handle_report_health, handle_startup

RESOURCE = (GROUP, VERSION, "servicelbs")

kopf.on.login()(kopfsettings.login)
kopf.on.startup()(handle_startup.start)

kopf.on.create(*RESOURCE, id="lb", when=kopfsettings.owns)(handle_ensure_servicelb.ensure_lb)
kopf.on.resume(*RESOURCE, id="lb", when=kopfsettings.owns)(handle_ensure_servicelb.ensure_lb)
kopf.on.update(*RESOURCE, id="lb", when=kopfsettings.owns, field="spec")(handle_ensure_servicelb.ensure_lb)
kopf.on.delete(*RESOURCE, id="delete-lb", when=kopfsettings.owns)(handle_delete_servicelb.delete_lb)
kopf.daemon(*RESOURCE, id="health", when=kopfsettings.owns, cancellation_timeout=1.0)(handle_report_health.report_health)
