"""Tenant Pod <-> SandboxPod mapping (pure functions, no I/O).

`build_sandboxpod` turns a bound tenant pod (with its environment already resolved) into
the SandboxPod that runs it; `pod_status_from_sandbox` turns the SandboxPod's status back
into the tenant pod's, as a kubelet would report it.
"""
from __future__ import annotations

import hashlib
import re

from ... import API_VERSION
from ...conditions import now_rfc3339
from ...models.contracts import (ANNOTATION_POD_NAME, ANNOTATION_POD_NAMESPACE, CLUSTER_DOMAIN,
                                 CONDITION_CONTAINERS_READY, CONDITION_INITIALIZED, LABEL_CLUSTER, LABEL_CLUSTER_UID,
                                 LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID)
from .volumes import add_volumes, unsupported_volumes

MAX_NAME = 253
MAX_LABEL = 63
MAX_GRACE = 3600  # the SandboxPod schema's bound
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Container fields the SandboxPod schema has, copied as they are (the apiserver prunes
# anything else, and the spec is immutable once created, so nothing else is sent).
_CONTAINER_FIELDS = ("workingDir", "imagePullPolicy", "tty", "stdin", "restartPolicy",
                     # Modelled field for field (models/securitycontext.py): honoured or refused there.
                     "securityContext")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def sandboxpod_name(namespace: str, name: str) -> str:
    """`<namespace>.<name>`: deterministic, so a restart never creates a second one."""
    full = f"{namespace}.{name}"
    if len(full) <= MAX_NAME:
        return full
    return full[:MAX_NAME - 11].rstrip(".-") + "-" + _short_hash(full)


def label_value(text: str) -> str:
    if len(text) <= MAX_LABEL and _LABEL_VALUE.match(text):
        return text
    head = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:MAX_LABEL - 11].strip("-_.")
    return (head + "-" if head else "") + _short_hash(text)


def hostname_of(pod: dict) -> str:
    """As the kubelet: spec.hostname, else the pod name cut to a DNS label."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    if spec.get("hostname"):
        return spec["hostname"]
    name = meta.get("name", "")[:MAX_LABEL].rstrip("-.")
    if _DNS_LABEL.match(name):
        return name
    return name.replace(".", "-").rstrip("-") or "pod"


def _container(c: dict, env: list[dict] | None) -> dict:
    from .envresolve import expand_command  # local: keeps this module's import graph flat
    out: dict = {"name": c["name"], "image": c["image"]}
    env = env or []
    if c.get("command") is not None:
        out["command"] = expand_command(c["command"], env)
    if c.get("args") is not None:
        out["args"] = expand_command(c["args"], env)
    for f in _CONTAINER_FIELDS:
        if c.get(f) is not None:
            out[f] = c[f]
    if env:
        out["env"] = env
    ports = []
    for p in c.get("ports") or []:
        port = {"containerPort": p["containerPort"], "protocol": p.get("protocol") or "TCP"}
        if p.get("name") and _PORT_NAME.match(p["name"]) and len(p["name"]) <= 15:
            port["name"] = p["name"]
        ports.append(port)
    if ports:
        out["ports"] = ports
    res = c.get("resources") or {}
    resources = {k: dict(res[k]) for k in ("limits", "requests") if res.get(k)}
    if resources:
        out["resources"] = resources
    for kind in _PROBES:
        probe = _probe(c.get(kind))
        if probe:
            out[kind] = probe
    return out


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket")
_PROBE_TIMING = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
                 "terminationGracePeriodSeconds")


def _probe(p: dict | None) -> dict | None:
    """A probe the sandbox runs (exec, httpGet, tcpSocket); None for others (grpc)."""
    if not p:
        return None
    handler = next((h for h in _PROBE_HANDLERS if p.get(h)), None)
    if handler is None:
        return None
    action = dict(p[handler])
    if handler == "httpGet":
        action = {k: v for k, v in action.items() if k in ("path", "port", "host", "scheme", "httpHeaders")}
    elif handler == "tcpSocket":
        action = {k: v for k, v in action.items() if k in ("port", "host")}
    else:
        action = {"command": list(action.get("command") or [])}
    out = {handler: action}
    for k in _PROBE_TIMING:
        if p.get(k) is not None and int(p[k]) >= (0 if k == "initialDelaySeconds" else 1):
            out[k] = int(p[k])
    return out


def pod_dns(pod: dict) -> dict:
    """dnsPolicy/dnsConfig of the sandbox, as the kubelet builds resolv.conf: ClusterFirst
    searches the pod's namespace, then the cluster's, with ndots:5."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    cfg = spec.get("dnsConfig") or {}
    searches, options = [], []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        policy = "ClusterFirst"
        ns = pod["metadata"]["namespace"]
        searches = [f"{ns}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options = [{"name": "ndots", "value": "5"}]
    searches += [d for d in cfg.get("searches") or [] if d not in searches]
    names = {o.get("name") for o in cfg.get("options") or []}
    options = [o for o in options if o["name"] not in names] + [
        {k: v for k, v in o.items() if k in ("name", "value") and v is not None} for o in cfg.get("options") or []]
    out: dict = {"dnsPolicy": policy if policy in ("ClusterFirst", "Default", "None") else "ClusterFirst"}
    dns_config = {k: v for k, v in (("nameservers", list(cfg.get("nameservers") or [])[:3]),
                                    ("searches", searches[:32]), ("options", options[:16])) if v}
    if dns_config:
        out["dnsConfig"] = dns_config
    return out


def sandbox_labels(pod: dict, *, cluster: str, cluster_uid: str) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        LABEL_CLUSTER: label_value(cluster),
        LABEL_CLUSTER_UID: label_value(cluster_uid),
        LABEL_POD_NAMESPACE: label_value(meta["namespace"]),
        LABEL_POD_NAME: label_value(meta["name"]),
        LABEL_POD_UID: label_value(meta["uid"]),
    }


def build_sandboxpod(pod: dict, *, namespace: str, cluster: str, cluster_uid: str,
                     env: dict[str, list[dict]]) -> dict:
    """The SandboxPod for a tenant pod; `env` maps container names to resolved environments."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    grace = spec.get("terminationGracePeriodSeconds")
    sb_spec: dict = {
        "containers": [_container(c, env.get(c["name"])) for c in spec.get("containers") or []],
        **({"initContainers": [_container(c, env.get(c["name"])) for c in spec["initContainers"]]}
           if spec.get("initContainers") else {}),
        "restartPolicy": spec.get("restartPolicy") or "Always",
        "terminationGracePeriodSeconds": min(max(int(30 if grace is None else grace), 0), MAX_GRACE),
        "hostname": hostname_of(pod),
        "clusterRef": {"name": cluster},
    }
    if spec.get("activeDeadlineSeconds"):
        sb_spec["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    for f in ("securityContext", "hostUsers"):
        if spec.get(f) is not None:
            sb_spec[f] = spec[f]
    sb_spec.update(pod_dns(pod))
    aliases = [{"ip": a["ip"], **({"hostnames": list(a["hostnames"])} if a.get("hostnames") else {})}
               for a in spec.get("hostAliases") or [] if a.get("ip")]
    if aliases:
        sb_spec["hostAliases"] = aliases  # the pod's /etc/hosts lines (providers/local/spec.py)
    add_volumes(sb_spec, pod)
    return {
        "apiVersion": API_VERSION,
        "kind": "SandboxPod",
        "metadata": {
            "name": sandboxpod_name(meta["namespace"], meta["name"]),
            "namespace": namespace,
            "labels": sandbox_labels(pod, cluster=cluster, cluster_uid=cluster_uid),
            "annotations": {ANNOTATION_POD_NAMESPACE: meta["namespace"], ANNOTATION_POD_NAME: meta["name"]},
        },
        "spec": sb_spec,
    }


_SA_TOKEN_VOLUME = "kube-api-access-"
_SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_CONTAINER_EXTRAS = ("lifecycle",)


def dropped_fields(pod: dict) -> list[str]:
    """Pod fields a SandboxPod cannot carry yet, so that the user is told rather than
    finding out. The service-account token volume every pod gets is not worth a warning."""
    spec = pod.get("spec") or {}
    out = []
    vols = unsupported_volumes(pod, _SA_TOKEN_VOLUME)
    if vols:
        out.append(f"volumes [{' '.join(vols)}]")
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        extras = [f for f in _CONTAINER_EXTRAS if c.get(f)]
        extras += [f"{k}.grpc" for k in _PROBES if c.get(k) and _probe(c[k]) is None]
        extras += [f"securityContext.{k}" for k in _unmodelled(c.get("securityContext"), pod_level=False)]
        if any(m.get("name") in vols for m in c.get("volumeMounts") or []):
            extras.append("volumeMounts")
        if extras:
            out.append(f"container {c['name']}: {', '.join(extras)}")
    out += [f"securityContext.{k}" for k in _unmodelled(spec.get("securityContext"), pod_level=True)]
    return out


def _unmodelled(sc: dict | None, *, pod_level: bool) -> list[str]:
    """securityContext fields of a newer API than the SandboxPod schema knows: it would
    prune them, so they are named (every field of this version is modelled)."""
    from ...models.securitycontext import PodSecurityContext, SecurityContext  # local: flat import graph
    known = (PodSecurityContext if pod_level else SecurityContext).model_fields
    return [k for k in sc or {} if k not in known]


def pod_uid_of(sbp: dict) -> str | None:
    return ((sbp.get("metadata") or {}).get("labels") or {}).get(LABEL_POD_UID)


# --- status: SandboxPod -> tenant pod ------------------------------------------------

def qos_class(pod: dict) -> str:
    """Guaranteed, Burstable or BestEffort, by the apiserver's rules (pkg/apis/core/helper/qos)."""
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits = {k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        requests = {k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        if limits or requests:
            any_set = True
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
            continue
        for k, v in requests.items():
            if _quantity_neq(v, limits[k]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _quantity_neq(a, b) -> bool:
    from ...quantity import parse
    try:
        return parse(a) != parse(b)
    except ValueError:
        return str(a) != str(b)


def _condition(type_: str, status: str, prev: dict[str, dict], now: str, reason: str | None = None,
               message: str | None = None, since: str | None = None) -> dict:
    old = prev.get(type_)
    if old and old.get("status") == status and old.get("lastTransitionTime"):
        since = old["lastTransitionTime"]
    cond = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": since or now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _sbp_condition(sb_status: dict, type_: str) -> dict:
    return next((c for c in sb_status.get("conditions") or [] if c.get("type") == type_), {})


def pod_ident(pod: dict) -> str:
    """The kubelet's format.Pod, as its messages name a pod: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def tenant_message(text: str, sbp: dict | None, pod: dict) -> str:
    """A message of the sandbox's kubelet, naming the tenant pod instead of the SandboxPod."""
    if not text or not sbp:
        return text
    return text.replace(pod_ident(sbp), pod_ident(pod))


def _tenant_state(state: dict, sbp: dict | None, pod: dict) -> dict:
    waiting = state.get("waiting")
    if waiting and waiting.get("message"):
        return {**state, "waiting": {**waiting, "message": tenant_message(waiting["message"], sbp, pod)}}
    return state


def _container_statuses(pod: dict, sb_status: dict, waiting: dict | None, sbp: dict | None = None, *,
                        init: bool = False) -> list[dict]:
    key = "initContainerStatuses" if init else "containerStatuses"
    by_name = {c.get("name"): c for c in sb_status.get(key) or []}
    before = {c.get("name"): c for c in (pod.get("status") or {}).get(key) or []}
    spec = pod.get("spec") or {}
    # Before the sandbox reports, a pod with init containers is initializing, as upstream shows it.
    default = {"reason": "PodInitializing"} if spec.get("initContainers") else {"reason": "ContainerCreating"}
    out = []
    for c in spec.get("initContainers" if init else "containers") or []:
        src = by_name.get(c["name"])
        if src is None or waiting is not None:
            old = before.get(c["name"]) or {}
            st = {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "started": False,
                  "restartCount": old.get("restartCount", 0),
                  "state": {"waiting": waiting or default}}
            st["lastState"] = old.get("lastState") or {}
            out.append(st)
            continue
        state = src.get("state") or {"waiting": {"reason": "ContainerCreating"}}
        st = {
            "name": c["name"],
            "image": c["image"],  # as the pod spec says it, like the kubelet reports it
            "imageID": src.get("imageID") or "",
            "ready": bool(src.get("ready")),
            "started": bool(src.get("started")) if src.get("started") is not None else "running" in state,
            "restartCount": int(src.get("restartCount") or 0),
            "state": _tenant_state(state, sbp, pod),
        }
        if src.get("containerID"):
            st["containerID"] = src["containerID"]
        st["lastState"] = src.get("lastState") or {}  # the API always shows it, if only as {}
        out.append(st)
    return out


def pod_status_from_sandbox(pod: dict, sbp: dict | None, *, config_error: str | None = None,
                            now: str | None = None) -> dict:
    """The tenant pod's status fields that the virtual node owns.

    `sbp` None means no SandboxPod yet: the pod is Pending, its containers are
    ContainerCreating, or CreateContainerConfigError with `config_error` as message.
    Fields absent from the SandboxPod come out as None, so a merge patch clears them.
    """
    now = now or now_rfc3339()
    cur = pod.get("status") or {}
    prev = {c.get("type"): c for c in cur.get("conditions") or []}
    sb = (sbp or {}).get("status") or {}
    waiting = {"reason": "CreateContainerConfigError", "message": config_error} if config_error else None

    phase = sb.get("phase") or "Pending"
    if waiting is not None:
        phase = "Pending"
    if cur.get("phase") in ("Succeeded", "Failed"):
        phase = cur["phase"]  # a terminal phase never changes (the apiserver would refuse)
    statuses = _container_statuses(pod, sb, waiting, sbp)
    init_statuses = _container_statuses(pod, sb, waiting, sbp, init=True)
    init_names = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    sb_init = _sbp_condition(sb, CONDITION_INITIALIZED)
    if not init_names or (sb_init.get("status") == "True" and waiting is None):
        initialized = _condition("Initialized", "True", prev, now)
    else:
        pending = [s["name"] for s in init_statuses if not s["ready"]] or init_names
        initialized = _condition("Initialized", "False", prev, now, "ContainersNotInitialized",
                                 f"containers with incomplete status: [{' '.join(pending)}]")

    containers_ready = bool(statuses) and all(s["ready"] for s in statuses) and phase == "Running"
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    if containers_ready:
        cr = _condition("ContainersReady", "True", prev, now,
                        since=_sbp_condition(sb, CONDITION_CONTAINERS_READY).get("lastTransitionTime"))
    elif phase in ("Succeeded", "Failed"):
        cr = _condition("ContainersReady", "False", prev, now, "PodCompleted")
    else:
        cr = _condition("ContainersReady", "False", prev, now, "ContainersNotReady",
                        f"containers with unready status: [{' '.join(not_ready)}]")
    # Readiness gates are conditions other controllers set: Ready waits for them too.
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    missing = [g for g in gates if (prev.get(g) or {}).get("status") != "True"]
    if containers_ready and not missing:
        ready = _condition("Ready", "True", prev, now, since=cr["lastTransitionTime"])
    elif containers_ready:
        ready = _condition("Ready", "False", prev, now, "ReadinessGatesNotReady",
                           f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist.")
    else:
        ready = dict(_condition("Ready", "False", prev, now, cr.get("reason"), cr.get("message")))

    ours = [
        _condition("PodReadyToStartContainers", "True" if sb.get("podIP") else "False", prev, now),
        initialized,
        ready,
        cr,
        _condition("PodScheduled", "True", prev, now),
    ]
    if phase in ("Succeeded", "Failed") and not sb.get("podIP"):
        ours[0]["status"] = "False"
    mine = {c["type"] for c in ours}
    conditions = ours + [c for c in cur.get("conditions") or [] if c.get("type") not in mine]

    pod_ip, host_ip = sb.get("podIP"), sb.get("hostIP")
    if not pod_ip and phase in ("Succeeded", "Failed"):
        pod_ip = cur.get("podIP")  # keep the last known address of a finished pod
    if not host_ip:
        host_ip = cur.get("hostIP")
    status = {
        "phase": phase,
        "conditions": conditions,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}] if pod_ip else None,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else None,
        "startTime": cur.get("startTime") or sb.get("startTime") or now,
        "containerStatuses": statuses,
        "initContainerStatuses": init_statuses or None,
        "qosClass": cur.get("qosClass") or qos_class(pod),
        "reason": None,
        "message": None,
    }
    if phase in ("Failed", "Succeeded") and sb.get("reason") and cur.get("phase") not in ("Succeeded", "Failed"):
        status["reason"], status["message"] = sb.get("reason"), sb.get("message")
    elif cur.get("phase") in ("Succeeded", "Failed"):
        status["reason"], status["message"] = cur.get("reason"), cur.get("message")
    return status


def lost_status(pod: dict, message: str, now: str | None = None) -> dict:
    """The pod's sandbox vanished: Failed, so that its controller replaces it."""
    now = now or now_rfc3339()
    cur = pod.get("status") or {}
    prev = {c.get("type"): c for c in cur.get("conditions") or []}
    statuses = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        old = next((s for s in cur.get("containerStatuses") or [] if s.get("name") == c["name"]), {})
        term = {"exitCode": 137, "reason": "SandboxLost", "message": message, "finishedAt": now}
        started = ((old.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            term["startedAt"] = started
        st = {"name": c["name"], "image": c["image"], "imageID": old.get("imageID") or "", "ready": False,
              "started": False, "restartCount": old.get("restartCount", 0), "state": {"terminated": term},
              "lastState": old.get("lastState") or {}}
        if old.get("containerID"):
            st["containerID"] = old["containerID"]
        statuses.append(st)
    ours = [
        _condition("Ready", "False", prev, now, "PodFailed"),
        _condition("ContainersReady", "False", prev, now, "PodFailed"),
    ]
    mine = {c["type"] for c in ours}
    return {
        "phase": "Failed",
        "reason": "SandboxLost",
        "message": message,
        "conditions": ours + [c for c in cur.get("conditions") or [] if c.get("type") not in mine],
        "containerStatuses": statuses,
    }


def status_patch(pod: dict, desired: dict) -> dict | None:
    """The merge patch that moves the pod's status to `desired`, or None if nothing changes."""
    cur = pod.get("status") or {}
    changes = {}
    for k, v in desired.items():
        if _normal(cur.get(k)) != _normal(v):
            changes[k] = v
    return changes or None


def _normal(v):
    """Compare as the API stores: a None field is an absent one, and so is an empty list."""
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items() if x is not None and x != []}
    if isinstance(v, list):
        return [_normal(x) for x in v] or None
    return v
