"""`sk8s down` and the Alibaba emulator of its home."""
from __future__ import annotations

import subprocess
import threading

from operators import cli
from operators.config import Layout


def test_down_stops_the_emulator_of_its_home_first(tmp_path):
    """The emulator's kubelets would start again the sandboxes `down` removes."""
    lay = Layout(tmp_path)
    lay.run.mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "60"])
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped, as its own parent would
    cli.emulator_pid_file(lay).write_text(str(proc.pid))
    cli._stop_emulator(lay)
    assert proc.wait(timeout=5) == -15  # SIGTERM
    assert not cli.emulator_pid_file(lay).exists()
    cli._stop_emulator(lay)  # none: nothing to do
