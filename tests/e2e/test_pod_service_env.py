"""What a pod learns about its cluster's Services as on any cluster: the kubelet's service
environment variables (enableServiceLinks honoured), PTR records for ClusterIPs, and its own
`<hostname>.<subdomain>.<ns>.svc.cluster.local` in /etc/hosts. (Whether the ClusterIP
connects is tests/e2e/test_cluster_ips.py's.)"""
from __future__ import annotations

import time

import pytest
import yaml

from .conftest import IMAGE
from .tenant import delete_cluster, make_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def senv(meta):
    t = make_cluster(meta, "senv", quotas={"maxPods": 10, "cpu": "8", "memory": "8Gi"})
    t.kubectl("create", "service", "clusterip", "nginx-svc", "--tcp=80:8080")
    yield t
    delete_cluster(meta, "senv")


def cluster_ip(t, name: str, ns: str = "default") -> str:
    ip = t.kubectl("get", "svc", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    assert ip and ip != "None", f"service {ns}/{name} has no ClusterIP"
    return ip


def run_pod(t, name: str, **spec) -> dict:
    c = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
         "command": ["sh", "-c", "env | sort; echo end; sleep 3600"], **spec.pop("container", {})}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [c], "terminationGracePeriodSeconds": 1, **spec}}
    t.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    try:
        return t.wait_pod(name, lambda p: p["status"].get("phase") == "Running", timeout=120)
    except AssertionError as exc:
        sandboxes = t.meta.kubectl("get", "sandboxpods", "-A", "-o", "yaml", check=False).stdout
        raise AssertionError(f"{exc}\n{t.kubectl('describe', 'pod', name).stdout}\n{sandboxes[-6000:]}") from None


def env_of(t, name: str, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = t.kubectl("logs", name, check=False).stdout
        if "\nend" in out:
            return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        time.sleep(0.3)
    raise AssertionError(f"{name}: no environment in logs:\n{out}")


def test_a_pod_created_after_a_service_sees_its_variables_and_the_apis(senv):
    ip, api_ip = cluster_ip(senv, "nginx-svc"), cluster_ip(senv, "kubernetes")
    run_pod(senv, "links", container={"env": [
        {"name": "NGINX_URL", "value": "http://$(NGINX_SVC_SERVICE_HOST):$(NGINX_SVC_SERVICE_PORT)/"},
        {"name": "NGINX_SVC_PORT_80_TCP_PROTO", "value": "mine"}]})
    env = env_of(senv, "links")
    assert env["NGINX_SVC_SERVICE_HOST"] == ip and env["NGINX_SVC_SERVICE_PORT"] == "80"
    assert env["NGINX_SVC_SERVICE_PORT_80_8080"] == "80"  # kubectl names the port "80-8080"
    assert env["NGINX_SVC_PORT"] == f"tcp://{ip}:80" and env["NGINX_SVC_PORT_80_TCP_ADDR"] == ip
    assert env["NGINX_URL"] == f"http://{ip}:80/"          # $(VAR) sees service variables
    assert env["NGINX_SVC_PORT_80_TCP_PROTO"] == "mine"    # the container's own name wins
    assert env["KUBERNETES_SERVICE_HOST"] == api_ip and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443" and env["KUBERNETES_PORT"] == f"tcp://{api_ip}:443"
    assert env["KUBERNETES_PORT_443_TCP"] == f"tcp://{api_ip}:443"


def test_enable_service_links_false_leaves_only_the_kubernetes_variables(senv):
    run_pod(senv, "nolinks", enableServiceLinks=False)
    env = env_of(senv, "nolinks")
    assert env["KUBERNETES_SERVICE_HOST"] == cluster_ip(senv, "kubernetes")
    assert not [k for k in env if k.startswith("NGINX_SVC_")]


def test_a_cluster_ip_resolves_back_to_its_service_name(senv):
    ip, api_ip = cluster_ip(senv, "nginx-svc"), cluster_ip(senv, "kubernetes")
    run_pod(senv, "resolver")
    deadline = time.monotonic() + 30
    out = ""
    while time.monotonic() < deadline:
        out = senv.kubectl("exec", "resolver", "--", "nslookup", ip, check=False).stdout
        if "nginx-svc.default.svc.cluster.local" in out:
            break
        time.sleep(0.5)
    assert "nginx-svc.default.svc.cluster.local" in out, out
    out = senv.kubectl("exec", "resolver", "--", "nslookup", api_ip, check=False).stdout
    assert "kubernetes.default.svc.cluster.local" in out, out
    # Pod A records, as CoreDNS's `pods verified`: a-b-c-d.<ns>.pod.cluster.local.
    pod_ip = senv.pod("resolver")["status"]["podIP"]
    name = f"{pod_ip.replace('.', '-')}.default.pod.cluster.local"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = senv.kubectl("exec", "resolver", "--", "nslookup", name, check=False).stdout
        if f"Address: {pod_ip}" in out:
            break
        time.sleep(0.5)
    assert f"Address: {pod_ip}" in out, out


def test_hostname_and_subdomain_are_in_etc_hosts_without_a_service(senv):
    pod = run_pod(senv, "web-0", hostname="db-0", subdomain="db")
    pod_ip = pod["status"]["podIP"]
    assert senv.kubectl("exec", "web-0", "--", "hostname").stdout.strip() == "db-0"
    hosts = senv.kubectl("exec", "web-0", "--", "cat", "/etc/hosts").stdout.splitlines()
    line = f"{pod_ip}\tdb-0.db.default.svc.cluster.local\tdb-0"
    assert line in hosts, hosts
    # The fully-qualified name comes first for the pod's address, as in the kubelet's file.
    assert [h for h in hosts if h.split()[:1] == [pod_ip]][0] == line, hosts
    # And the resolver of the pod's libc finds it there (busybox ping prints the address it resolved).
    out = senv.kubectl("exec", "web-0", "--", "sh", "-c",
                       "ping -c 1 -W 1 db-0.db.default.svc.cluster.local 2>&1; true").stdout
    assert pod_ip in out, out
    plain = run_pod(senv, "plain")
    hosts = senv.kubectl("exec", "plain", "--", "cat", "/etc/hosts").stdout
    assert ".svc.cluster.local" not in hosts and plain["status"]["podIP"] in hosts


def test_set_hostname_as_fqdn_and_hostname_override(senv):
    run_pod(senv, "fqdn", hostname="db-1", subdomain="db", setHostnameAsFQDN=True)
    assert senv.kubectl("exec", "fqdn", "--", "hostname").stdout.strip() == "db-1.db.default.svc.cluster.local"
    pod = run_pod(senv, "override", hostnameOverride="my.host.example", subdomain="db")
    assert senv.kubectl("exec", "override", "--", "hostname").stdout.strip() == "my.host.example"
    hosts = senv.kubectl("exec", "override", "--", "cat", "/etc/hosts").stdout
    assert ".svc.cluster.local" not in hosts and pod["status"]["podIP"] in hosts  # no domain with an override
