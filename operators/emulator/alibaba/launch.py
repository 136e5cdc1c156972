"""Start `sk8s emulator alibaba` for an installation (tests, benchmarks, demos): one
account, its key in a directory of the home as a mounted Secret would hold it, and the
variables that point the installation's aliyun provider at it."""
from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

from ...config import REPO_ROOT

# Any ids do: the emulator takes the VSwitch and security group it is given.
PLACEMENT_ENV = {"SK8S_ALIYUN_REGION": "cn-hangzhou", "SK8S_ALIYUN_ZONE": "cn-hangzhou-h",
                 "SK8S_ALIYUN_VSWITCH": "vsw-sk8s-local", "SK8S_ALIYUN_SECURITY_GROUP": "sg-sk8s-local"}


def start(home: Path, env: dict, *, timeout: float = 60) -> tuple[subprocess.Popen, dict[str, str]]:
    """The emulator process (podman backend: groups are sandboxes of `home`) and the
    environment an installation needs to use it. Its log: home/logs/alibaba-emulator.log."""
    creds = home / "aliyun-credentials"
    creds.mkdir(mode=0o700, exist_ok=True)
    (creds / "access-key-id").write_text("LTAI-sk8s-local\n")
    (creds / "access-key-secret").write_text(secrets.token_hex(16) + "\n")
    port_file = home / "alibaba-emulator.port"
    port_file.unlink(missing_ok=True)
    log_path = home / "logs" / "alibaba-emulator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "operators.cli", "emulator", "alibaba",
                                 "--credentials", str(creds), "--port-file", str(port_file)],
                                env=env, cwd=str(REPO_ROOT), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the Alibaba emulator did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, {**PLACEMENT_ENV, "SK8S_ALIYUN_CREDENTIALS": str(creds),
                  "SK8S_ALIYUN_ENDPOINT": f"127.0.0.1:{port_file.read_text().strip()}"}
