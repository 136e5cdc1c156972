"""Where sk8s keeps its state, and how the pieces find each other.

Everything of one embedded installation lives under $SK8S_HOME; binaries built from
upstream are cached per machine under $SK8S_CACHE, keyed by version.

The environment is read here and nowhere else in operators/ (tests/unit/test_contracts.py
checks): one accessor per variable, read when called (tests and child processes set
them), each saying its variable, default and meaning. Building the environment of a child
process (`dict(os.environ, ...)`) is not reading configuration and stays where it is.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def sk8s_home() -> Path:
    """SK8S_HOME (default $XDG_DATA_HOME/sk8s, XDG_DATA_HOME defaulting to ~/.local/share):
    everything of one installation (PKI, etcd data, kubeconfig, logs, tenant planes)."""
    env = os.environ.get("SK8S_HOME")
    if env:
        return Path(env).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "sk8s"


def sk8s_cache() -> Path:
    """SK8S_CACHE (default $XDG_CACHE_HOME/sk8s, XDG_CACHE_HOME defaulting to ~/.cache):
    binaries built from upstream, per machine, keyed by version."""
    env = os.environ.get("SK8S_CACHE")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sk8s"


def home_id(home: Path | None = None) -> str:
    """Short stable id of an installation: labels its sandboxes so two homes never mix."""
    return hashlib.sha256(str(home or sk8s_home()).encode()).hexdigest()[:10]


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out for outgoing
# connections could be taken by the time a component binds it.
_PORT_RANGE = (20000, 32000)


def free_port(taken: set[int] = frozenset()) -> int:
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int


@dataclass
class Layout:
    home: Path

    @property
    def pki(self) -> Path: return self.home / "pki"
    @property
    def logs(self) -> Path: return self.home / "logs"
    @property
    def run(self) -> Path: return self.home / "run"
    @property
    def etcd_data(self) -> Path: return self.home / "etcd"
    @property
    def kubeconfig(self) -> Path: return self.home / "kubeconfig"
    @property
    def containers_conf(self) -> Path: return self.home / "containers.conf"
    @property
    def ports_file(self) -> Path: return self.home / "ports.json"
    @property
    def state_file(self) -> Path: return self.run / "state.json"
    @property
    def supervisor_pid(self) -> Path: return self.run / "supervisor.pid"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def ensure(self) -> None:
        for d in (self.home, self.pki, self.logs, self.run, self.etcd_data):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.pki, 0o700)

    def ports(self) -> Ports:
        """Ports are chosen once per home and kept, so kubeconfigs stay valid across restarts."""
        if self.ports_file.exists():
            saved = json.loads(self.ports_file.read_text())
            fields = {f for f in Ports.__dataclass_fields__}
            if fields <= saved.keys():  # a file of an older layout is replaced, not trusted
                return Ports(**{k: saved[k] for k in fields})
        taken: set[int] = set()
        for _ in range(3):
            taken.add(free_port(taken))
        ports = Ports(*sorted(taken))
        self.ports_file.write_text(json.dumps(asdict(ports)))
        return ports


def layout() -> Layout:
    return Layout(sk8s_home())


CONTAINERS_CONF = """\
# Written by sk8s. Points podman at runc with explicit ulimits: this host's process
# lacks CAP_SYS_RESOURCE, and crun cannot run on its hybrid cgroups.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
# The CRI runtimes' default capability set (containerd's), which providers/local/security.py
# adds to and drops from: pinned here so that another podman build's defaults change nothing.
default_capabilities = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
  "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
log_driver = "k8s-file"
# A pod's /etc/hosts as the kubelet writes it: localhost, the pod's own address and
# name, hostAliases; nothing of this host's /etc/hosts, no name for the host itself.
base_hosts_file = "none"
host_containers_internal_ip = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def write_containers_conf(lay: Layout) -> Path:
    lay.home.mkdir(parents=True, exist_ok=True)
    if not lay.containers_conf.exists() or lay.containers_conf.read_text() != CONTAINERS_CONF:
        lay.containers_conf.write_text(CONTAINERS_CONF)
    return lay.containers_conf


def log_level() -> str:
    """SK8S_LOG_LEVEL (default INFO): the virtual node's log level (its --log-level default)."""
    return os.environ.get("SK8S_LOG_LEVEL", "INFO")


def provider_name() -> str:
    """SK8S_PROVIDER (default "local"): the provider the SandboxPod, ServiceLB and
    PrivateZone operators run their sandboxes, load balancers and zones on."""
    return os.environ.get("SK8S_PROVIDER", "local")


def pod_subnet() -> str | None:
    """SK8S_POD_SUBNET (default none, unset or empty): the subnet of the local provider's
    network for sandboxes that belong to no tenant VPC; none lets podman choose."""
    return os.environ.get("SK8S_POD_SUBNET") or None


def vpc_pool() -> str:
    """SK8S_VPC_POOL (default 10.112.0.0/12, also when empty): the range the local
    provider cuts tenant VPCs (/23 each) from; the supervisor keeps it off the host's routes."""
    return os.environ.get("SK8S_VPC_POOL") or "10.112.0.0/12"


def lb_range() -> str | None:
    """SK8S_LB_RANGE (default none, unset or empty: a /16 of 127/8 derived from the home id):
    where the local provider hands out internet load balancer addresses."""
    return os.environ.get("SK8S_LB_RANGE") or None


def lb_datapath() -> str:
    """SK8S_LB_DATAPATH (default `kernel`): `proxy` makes the local provider's load balancers
    forward in user space (the Python proxy) even where the kernel path serves (a baseline)."""
    return os.environ.get("SK8S_LB_DATAPATH") or "kernel"


def standby_planes() -> int:
    """SK8S_STANDBY_PLANES (default 1): warm tenant control planes the ServerlessCluster
    operator keeps started ahead of demand."""
    return int(os.environ.get("SK8S_STANDBY_PLANES", "1"))


def standby_max() -> int:
    """SK8S_STANDBY_MAX (default 6): the most warm standby planes the pool grows to when
    clusters are created in a row (serverlesscluster/pool.py; memory bounds it too)."""
    return int(os.environ.get("SK8S_STANDBY_MAX", "6"))


def lean_planes() -> bool:
    """SK8S_TENANT_LEAN (default 1): tenant planes start with the density settings of
    serverlesscluster/controlplane.py; 0 starts them as before those settings
    (bench/cluster_start.py's same-run baseline, and a way back should one cost a behaviour)."""
    return os.environ.get("SK8S_TENANT_LEAN", "1") != "0"


def etcd_url() -> str:
    """SK8S_ETCD_URL (default https://127.0.0.1:2379): the meta etcd tenant apiservers store
    in (each under its own prefix); the supervisor sets it for the ServerlessCluster operator."""
    return os.environ.get("SK8S_ETCD_URL", "https://127.0.0.1:2379")


def etcd_pki() -> Path | None:
    """SK8S_ETCD_PKI (default none, unset or empty: this home's etcd PKI): a directory holding
    etcd's CA (a mounted Secret), which signs the tenant planes' etcd client certificates."""
    env = os.environ.get("SK8S_ETCD_PKI")
    return Path(env) if env else None


def plane_runner() -> str:
    """SK8S_PLANE_RUNNER (default `host`): how tenant control planes run. `host`: processes
    of the operator's own host (the embedded meta-cluster); `pods`: a Deployment per plane
    in the meta-cluster (serverlesscluster/podplane.py), for a real Kubernetes."""
    value = os.environ.get("SK8S_PLANE_RUNNER") or "host"
    if value not in ("host", "pods"):
        raise ValueError(f"SK8S_PLANE_RUNNER={value!r}: expected `host` or `pods`")
    return value


PLANE_NAMESPACE = "sk8s-planes"


def plane_namespace() -> str:
    """SK8S_PLANE_NAMESPACE (default sk8s-planes): where the `pods` runner puts the planes'
    Deployments, Services and Secrets."""
    return os.environ.get("SK8S_PLANE_NAMESPACE") or PLANE_NAMESPACE


def plane_images() -> tuple[str, str]:
    """SK8S_CONTROLPLANE_IMAGE and SK8S_OPERATOR_IMAGE (defaults: the `make images` builds,
    localhost/sk8s-controlplane:latest and localhost/sk8s-operator:latest): the images of a
    plane's Pod (its Kubernetes components, and its virtual node)."""
    return (os.environ.get("SK8S_CONTROLPLANE_IMAGE") or "localhost/sk8s-controlplane:latest",
            os.environ.get("SK8S_OPERATOR_IMAGE") or "localhost/sk8s-operator:latest")


def etcd_auth() -> bool:
    """SK8S_ETCD_AUTH (default 0): the etcd of SK8S_ETCD_URL is sk8s' datastore with auth on
    (operators/datastore): each plane gets a user whose role covers only its prefix, and
    the operator acts as root with a certificate it issues from SK8S_ETCD_PKI's CA."""
    return os.environ.get("SK8S_ETCD_AUTH", "0") == "1"


def default_kubeconfig(path: Path) -> None:
    """KUBECONFIG: the kubernetes client library reads it; the CLI points it at the
    meta-cluster's kubeconfig unless the user set one (the user's wins)."""
    os.environ.setdefault("KUBECONFIG", str(path))


def nfs_allowed() -> str:
    """SK8S_NFS_ALLOWED (default empty): comma-separated CIDRs of NFS servers a meta-cluster admin trusts
    although they are the host's own (loopback, its interfaces, link-local); see
    providers/local/nfspolicy.py. Read by the SandboxPod operator, which mounts NFS volumes."""
    return os.environ.get("SK8S_NFS_ALLOWED", "")


def token_refresh_fraction() -> float:
    """SK8S_TOKEN_REFRESH_FRACTION (default 0.8, the kubelet's): the virtual node requests a
    pod's service-account token again once it is older than this fraction of its lifetime (or
    24 h). A test setting: the e2e suite sets 0.05 to see a 600 s token rotate within a minute.
    Values outside (0, 1] are ignored (0.8)."""
    try:
        value = float(os.environ.get("SK8S_TOKEN_REFRESH_FRACTION", "0.8"))
    except ValueError:
        return 0.8
    return value if 0 < value <= 1 else 0.8


def kubeconfig_path() -> Path:
    """The meta-cluster's kubeconfig as kubectl finds it: $KUBECONFIG (its first entry) or ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first or "~/.kube/config").expanduser()


def in_cluster_apiserver() -> str | None:
    """The apiserver of the cluster this process runs in, when it runs as a pod there and no
    KUBECONFIG says otherwise (then its service-account token is the credential)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host or os.environ.get("KUBECONFIG"):
        return None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def aliyun_settings() -> dict[str, str | None]:
    """The aliyun provider's account and placement, for the operators that run it:
    SK8S_ALIYUN_CREDENTIALS (a directory holding `access-key-id` and `access-key-secret`
    files: a mounted Secret; never a variable holding the secret itself),
    SK8S_ALIYUN_REGION (default cn-hangzhou), SK8S_ALIYUN_ZONE, SK8S_ALIYUN_VSWITCH,
    SK8S_ALIYUN_SECURITY_GROUP (where sandboxes go; required), and SK8S_ALIYUN_ENDPOINT
    (host:port replacing the SDK's endpoint resolution: the local emulator; default none)."""
    env = os.environ
    return {
        "credentials": env.get("SK8S_ALIYUN_CREDENTIALS") or None,
        "region": env.get("SK8S_ALIYUN_REGION") or "cn-hangzhou",
        "zone": env.get("SK8S_ALIYUN_ZONE") or None,
        "vswitch": env.get("SK8S_ALIYUN_VSWITCH") or None,
        "security_group": env.get("SK8S_ALIYUN_SECURITY_GROUP") or None,
        "endpoint": env.get("SK8S_ALIYUN_ENDPOINT") or None,
    }


def metapod_settings() -> dict[str, object]:
    """The metapod provider (each sandbox a Pod of the meta-cluster, on its nodes), for the
    operators that run it: SK8S_METAPOD (a true value: the provider is offered here; on when
    SK8S_PROVIDER is metapod), SK8S_SANDBOX_RUNTIME_CLASS (the RuntimeClass of every sandbox
    Pod, e.g. gVisor's or Kata's where the meta-cluster offers one; default none: the nodes'
    runtime), SK8S_METAPOD_NAMESERVERS (comma-separated resolver addresses of the tenants'
    pods under dnsPolicy ClusterFirst; default none: the node's resolver, never the
    meta-cluster's DNS)."""
    env = os.environ
    enabled = env.get("SK8S_METAPOD", "").lower() in ("1", "true", "yes") or provider_name() == "metapod"
    servers = _csv(env.get("SK8S_METAPOD_NAMESERVERS", ""))
    return {"enabled": enabled, "runtime_class": env.get("SK8S_SANDBOX_RUNTIME_CLASS") or None,
            "name_servers": servers, **metapod_network_settings()}


# The ranges a tenant's sandbox Pod may not reach (providers/metapod/netpol.py): the private
# ones (the meta-cluster's nodes, Services and Pods, the cloud's internal networks), the
# carrier-grade NAT range (cloud-internal services) and link-local (the metadata service).
METAPOD_PRIVATE_CIDRS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,169.254.0.0/16"
METAPOD_POD_CIDRS = "10.244.0.0/16"  # kind's and kubeadm's usual Pod range


def metapod_network_settings() -> dict[str, object]:
    """How the metapod provider fences each tenant's sandbox namespace (one NetworkPolicy;
    the meta-cluster's CNI must enforce NetworkPolicy): SK8S_METAPOD_PRIVATE_CIDRS
    (comma-separated; default METAPOD_PRIVATE_CIDRS): no sandbox connects to them, but for
    DNS; SK8S_METAPOD_POD_CIDRS (comma-separated; default 10.244.0.0/16, kind's and
    kubeadm's usual): the meta-cluster's Pod ranges, from which no sandbox accepts a
    connection but its own namespace's and the planes' (SK8S_PLANE_NAMESPACE)."""
    env = os.environ
    return {"private_cidrs": _csv(env.get("SK8S_METAPOD_PRIVATE_CIDRS") or METAPOD_PRIVATE_CIDRS),
            "pod_cidrs": _csv(env.get("SK8S_METAPOD_POD_CIDRS") or METAPOD_POD_CIDRS),
            "plane_namespace": plane_namespace()}


def _csv(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in value.split(",") if s.strip())


def metapod_lb_settings(pool_class: str | None = None) -> dict[str, object]:
    """The metapod provider's load balancers (providers/metapod/loadbalancer.py): each a
    meta-cluster Service of type LoadBalancer. SK8S_METAPOD_LB_ADDRESSES (comma-separated
    addresses or CIDRs; default none): the pool of internet addresses this operator hands out
    itself, writing the Service's status as a load-balancer controller would, for a
    meta-cluster without one (the kind bed: hack/kind.sh routes the pool to a node, where
    kube-proxy serves it); none: the meta-cluster's own controller (a cloud's) gives the
    address. SK8S_METAPOD_LB_CLASS (default `pool_class`, the provider's own, with a pool;
    none without): the Services' spec.loadBalancerClass, the controller that serves them."""
    env = os.environ
    pool = tuple(a.strip() for a in env.get("SK8S_METAPOD_LB_ADDRESSES", "").split(",") if a.strip())
    default_class = pool_class if pool else None
    return {"addresses": pool, "class": env.get("SK8S_METAPOD_LB_CLASS") or default_class}
