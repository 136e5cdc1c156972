"""Keys that cross operators live in operators/models/contracts.py, the environment is read
in operators/config.py: a scan of every module's syntax tree keeps it so.

A raw `sk8s.io/...` string (a label, annotation or finalizer key, or an API path spelled
out) anywhere else is a second definition of a contract, free to drift from the first. An
`os.environ` or `os.getenv` read anywhere else is configuration that config.py does not
document. Copying the whole environment for a child process, `dict(os.environ, ...)`, is
not a read and is allowed.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from operators import API_VERSION
from operators.models import contracts

ROOT = Path(__file__).resolve().parents[2]
OPERATORS = ROOT / "operators"
KEY_PREFIX = "sk8s.io/"

# Modules allowed what the rules forbid, each with the reason.
KEY_HOMES = {
    "operators/models/contracts.py": "the one definition of every key",
}
ENV_HOMES = {
    "operators/config.py": "the one reader of the environment",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants: prose about a key is not a definition of it."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def raw_keys(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant, f-string parts included, that holds a key."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY_PREFIX in node.value
            and id(node) not in docs]


def _is_os(node: ast.AST, *attrs: str) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in attrs
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def environment_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) of every read of the process environment, except whole copies for a child."""
    tree = ast.parse(source)
    copies = {id(node.args[0]) for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
              and node.args and _is_os(node.args[0], "environ")}
    out = []
    for node in ast.walk(tree):
        if _is_os(node, "environ", "environb", "getenv", "getenvb") and id(node) not in copies:
            out.append((node.lineno, f"os.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            out += [(node.lineno, f"from os import {a.name}") for a in node.names
                    if a.name in ("environ", "environb", "getenv", "getenvb")]
    return out


def _sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted(OPERATORS.rglob("*.py"))]


def test_keys_that_cross_operators_are_defined_only_in_contracts():
    found = [f"{path}:{line}: {text!r}" for path, source in _sources() if path not in KEY_HOMES
             for line, text in raw_keys(source)]
    assert not found, ("sk8s.io/ keys spelled outside operators/models/contracts.py (import the constant, "
                       "or add it there):\n" + "\n".join(found))


def test_the_environment_is_read_only_in_config():
    found = [f"{path}:{line}: {what}" for path, source in _sources() if path not in ENV_HOMES
             for line, what in environment_reads(source)]
    assert not found, ("environment read outside operators/config.py (add an accessor there):\n"
                       + "\n".join(found))


def test_manifests_name_only_keys_that_contracts_define():
    """YAML cannot import a constant: an admission policy or manifest spells its keys, so each
    must still be one contracts.py defines (renaming a key there fails here)."""
    defined = {v for k, v in vars(contracts).items() if k.isupper() and isinstance(v, str)} | {API_VERSION}
    yamls = [p for top in ("operators", "manifests") for p in (ROOT / top).rglob("*.y*ml")]
    spelled = {(str(p.relative_to(ROOT)), key) for p in yamls
               for key in re.findall(r"sk8s\.io/[A-Za-z0-9._-]+", p.read_text())}
    assert spelled, "the tenancy policy names the tenant labels: the scan found none"
    assert not {f"{path}: {key}" for path, key in spelled if key not in defined}


def test_the_homes_exist():
    """An allow-list entry naming a moved module would silently allow nothing and hide nothing."""
    for path in (*KEY_HOMES, *ENV_HOMES):
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize("snippet, line", [
    ('LABEL = "sk8s.io/cluster-uid"\n', 1),
    ('def f(ns):\n    return {"labels": {f"sk8s.io/pod-{ns}": "x"}}\n', 2),
    ('x = 1\nkopf.on.event("v1", "secrets", labels={"sk8s.io/volume-content": "true"})\n', 2),
])
def test_a_raw_key_is_caught(snippet, line):
    assert [ln for ln, _ in raw_keys(snippet)] == [line]


def test_prose_and_other_strings_are_not_keys():
    src = '"""Labels such as sk8s.io/cluster-uid are in contracts."""\nGROUP = "sk8s.io"\nA = f"{GROUP}/x"\n'
    assert raw_keys(src) == []


@pytest.mark.parametrize("snippet, what", [
    ('import os\nx = os.environ.get("SK8S_X", "1")\n', "os.environ"),
    ('import os\nx = os.environ["HOME"]\n', "os.environ"),
    ('import os\nx = os.getenv("SK8S_X")\n', "os.getenv"),
    ('import os\nos.environ.setdefault("KUBECONFIG", "k")\n', "os.environ"),
    ('import os\nx = "SK8S_X" in os.environ\n', "os.environ"),
    ('from os import environ\n', "from os import environ"),
])
def test_an_environment_read_is_caught(snippet, what):
    assert [w for _, w in environment_reads(snippet)] == [what]


def test_copying_the_environment_for_a_child_is_not_a_read():
    src = 'import os\nenv = dict(os.environ, SK8S_HOME="/h")\nenv2 = dict(os.environ, **extra)\n'
    assert environment_reads(src) == []
