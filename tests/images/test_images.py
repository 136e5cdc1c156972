"""The images `make images` builds without a registry run as they must.

Builds (or finds current) localhost/sk8s-operator and localhost/sk8s-controlplane with the
hack/ scripts, then runs them with podman under the project's containers.conf (runc,
explicit ulimits), as the local provider runs any image. Not part of `make test` (a cold
build takes minutes and needs deb.debian.org and PyPI): `make test-images` runs it.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from operators.config import layout, write_containers_conf

REPO = Path(__file__).resolve().parents[2]
UID = "10001"
OPERATORS = ["sandboxpod", "serverlesscluster", "servicelb", "privatezone"]


@pytest.fixture(scope="module")
def env() -> dict:
    import os
    return dict(os.environ, CONTAINERS_CONF=str(write_containers_conf(layout())))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """What the builds read, copied once: others editing the working tree meanwhile change
    neither the images under test nor their tags (a build's tag is its content's hash)."""
    snap = tmp_path_factory.mktemp("tree")
    for sub in ("hack", "operators"):
        shutil.copytree(REPO / sub, snap / sub, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", snap / "pyproject.toml")
    (snap / ".venv").symlink_to(REPO / ".venv")
    return snap


def build(script: str, env: dict, tree: Path) -> str:
    done = subprocess.run(["bash", str(tree / "hack" / script)], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def podman(env: dict, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"podman {args}: {done.stderr}"
    return done


def config(env: dict, image: str) -> dict:
    return json.loads(podman(env, "image", "inspect", image).stdout)[0]


@pytest.fixture(scope="module")
def operator_image(env, tree) -> str:
    return build("build-operator-image.sh", env, tree)


@pytest.fixture(scope="module")
def controlplane_image(env, tree) -> str:
    return build("build-controlplane-image.sh", env, tree)


def run(env: dict, image: str, *argv: str) -> str:
    done = podman(env, "run", "--rm", image, *argv, check=False)
    assert done.returncode == 0, f"{argv} in {image}: {done.stdout}{done.stderr}"
    return done.stdout


def pinned(package: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d.split("==")[1].split()[0] for d in deps if d.startswith(f"{package}=="))


def test_operator_image_is_tagged_by_version_and_content(operator_image, env):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    name, tag = operator_image.rsplit(":", 1)
    assert name == "localhost/sk8s-operator"
    assert re.fullmatch(rf"{re.escape(version)}-[0-9a-f]{{12}}", tag), tag
    assert config(env, operator_image)["Config"]["Labels"]["sk8s.io/image-version"] == tag.rsplit("-", 1)[1]


def test_operator_image_imports_every_operator(operator_image, env):
    code = "; ".join(f"import operators.{o}.operator" for o in OPERATORS) + "; print('ok')"
    assert run(env, operator_image, "python", "-c", code).strip() == "ok"


def test_operator_image_runs_kopf_of_the_pinned_version(operator_image, env):
    assert run(env, operator_image, "kopf", "--version").strip() == f"kopf, version {pinned('kopf')}"


def test_operator_image_runs_as_uid_10001_with_the_dockerfiles_command(operator_image, env):
    ids = run(env, operator_image, "python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert ids.split() == [UID, UID]
    cfg = config(env, operator_image)["Config"]
    assert cfg["User"] == f"{UID}:{UID}"
    cmd = re.search(r"^CMD (\[.*?\])$", (REPO / "Dockerfile").read_text().replace("\\\n", ""), re.M | re.S)
    assert cfg["Cmd"] == json.loads(cmd.group(1))


def test_operator_image_keeps_nothing_of_the_build(operator_image, env):
    """pip, the sources, the host's CA bundle (it may hold an egress CA) stay out."""
    code = ("import os, importlib.util; "
            "print([p for p in ('/src', '/tmp/build-ca.crt', '/root/.cache') if os.path.exists(p)], "
            "importlib.util.find_spec('pip') is not None)")
    assert run(env, operator_image, "python", "-c", code).strip() == "[] False"
    bundle = run(env, operator_image, "cat", "/etc/ssl/certs/ca-certificates.crt")
    assert bundle.count("BEGIN CERTIFICATE") > 100
    for extra in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        body = "".join(extra.read_text().split("-----")[2].split())
        assert body[:200] not in "".join(bundle.split()), f"{extra} is in the image's CA bundle"


def test_controlplane_components_report_their_versions(controlplane_image, env):
    k8s = controlplane_image.rsplit(":", 1)[1].split("-")[0]
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert run(env, controlplane_image, component, "--version").strip() == f"Kubernetes {k8s}"
    assert re.search(r"^etcd Version: 3\.\d+\.\d+$", run(env, controlplane_image, "etcd", "--version"), re.M)


def test_controlplane_etcd_serves_as_uid_10001(controlplane_image, env):
    """etcd starts as the image's user and writes its data in its home: no root needed."""
    assert config(env, controlplane_image)["Config"]["User"] == f"{UID}:{UID}"
    name = f"sk8s-image-test-{uuid.uuid4().hex[:8]}"
    podman(env, "run", "-d", "--name", name, controlplane_image, "etcd", "--data-dir", "data")
    try:
        deadline = time.monotonic() + 60
        logs = ""
        while time.monotonic() < deadline and "ready to serve client requests" not in logs:
            time.sleep(1)
            logs = podman(env, "logs", name, check=False).stderr
        assert "ready to serve client requests" in logs, logs[-2000:]
        rows = [line.split() for line in podman(env, "top", name, "user", "huser").stdout.splitlines()[1:]]
        assert rows and all(row == ["sk8s", UID] for row in rows), rows
    finally:
        podman(env, "rm", "-f", "-t", "0", name, check=False)


def test_an_unchanged_tree_is_not_rebuilt(operator_image, controlplane_image, env, tree):
    for script, image in (("build-operator-image.sh", operator_image),
                          ("build-controlplane-image.sh", controlplane_image)):
        before = config(env, image)["Id"]
        t0 = time.monotonic()
        assert build(script, env, tree) == image
        assert config(env, image)["Id"] == before
        assert time.monotonic() - t0 < 60, f"{script} took {time.monotonic() - t0:.0f} s with nothing changed"


def test_manifests_run_the_built_operator_image(operator_image, env):
    bindir = subprocess.run(["bash", str(REPO / "hack/build-components.sh")], capture_output=True,
                            text=True, check=True).stdout.strip()
    rendered = subprocess.run([f"{bindir}/kubectl", "kustomize", str(REPO / "manifests")],
                              capture_output=True, text=True, check=True).stdout
    images = {c["image"] for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"localhost/sk8s-operator:latest"}
    assert config(env, "localhost/sk8s-operator:latest")["Id"] == config(env, operator_image)["Id"]
