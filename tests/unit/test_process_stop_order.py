"""A plane's processes stop in the order given, as a tuple (planes.STOP_ORDER) or a list,
then whatever else runs there."""
from __future__ import annotations

from operators.embedded.processes import ProcessSet
from operators.serverlesscluster.planes import STOP_ORDER


def test_stop_all_in_order_then_the_rest(tmp_path, monkeypatch):
    procs = ProcessSet(tmp_path)
    for name in ("kube-apiserver", "virtual-node", "extra"):
        procs.start(name, ["sleep", "60"])
    stopped = []
    real_stop = ProcessSet.stop

    def stop(self, name, timeout=10.0):
        stopped.append(name)
        real_stop(self, name, timeout)
    monkeypatch.setattr(ProcessSet, "stop", stop)
    procs.stop_all(order=STOP_ORDER, timeout=3)
    assert stopped == ["virtual-node", "kube-apiserver", "extra"]
    assert procs.names() == []


def test_a_child_reaped_by_another_thread_meanwhile_is_no_error():
    """Planes are stopped from several threads; one reaping a child that another thread
    reaped while it waited once raised ValueError (list.remove) and ended a stop_all
    half-way."""
    import subprocess
    from operators.embedded import processes
    proc = subprocess.Popen(["true"])
    real_wait = proc.wait

    def wait(timeout=None):
        code = real_wait(timeout)
        processes.alive(proc.pid)  # what another thread's check does meanwhile: it reaps it
        return code
    proc.wait = wait
    processes._reapers.append(proc)
    processes._reap(proc.pid)
    assert proc not in processes._reapers
