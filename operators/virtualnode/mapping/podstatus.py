"""SandboxPod status -> tenant pod status, as a kubelet would report it (pure functions).

`pod_status_from_sandbox` gives the status fields the virtual node owns (phase,
conditions, addresses, container statuses); `lost_status` the Failed status of a pod whose
sandbox vanished; `status_patch` the merge patch from the cached pod to either.
"""
from __future__ import annotations

from ...conditions import now_rfc3339
from ...models.contracts import CONDITION_CONTAINERS_READY, CONDITION_INITIALIZED, REASON_CONFIG_ERROR


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


def _ephemeral_statuses(pod: dict, sb_status: dict, sbp: dict | None) -> list[dict] | None:
    """status.ephemeralContainerStatuses, as the SandboxPod reports the debug containers."""
    by_name = {c.get("name"): c for c in sb_status.get("ephemeralContainerStatuses") or []}
    out = []
    for c in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        src = by_name.get(c["name"]) or {}
        state = src.get("state") or {"waiting": {"reason": "ContainerCreating"}}
        st = {"name": c["name"], "image": c["image"], "imageID": src.get("imageID") or "", "ready": False,
              "restartCount": 0, "state": _tenant_state(state, sbp, pod), "lastState": {}}
        if src.get("containerID"):
            st["containerID"] = src["containerID"]
        out.append(st)
    return out or None


_TERMINAL = ("Succeeded", "Failed")


def _phase(cur: dict, sb: dict, waiting: dict | None) -> str:
    if cur.get("phase") in _TERMINAL:
        return cur["phase"]  # a terminal phase never changes (the apiserver would refuse)
    if waiting is not None:
        return "Pending"
    return sb.get("phase") or "Pending"


def _initialized(pod: dict, sb: dict, init_statuses: list[dict], waiting: dict | None, prev: dict[str, dict],
                 now: str) -> dict:
    init_names = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    sb_init = _sbp_condition(sb, CONDITION_INITIALIZED)
    if not init_names or (sb_init.get("status") == "True" and waiting is None):
        return _condition("Initialized", "True", prev, now)
    pending = [s["name"] for s in init_statuses if not s["ready"]] or init_names
    return _condition("Initialized", "False", prev, now, "ContainersNotInitialized",
                      f"containers with incomplete status: [{' '.join(pending)}]")


def _readiness(pod: dict, sb: dict, statuses: list[dict], phase: str, prev: dict[str, dict],
               now: str) -> tuple[dict, dict]:
    """The Ready and ContainersReady conditions."""
    containers_ready = bool(statuses) and all(s["ready"] for s in statuses) and phase == "Running"
    not_ready = [s["name"] for s in statuses if not s["ready"]]
    if containers_ready:
        cr = _condition("ContainersReady", "True", prev, now,
                        since=_sbp_condition(sb, CONDITION_CONTAINERS_READY).get("lastTransitionTime"))
    elif phase in _TERMINAL:
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
    return ready, cr


def _addresses(cur: dict, sb: dict, phase: str) -> dict:
    pod_ip, host_ip = sb.get("podIP"), sb.get("hostIP")
    if not pod_ip and phase in _TERMINAL:
        pod_ip = cur.get("podIP")  # keep the last known address of a finished pod
    if not host_ip:
        host_ip = cur.get("hostIP")
    return {"podIP": pod_ip, "podIPs": [{"ip": pod_ip}] if pod_ip else None,
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}] if host_ip else None}


def _reason(cur: dict, sb: dict, phase: str) -> tuple[str | None, str | None]:
    """reason/message: the sandbox's when the pod ends now, kept once it has ended."""
    if phase in _TERMINAL and sb.get("reason") and cur.get("phase") not in _TERMINAL:
        return sb.get("reason"), sb.get("message")
    if cur.get("phase") in _TERMINAL:
        return cur.get("reason"), cur.get("message")
    return None, None


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
    waiting = {"reason": REASON_CONFIG_ERROR, "message": config_error} if config_error else None
    phase = _phase(cur, sb, waiting)
    statuses = _container_statuses(pod, sb, waiting, sbp)
    init_statuses = _container_statuses(pod, sb, waiting, sbp, init=True)
    ready, cr = _readiness(pod, sb, statuses, phase, prev, now)
    sandbox_ready = "True" if sb.get("podIP") else "False"
    ours = [
        _condition("PodReadyToStartContainers", sandbox_ready, prev, now),
        _initialized(pod, sb, init_statuses, waiting, prev, now),
        ready,
        cr,
        _condition("PodScheduled", "True", prev, now),
    ]
    mine = {c["type"] for c in ours}
    reason, message = _reason(cur, sb, phase)
    return _observed(pod, ours, {
        "phase": phase,
        "conditions": ours + [c for c in cur.get("conditions") or [] if c.get("type") not in mine],
        **_addresses(cur, sb, phase),
        "startTime": cur.get("startTime") or sb.get("startTime") or now,
        "containerStatuses": statuses,
        "initContainerStatuses": init_statuses or None,
        "ephemeralContainerStatuses": _ephemeral_statuses(pod, sb, sbp),
        "qosClass": cur.get("qosClass") or qos_class(pod),
        "reason": reason,
        "message": message,
    })


# The conditions the kubelet writes (status/generate.go, kubelet_pods.go), also when a
# failed pod's status keeps some of them as they were.
_NODE_CONDITIONS = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"}


def _observed(pod: dict, ours: list[dict], status: dict) -> dict:
    """The pod's generation that this status reflects, on the status and on each condition
    the node owns, as the 1.37 kubelet's status manager writes them (PodObservedGenerationTracking:
    podutil.CalculatePodStatusObservedGeneration / CalculatePodConditionObservedGeneration)."""
    generation = (pod.get("metadata") or {}).get("generation")
    if not generation:
        return status
    mine = {c["type"] for c in ours} | _NODE_CONDITIONS
    status["conditions"] = [{**c, "observedGeneration": generation} if c.get("type") in mine else c
                            for c in status.get("conditions") or []]
    status["observedGeneration"] = generation
    return status


def lost_status(pod: dict, message: str, now: str | None = None, *, reason: str = "SandboxLost",
                container: tuple[str, str] | None = None) -> dict:
    """The pod's sandbox vanished (or was killed, e.g. past its deadline: `reason`): Failed,
    so that its controller replaces it. Containers already terminated keep that state when
    `container` (reason, message) is given for the others, as the kubelet reports them."""
    now = now or now_rfc3339()
    cur = pod.get("status") or {}
    prev = {c.get("type"): c for c in cur.get("conditions") or []}
    statuses = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        old = next((s for s in cur.get("containerStatuses") or [] if s.get("name") == c["name"]), {})
        if container and (old.get("state") or {}).get("terminated"):
            statuses.append({**old, "ready": False, "started": False})
            continue
        term = {"exitCode": 137, "reason": container[0] if container else reason,
                "message": container[1] if container else message, "finishedAt": now}
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
    return _observed(pod, ours, {
        "phase": "Failed",
        "reason": reason,
        "message": message,
        "conditions": ours + [c for c in cur.get("conditions") or [] if c.get("type") not in mine],
        "containerStatuses": statuses,
    })


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


def config_error_before_start(sbp: dict) -> bool:
    """Some container of the SandboxPod waits in CreateContainerConfigError and none has
    ever started (no restart, no running or terminated state now or before) (pure)."""
    st = sbp.get("status") or {}
    statuses = (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])
    started = any(s.get("restartCount") or s.get("lastState") or (s.get("state") or {}).get("running")
                  or (s.get("state") or {}).get("terminated") for s in statuses)
    return not started and any(((s.get("state") or {}).get("waiting") or {}).get("reason") == REASON_CONFIG_ERROR
                               for s in statuses)


def environment_of(spec: dict) -> list:
    """What of a SandboxPod spec the pod's environment decides: each container's env and
    the service variables (pure)."""
    return [[(c.get("name"), c.get("env") or []) for c in spec.get(kind) or []]
            for kind in ("initContainers", "containers")] + [spec.get("serviceEnv") or []]
