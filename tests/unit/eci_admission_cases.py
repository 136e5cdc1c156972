"""Tenant pods and the fields ECI cannot express in them: one pod per refusal of
operators/providers/aliyun/eci_unsupported.py, and pods ECI runs as they are.

The same cases go through eci_unsupported (on the SandboxPod the virtual node makes of the
pod: tests/unit/test_eci_admission.py) and through the tenant's admission with the
sk8s-compatibility-aliyun policy (tests/e2e/test_aliyun_cluster.py), so both judge alike.
Every pod passes the provider-independent compatibility policy: what is refused is ECI's.
"""
from __future__ import annotations

IMAGE = "docker.io/library/busybox:1.36"
EXEC = {"exec": {"command": ["true"]}}
# A ConfigMap the virtual node reads for env valueFrom (resolved before ECI sees the env).
CONFIGMAPS = {"cfg": {"data": {"k": "v"}}}


def app(**extra) -> dict:
    return {"name": "app", "image": IMAGE, "command": ["sleep", "3600"], **extra}


def init(**extra) -> dict:
    return {"name": "init", "image": IMAGE, "command": ["true"], **extra}


def spec(container: dict | None = None, **extra) -> dict:
    return {"containers": [container or app()], **extra}


def _many(n: int, make) -> list[dict]:
    return [make(name=f"{make.__name__}{i}") for i in range(n)]


# (case id, pod spec, the field paths refused)
REFUSED: list[tuple[str, dict, set[str]]] = [
    ("startup-probe", spec(app(startupProbe=EXEC)), {"spec.containers[0].startupProbe"}),
    ("sctp", spec(app(ports=[{"containerPort": 80, "protocol": "SCTP"}])), {"spec.containers[0].ports[0].protocol"}),
    ("env-name", spec(app(env=[{"name": "a.b", "value": "x"}])), {"spec.containers[0].env[0].name"}),
    ("subpathexpr", spec(app(volumeMounts=[{"name": "d", "mountPath": "/d", "subPathExpr": "$(HOSTNAME)"}]),
                         volumes=[{"name": "d", "emptyDir": {}}]), {"spec.containers[0].volumeMounts[0].subPathExpr"}),
    ("log-fallback", spec(app(terminationMessagePolicy="FallbackToLogsOnError")),
     {"spec.containers[0].terminationMessagePolicy"}),
    ("cap-add", spec(app(securityContext={"capabilities": {"add": ["IPC_LOCK"]}})),
     {"spec.containers[0].securityContext.capabilities.add"}),
    ("cap-drop", spec(app(securityContext={"capabilities": {"drop": ["ALL"]}})),
     {"spec.containers[0].securityContext.capabilities.drop"}),
    ("no-new-privs", spec(app(securityContext={"allowPrivilegeEscalation": False})),
     {"spec.containers[0].securityContext.allowPrivilegeEscalation"}),
    ("seccomp", spec(app(securityContext={"seccompProfile": {"type": "RuntimeDefault"}})),
     {"spec.containers[0].securityContext.seccompProfile"}),
    ("apparmor", spec(app(securityContext={"appArmorProfile": {"type": "RuntimeDefault"}})),
     {"spec.containers[0].securityContext.appArmorProfile"}),
    ("fsgroup", spec(securityContext={"fsGroup": 1000}), {"spec.securityContext.fsGroup"}),
    ("supplemental-groups", spec(securityContext={"supplementalGroups": [1000]}),
     {"spec.securityContext.supplementalGroups"}),
    ("pod-seccomp", spec(securityContext={"seccompProfile": {"type": "RuntimeDefault"}}),
     {"spec.securityContext.seccompProfile"}),
    ("pod-apparmor", spec(securityContext={"appArmorProfile": {"type": "RuntimeDefault"}}),
     {"spec.securityContext.appArmorProfile"}),
    ("sysctl", spec(securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"},
                                                 {"name": "kernel.shm_rmid_forced", "value": "1"}]}),
     {"spec.securityContext.sysctls[1]"}),
    ("syncookies", spec(securityContext={"sysctls": [{"name": "net/ipv4/tcp_syncookies", "value": "1"}]}),
     {"spec.securityContext.sysctls[0]"}),
    ("grpc-probe", spec(app(readinessProbe={"grpc": {"port": 9090}})), {"spec.containers[0].readinessProbe.grpc"}),
    ("probe-headers", spec(app(livenessProbe={"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "z"}]}})),
     {"spec.containers[0].livenessProbe.httpGet.httpHeaders"}),
    ("probe-http-host", spec(app(readinessProbe={"httpGet": {"port": 80, "host": "127.0.0.1"}})),
     {"spec.containers[0].readinessProbe.httpGet.host"}),
    ("probe-tcp-host", spec(app(livenessProbe={"tcpSocket": {"port": 80, "host": "localhost"}})),
     {"spec.containers[0].livenessProbe.tcpSocket.host"}),
    ("probe-success", spec(app(readinessProbe={**EXEC, "successThreshold": 2})),
     {"spec.containers[0].readinessProbe.successThreshold"}),
    ("probe-grace", spec(app(livenessProbe={**EXEC, "terminationGracePeriodSeconds": 5})),
     {"spec.containers[0].livenessProbe.terminationGracePeriodSeconds"}),
    ("sleep-poststart", spec(app(lifecycle={"postStart": {"sleep": {"seconds": 1}}})),
     {"spec.containers[0].lifecycle.postStart.sleep"}),
    ("sleep-prestop", spec(app(lifecycle={"preStop": {"sleep": {"seconds": 1}}})),
     {"spec.containers[0].lifecycle.preStop.sleep"}),
    ("second-container", {"containers": [app(), app(name="b", startupProbe=EXEC)]},
     {"spec.containers[1].startupProbe"}),
    ("sidecar", spec(initContainers=[init(restartPolicy="Always")]), {"spec.initContainers[0].restartPolicy"}),
    ("init-tty", spec(initContainers=[init(tty=True)]), {"spec.initContainers[0].tty"}),
    ("init-stdin", spec(initContainers=[init(stdin=True)]), {"spec.initContainers[0].stdin"}),
    ("init-sctp", spec(initContainers=[init(ports=[{"containerPort": 81, "protocol": "SCTP"}])]),
     {"spec.initContainers[0].ports[0].protocol"}),
    ("init-run-as-group", spec(initContainers=[init(securityContext={"runAsGroup": 1000})]),
     {"spec.initContainers[0].securityContext.runAsGroup"}),
    ("init-pod-run-as-group", spec(initContainers=[init()], securityContext={"runAsGroup": 0}),
     {"spec.securityContext.runAsGroup"}),
    ("init-run-as-non-root", spec(initContainers=[init(securityContext={"runAsNonRoot": True, "runAsUser": 1000})]),
     {"spec.initContainers[0].securityContext.runAsNonRoot"}),
    ("init-pod-run-as-non-root", spec(initContainers=[init()], securityContext={"runAsNonRoot": True,
                                                                               "runAsUser": 1000}),
     {"spec.securityContext.runAsNonRoot"}),
    ("containers-21", {"containers": _many(21, app)}, {"spec.containers"}),
    ("init-containers-21", spec(initContainers=_many(21, init)), {"spec.initContainers"}),
    ("volumes-21", spec(volumes=[{"name": f"v{i}", "emptyDir": {}} for i in range(21)]), {"spec.volumes"}),
]

ACCEPTED: list[tuple[str, dict]] = [
    ("plain", spec()),
    ("what-eci-expresses", spec(
        app(env=[{"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                 {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "_x1", "value": "z"}],
            ports=[{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
            readinessProbe={"httpGet": {"port": 80, "path": "/"}, "successThreshold": 1},
            livenessProbe={"tcpSocket": {"port": 80}},
            lifecycle={"postStart": EXEC, "preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
            volumeMounts=[{"name": "d", "mountPath": "/d", "subPath": "x"}],
            securityContext={"capabilities": {"add": ["NET_RAW", "CAP_CHOWN"]}, "runAsUser": 1000, "runAsGroup": 1000,
                             "runAsNonRoot": True, "readOnlyRootFilesystem": True,
                             "allowPrivilegeEscalation": True}),
        volumes=[{"name": "d", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
        securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"},
                                     {"name": "net.ipv4.ping_group_range", "value": "0 1000"}]})),
    # runAsNonRoot false and the pod's runAsUser are nothing init containers must express.
    ("init-containers", spec(initContainers=[init(securityContext={"runAsUser": 1000})],
                             securityContext={"runAsNonRoot": False, "runAsUser": 1000})),
    ("twenty", {"containers": _many(20, app), "initContainers": _many(20, init),
                "volumes": [{"name": f"v{i}", "emptyDir": {}} for i in range(19)]}),
]
