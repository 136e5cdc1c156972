"""The two plane runners (serverlesscluster/runners.py): where a plane's endpoint is, which
connections carry the wake rule's mark, who restarts a component, and which runner the
environment picks."""
import asyncio

import pytest

from operators.embedded.processes import ProcessSet
from operators.serverlesscluster import planes, podrunner, runners, wakerules

PLANE = planes.Plane(None, "abc123", 31443, 31250, "/sk8s/tenants/abc123")


def test_the_environment_picks_the_runner(monkeypatch):
    monkeypatch.delenv("SK8S_PLANE_RUNNER", raising=False)
    assert isinstance(runners.runner(), runners.HostRunner)
    monkeypatch.setenv("SK8S_PLANE_RUNNER", "pods")
    assert isinstance(runners.runner(), runners.PodRunner)
    monkeypatch.setenv("SK8S_PLANE_RUNNER", "vms")
    with pytest.raises(ValueError, match="SK8S_PLANE_RUNNER"):
        runners.runner()


def test_a_host_plane_listens_on_its_own_ports_marked_past_the_wake_rule(tmp_path):
    host = runners.HostRunner()
    assert host.placement(PLANE) == {"ports": runners.cp.TenantPorts(31443, 31250)}
    assert host.socket_mark == wakerules.MARK and host.sleep_unavailable is None
    assert isinstance(host.processes(type("T", (), {"directory": tmp_path})()), ProcessSet)


def test_a_plane_run_as_pods_is_its_service_and_the_kubelets_to_restart(monkeypatch, tmp_path):
    monkeypatch.setenv("SK8S_PLANE_NAMESPACE", "planes")
    pods = runners.PodRunner()
    where = pods.placement(PLANE)
    assert where["host"] == "sk8s-plane-abc123.planes.svc" and where["ports"].apiserver == 443
    # No SO_MARK (a Pod lacks CAP_NET_ADMIN), no sleep, and nothing for the health tick to start.
    assert pods.socket_mark is None and "Pods" in pods.sleep_unavailable
    assert isinstance(pods.processes(None), podrunner.KubeletManaged)
    t = type("T", (), {"directory": tmp_path / "abc123", "runs_scheduler": False, "name": "team-a"})()
    assert pods.logs_hint(t, "kube-apiserver") == "kubectl -n planes logs deploy/sk8s-plane-abc123 -c kube-apiserver"

    async def nothing_started():
        for start in (pods.start_after_bootstrap, pods.start_apiserver, pods.start_controller_manager,
                      pods.start_scheduler):
            await start(t)  # a plane's Pod starts them all; none touches the meta-cluster here
    asyncio.run(nothing_started())
