"""The code's shape is checked, not only its behaviour: the import layers hold
(import-linter, the contracts in pyproject.toml) and modules and functions stay small."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return sorted(p for p in (ROOT / "operators").rglob("*.py") if "__pycache__" not in p.parts)


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(LINT.parent), "PYTHONPATH": str(cwd)})


def test_the_import_layers_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("module, crossing", [
    ("operators/models/base.py", "from ..providers import errors as _x"),         # a lower layer upward
    ("operators/servicelb/operator.py", "from ..sandboxpod import status as _x"),  # operator to operator
    ("operators/providers/errors.py", "import kopf as _x"),                        # framework below operators
])
def test_crossing_a_layer_is_caught(tmp_path: Path, module: str, crossing: str):
    shutil.copytree(ROOT / "operators", tmp_path / "operators", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{crossing}\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert module.replace("/", ".").removesuffix(".py") in result.stdout


def test_no_module_is_over_the_size_limit():
    too_long = {str(p.relative_to(ROOT)): n for p in _sources()
                if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by responsibility): {too_long}"


def test_no_function_is_over_the_size_limit():
    too_long = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long[f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
