"""No blocking call inside an `async def` in operators/: it would stall every handler,
watch and timer sharing the event loop (kopf's, or the virtual node's).

Blocking work crosses to a thread at a named place (serverlesscluster.cluster.on_host,
asyncio.to_thread) or is done with asyncio subprocesses and aiohttp. A sync function
nested in a coroutine is not scanned: it is what gets handed to a thread. What remains
is listed in ALLOWED with the reason it is harmless.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPERATORS = ROOT / "operators"

# module.attribute calls that block the calling thread.
BLOCKING = {
    "time.sleep",
    "urllib.request.urlopen", "urllib.request.Request", "urllib.request.build_opener",
    "subprocess.run", "subprocess.check_output", "subprocess.check_call", "subprocess.call",
    "requests.get", "requests.post", "requests.put", "requests.patch", "requests.delete", "requests.head",
    "requests.request", "requests.Session",
    "fcntl.flock", "fcntl.lockf",  # lock waits
}

# "path:function:call" -> why it stays.
ALLOWED: dict[str, str] = {}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _calls_in(func: ast.FunctionDef | ast.AsyncFunctionDef):
    """Calls made by the coroutine itself: nested functions and lambdas are not its own code."""
    stack = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolver(tree: ast.Module, module: str, is_package: bool):
    """A call's target as a dotted name: imports resolved (relative ones too), and a bare
    name of a function defined in this module as `module.name`."""
    aliases: dict[str, str] = {}
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                aliases[a.asname or a.name] = f"{base}.{a.name}"
    local = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def resolve(call: ast.Call) -> str | None:
        name = _dotted(call.func)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head in local and not rest:
            return f"{module}.{head}"
        return ".".join(p for p in (aliases.get(head, head), rest) if p)
    return resolve


def _functions(tree: ast.Module):
    """Top-level functions: their calls can be followed from another module by name."""
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def scan(sources: dict[str, tuple[str, str]]) -> dict[str, int]:
    """{module: (path, source)} -> "path:coroutine:call" -> line, for each call a coroutine
    makes that blocks: a call in BLOCKING, or of a module-level sync function that makes
    one (however many sync functions deep)."""
    parsed = {m: (path, ast.parse(src)) for m, (path, src) in sources.items()}
    resolvers = {m: _resolver(tree, m, path.endswith("__init__.py")) for m, (path, tree) in parsed.items()}
    sync_calls: dict[str, set[str]] = {}
    for m, (_, tree) in parsed.items():
        for f in _functions(tree):
            if isinstance(f, ast.FunctionDef):
                sync_calls[f"{m}.{f.name}"] = {r for c in _calls_in(f) if (r := resolvers[m](c))}
    blocking = set(BLOCKING)
    while True:  # sync functions that block, directly or through others, to a fixed point
        more = {f for f, calls in sync_calls.items() if f not in blocking and calls & blocking}
        if not more:
            break
        blocking |= more
    found: dict[str, int] = {}
    for m, (path, tree) in parsed.items():
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)):
            for call in _calls_in(func):
                target = resolvers[m](call)
                if target in blocking:
                    found.setdefault(f"{path}:{func.name}:{target}", call.lineno)
    return found


def blocking_calls(source: str, path: str) -> dict[str, int]:
    return scan({path.removesuffix(".py").replace("/", "."): (path, source)})


def test_no_blocking_call_in_a_coroutine():
    sources = {_module_name(p): (str(p.relative_to(ROOT)), p.read_text()) for p in sorted(OPERATORS.rglob("*.py"))}
    found = scan(sources)
    unexplained = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not unexplained, ("blocking calls in coroutines (make them async, or cross to a thread at a "
                             f"named place): {unexplained}")
    stale = set(ALLOWED) - set(found)
    assert not stale, f"allowed but no longer found (remove from ALLOWED): {stale}"


def test_the_scan_finds_each_form():
    src = '''
import time, subprocess as sp
import urllib.request
from subprocess import check_output
import requests

async def a():
    time.sleep(1)
    sp.run(["x"])
    urllib.request.urlopen("http://x")
    check_output(["y"])
    requests.get("http://z")

async def b():
    def in_thread():
        time.sleep(1)  # handed to a thread: not the coroutine's own code
    await asyncio.to_thread(in_thread)
    await asyncio.sleep(1)

def c():
    time.sleep(1)  # not a coroutine: blocks whoever calls it

def d():
    return c()

async def e():
    d()  # blocks, two sync functions deep
    await asyncio.to_thread(d)  # does not
'''
    assert set(blocking_calls(src, "m.py")) == {
        "m.py:a:time.sleep", "m.py:a:subprocess.run", "m.py:a:urllib.request.urlopen",
        "m.py:a:subprocess.check_output", "m.py:a:requests.get", "m.py:e:m.d"}


def test_the_scan_follows_calls_across_modules():
    found = scan({
        "pkg.etcd": ("pkg/etcd.py", "import urllib.request\ndef wipe():\n    urllib.request.urlopen('x')\n"),
        "pkg.pool": ("pkg/pool.py", "from . import etcd\nfrom .etcd import wipe as w\n"
                     "async def keep():\n    etcd.wipe()\n    w()\n")})
    assert set(found) == {"pkg/pool.py:keep:pkg.etcd.wipe"}
