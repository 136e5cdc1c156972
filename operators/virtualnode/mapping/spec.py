"""Tenant Pod -> SandboxPod mapping (pure functions, no I/O).

`build_sandboxpod` turns a bound tenant pod (with its environment already resolved) into
the SandboxPod that runs it; the way back, SandboxPod status -> pod status, is podstatus.py.
"""
from __future__ import annotations

import hashlib
import re

from ... import API_VERSION
from ...models.contracts import (ANNOTATION_POD_NAME, ANNOTATION_POD_NAMESPACE, CLUSTER_DOMAIN, LABEL_CLUSTER,
                                 LABEL_CLUSTER_UID, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID)
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
                     # The sandbox's kubelet writes the message (providers/local/termlog.py).
                     "terminationMessagePath", "terminationMessagePolicy",
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
    """As the kubelet: spec.hostnameOverride (cut to 63 characters), else spec.hostname,
    else the pod name cut to a DNS label."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    if spec.get("hostnameOverride"):
        return spec["hostnameOverride"][:MAX_LABEL].rstrip("-.") or "pod"
    if spec.get("hostname"):
        return spec["hostname"]
    name = meta.get("name", "")[:MAX_LABEL].rstrip("-.")
    if _DNS_LABEL.match(name):
        return name
    return name.replace(".", "-").rstrip("-") or "pod"


def _container(c: dict, env: list[dict] | None, service_env: dict[str, str] | None = None) -> dict:
    from .envresolve import expand_command  # local: keeps this module's import graph flat
    out: dict = {"name": c["name"], "image": c["image"]}
    env = env or []
    if c.get("command") is not None:
        out["command"] = expand_command(c["command"], env, service_env)
    if c.get("args") is not None:
        out["args"] = expand_command(c["args"], env, service_env)
    for f in _CONTAINER_FIELDS:
        if c.get(f) is not None:
            out[f] = _without_ignored(c[f]) if f == "securityContext" else c[f]
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
    lifecycle = _lifecycle(c.get("lifecycle"))
    if lifecycle:
        out["lifecycle"] = lifecycle
    return out


_HOOKS = ("postStart", "preStop")
_HOOK_HANDLERS = ("exec", "httpGet", "sleep")


def _hook(h: dict | None) -> dict | None:
    """A lifecycle handler the sandbox's kubelet runs (exec, httpGet, sleep); None for
    others (tcpSocket, which upstream's kubelet does not run either)."""
    handler = next((k for k in _HOOK_HANDLERS if (h or {}).get(k) is not None), None)
    if handler is None:
        return None
    if handler == "sleep":
        return {"sleep": {"seconds": int(h["sleep"].get("seconds") or 0)}}
    return {handler: _probe({handler: h[handler]})[handler]}  # the same copy as a probe's action


def _lifecycle(lc: dict | None) -> dict | None:
    out = {k: hook for k in _HOOKS if (hook := _hook((lc or {}).get(k)))}
    return out or None


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_PROBE_TIMING = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
                 "terminationGracePeriodSeconds")


def _probe(p: dict | None) -> dict | None:
    """A probe the sandbox runs (exec, httpGet, tcpSocket, grpc); None without a handler."""
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
    elif handler == "grpc":
        action = {k: v for k, v in action.items() if k in ("port", "service", "mode") and v is not None}
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


def host_domain(pod: dict) -> str | None:
    """As the kubelet's GeneratePodHostNameAndDomain: `<subdomain>.<ns>.svc.<domain>` when
    spec.subdomain is set (whether a Service of that name exists or not)."""
    sub = (pod.get("spec") or {}).get("subdomain")
    ns = (pod.get("metadata") or {}).get("namespace", "")
    if (pod.get("spec") or {}).get("hostnameOverride"):
        return None  # the kubelet gives an overridden hostname no domain
    if not sub or not _DNS_LABEL.match(sub) or len(sub) > MAX_LABEL or not _DNS_LABEL.match(ns):
        return None  # the apiserver validated both as DNS labels: anything else is not written
    return f"{sub}.{ns}.svc.{CLUSTER_DOMAIN}"


def build_sandboxpod(pod: dict, *, namespace: str, cluster: str, cluster_uid: str,
                     env: dict[str, list[dict]], service_env: dict[str, str] | None = None) -> dict:
    """The SandboxPod for a tenant pod; `env` maps container names to resolved environments,
    `service_env` is the pod's service variables (serviceenv.py), carried once for all."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    grace = spec.get("terminationGracePeriodSeconds")
    sb_spec: dict = {
        "containers": [_container(c, env.get(c["name"]), service_env) for c in spec.get("containers") or []],
        **({"initContainers": [_container(c, env.get(c["name"]), service_env) for c in spec["initContainers"]]}
           if spec.get("initContainers") else {}),
        "restartPolicy": spec.get("restartPolicy") or "Always",
        "terminationGracePeriodSeconds": min(max(int(30 if grace is None else grace), 0), MAX_GRACE),
        "hostname": hostname_of(pod),
        "clusterRef": {"name": cluster},
    }
    if spec.get("activeDeadlineSeconds"):
        sb_spec["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    if host_domain(pod):
        sb_spec["hostDomain"] = host_domain(pod)  # /etc/hosts: `<ip> <hostname>.<hostDomain> <hostname>`
        if spec.get("setHostnameAsFQDN"):
            sb_spec["setHostnameAsFQDN"] = True  # the provider checks the kubelet's 64-character bound
    if service_env:
        sb_spec["serviceEnv"] = [{"name": k, "value": v} for k, v in service_env.items()]
    for f in ("securityContext", "hostUsers", "shareProcessNamespace"):
        if spec.get(f) is not None:
            sb_spec[f] = _without_ignored(spec[f]) if f == "securityContext" else spec[f]
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


def ephemeral_containers(pod: dict, sbp: dict, env: dict[str, list[dict]],
                         service_env: dict[str, str] | None = None) -> list[dict] | None:
    """The SandboxPod's ephemeralContainers once the pod's have grown (`kubectl debug`): its
    entries as they are (append-only), then the new ones mapped as containers are, with the
    target of `--target`; None when there is nothing new."""
    have = list(sbp.get("ephemeralContainers") or [])
    known = {c["name"] for c in have}
    new = [c for c in (pod.get("spec") or {}).get("ephemeralContainers") or [] if c["name"] not in known]
    if not new:
        return None
    for c in new:
        out = _container(c, env.get(c["name"]), service_env)
        if c.get("targetContainerName"):
            out["targetContainerName"] = c["targetContainerName"]
        have.append(out)
    return have


def container_images(pod: dict, sbp: dict) -> list[dict] | None:
    """The SandboxPod's containerImages for the pod as it is now: one entry for each
    container or init container whose image differs from the one it was made with (an image
    is the one part of a pod's spec that changes in place); None when it says that already."""
    made_spec = sbp.get("spec") or {}
    made = {c["name"]: c.get("image") for c in (made_spec.get("initContainers") or []) +
            (made_spec.get("containers") or [])}
    spec = pod.get("spec") or {}
    wanted = [{"name": c["name"], "image": c.get("image")}
              for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
              if c.get("name") in made and c.get("image") != made[c["name"]]]
    have = [{"name": i.get("name"), "image": i.get("image")} for i in sbp.get("containerImages") or []]
    return None if wanted == have else wanted


def dropped_fields(pod: dict) -> list[str]:
    """Pod fields a SandboxPod cannot carry yet, so that the user is told rather than
    finding out."""
    spec = pod.get("spec") or {}
    out = []
    vols = unsupported_volumes(pod)
    if vols:
        out.append(f"volumes [{' '.join(vols)}]")
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        lc = c.get("lifecycle") or {}
        extras = [f"lifecycle.{k}" for k in lc if lc[k] and (k not in _HOOKS or _hook(lc[k]) is None)]
        extras += [f"securityContext.{k}" for k in _unmodelled(c.get("securityContext"), pod_level=False)]
        if any(m.get("name") in vols for m in c.get("volumeMounts") or []):
            extras.append("volumeMounts")
        if extras:
            out.append(f"container {c['name']}: {', '.join(extras)}")
    out += [f"securityContext.{k}" for k in _unmodelled(spec.get("securityContext"), pod_level=True)]
    return out


# securityContext fields a kubelet on a host without SELinux ignores, and so does sk8s (its
# hosts run without it): admitted with a warning (policy sk8s-ignored-fields), named in the
# UnsupportedPodFields event, and not sent (the SandboxPod schema refuses them).
IGNORED_SECURITY_FIELDS = ("seLinuxOptions",)


def _without_ignored(sc: dict) -> dict:
    return {k: v for k, v in sc.items() if k not in IGNORED_SECURITY_FIELDS}


def _unmodelled(sc: dict | None, *, pod_level: bool) -> list[str]:
    """securityContext fields of a newer API than the SandboxPod schema knows (it would prune
    them) and those ignored, so that they are named."""
    from ...models.securitycontext import PodSecurityContext, SecurityContext  # local: flat import graph
    known = (PodSecurityContext if pod_level else SecurityContext).model_fields
    return [k for k in sc or {} if k not in known or k in IGNORED_SECURITY_FIELDS]


def pod_uid_of(sbp: dict) -> str | None:
    return ((sbp.get("metadata") or {}).get("labels") or {}).get(LABEL_POD_UID)
