"""The SandboxPod operator's entry module: it only registers handlers.

    kopf run --standalone --all-namespaces -m operators.sandboxpod.operator
"""
import kopf

from .. import GROUP, VERSION
from .handlers import handle_create_sandboxpod, handle_delete_sandboxpod, handle_startup

RESOURCE = (GROUP, VERSION, "sandboxpods")

kopf.on.startup()(handle_startup.start)
kopf.on.cleanup()(handle_startup.stop)

kopf.on.create(*RESOURCE, id="sandbox")(handle_create_sandboxpod.ensure_sandbox)
kopf.on.resume(*RESOURCE, id="sandbox")(handle_create_sandboxpod.ensure_sandbox)
kopf.on.delete(*RESOURCE, id="sandbox")(handle_delete_sandboxpod.delete_sandbox)
