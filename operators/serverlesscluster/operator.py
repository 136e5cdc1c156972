"""The ServerlessCluster operator's entry module: it only registers handlers.

    kopf run --standalone --all-namespaces -m operators.serverlesscluster.operator
"""
import kopf

from .. import GROUP, VERSION, kopfsettings
from ..models.contracts import ANNOTATION_POWER_REQUEST
from .handlers import (handle_check_cluster, handle_create_cluster, handle_delete_cluster, handle_sleep_cluster,
                       handle_startup)

RESOURCE = (GROUP, VERSION, "serverlessclusters")

kopf.on.login()(kopfsettings.login)
kopf.on.startup()(handle_startup.start)
kopf.on.cleanup()(handle_startup.stop)

kopf.on.create(*RESOURCE, id="controlplane", backoff=5)(handle_create_cluster.ensure_cluster)
kopf.on.resume(*RESOURCE, id="controlplane", backoff=5)(handle_create_cluster.ensure_cluster)
kopf.timer(*RESOURCE, id="health", interval=10, initial_delay=10, idle=5)(handle_check_cluster.check_cluster)
kopf.on.update(*RESOURCE, id="power-request", annotations={ANNOTATION_POWER_REQUEST: kopf.PRESENT})(
    handle_sleep_cluster.power_request)
kopf.on.delete(*RESOURCE, id="delete-controlplane", backoff=5)(handle_delete_cluster.delete_cluster)
