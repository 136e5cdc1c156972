"""`sk8s down` stops a plane process that no pid file holds (started late by a stopping
operator's thread), found by the paths on its command line, and nothing else."""
import subprocess
import sys
import time

from operators.embedded.processes import alive, stop_strays

SLEEPER = "import time; time.sleep(60)"


def test_a_process_naming_a_path_under_the_directory_is_stopped(tmp_path):
    planes, other = tmp_path / "planes", tmp_path / "elsewhere"
    planes.mkdir()
    stray = subprocess.Popen([sys.executable, "-c", SLEEPER, f"--kubeconfig={planes}/p1/kcm.kubeconfig"])
    bare = subprocess.Popen([sys.executable, "-c", SLEEPER, f"{planes}/p2/args"])
    stranger = subprocess.Popen([sys.executable, "-c", SLEEPER, f"--kubeconfig={other}/p1/kcm.kubeconfig",
                                 f"--name={planes}"])  # the directory itself, not a path under it
    try:
        time.sleep(0.3)  # argv readable
        found = stop_strays(planes, timeout=2)
        assert sorted(found) == sorted([stray.pid, bare.pid])
        assert stray.wait(5) is not None and bare.wait(5) is not None
        assert alive(stranger.pid)
    finally:
        for p in (stray, bare, stranger):
            p.kill()
            p.wait()
