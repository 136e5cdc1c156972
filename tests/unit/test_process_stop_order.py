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
