"""The SandboxPod operator's entry module: it only registers handlers.

    kopf run --standalone --all-namespaces -m operators.sandboxpod.operator
"""
import kopf

from .. import GROUP, VERSION, kopfsettings
from ..models.contracts import LABEL_VOLUME_CONTENT
from .ownership import takes
from .handlers import (handle_create_sandboxpod, handle_delete_sandboxpod, handle_ephemeral_containers,
                       handle_startup, handle_update_images, handle_update_volumecontent)

RESOURCE = (GROUP, VERSION, "sandboxpods")

kopf.on.login()(kopfsettings.login)
kopf.on.startup()(handle_startup.start)
kopf.on.cleanup()(handle_startup.stop)

kopf.on.create(*RESOURCE, id="sandbox", when=takes)(handle_create_sandboxpod.ensure_sandbox)
kopf.on.resume(*RESOURCE, id="sandbox", when=takes)(handle_create_sandboxpod.ensure_sandbox)
kopf.on.update(*RESOURCE, id="ephemeral", when=takes)(
    handle_ephemeral_containers.add_ephemeral_containers)
kopf.on.update(*RESOURCE, id="images", when=takes)(handle_update_images.change_images)
kopf.on.delete(*RESOURCE, id="delete-sandbox", when=takes)(handle_delete_sandboxpod.delete_sandbox)
kopf.on.event("v1", "secrets", labels={LABEL_VOLUME_CONTENT: "true"})(
    handle_update_volumecontent.update_volume_content)
