"""Runs one probe against a container: exec inside it, httpGet and tcpSocket from the host
to the pod IP (the host reaches every sandbox network). Outcomes and messages as the
kubelet's prober words them, since users read them in `kubectl describe pod` events."""
from __future__ import annotations

import asyncio
import ssl
from typing import Awaitable, Callable

from ....models.podspec import Container, Probe

ExecFn = Callable[[list[str], float], Awaitable[tuple[int, str]]]
USER_AGENT = "kube-probe/1.37"
EXEC_SETUP_ALLOWANCE = 3.0


def resolve_port(port: int | str, container: Container) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    return next((p.containerPort for p in container.ports or [] if p.name == port), None)


async def probe(p: Probe, container: Container, pod_ip: str | None, exec_fn: ExecFn) -> tuple[bool, str]:
    """(success, message on failure)."""
    timeout = float(p.timeoutSeconds or 1)
    if p.exec is not None:
        return await _exec(p.exec.command, timeout, exec_fn)
    action = p.httpGet or p.tcpSocket
    if action is None:
        return True, ""
    port = resolve_port(action.port, container)
    if port is None:
        return False, f"unable to find port {action.port!r} in container {container.name}"
    host = action.host or pod_ip
    if not host:
        return False, "the pod has no IP address yet"
    if p.httpGet is not None:
        return await _http_get(p, host, port, timeout)
    return await _tcp(host, port, timeout)


async def _exec(command: list[str], timeout: float, exec_fn: ExecFn) -> tuple[bool, str]:
    try:
        # timeoutSeconds bounds the command, not the seconds `podman exec` itself needs to
        # set the process up (more on a loaded host): a healthy container must not fail.
        code, output = await exec_fn(command, timeout + EXEC_SETUP_ALLOWANCE)
    except asyncio.TimeoutError:
        return False, f"command {' '.join(command)!r} timed out"
    if code == 0:
        return True, ""
    return False, output.strip() or f"command {' '.join(command)!r} exited with {code}"


def _dial_error(host: str, port: int, exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {host}:{port}: connect: connection refused"
    return f"dial tcp {host}:{port}: {exc}"


async def _tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return False, _dial_error(host, port, exc)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, ""


async def _http_get(p: Probe, host: str, port: int, timeout: float) -> tuple[bool, str]:
    action = p.httpGet
    assert action is not None
    scheme = (action.scheme or "HTTP").lower()
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
    for h in action.httpHeaders or []:
        headers[h.name.title() if h.name.lower() in ("host", "user-agent", "accept") else h.name] = h.value
    # The kubelet does not verify probe certificates.
    ctx = None
    if scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return False, f'Get "{url}": {_dial_error(host, port, exc)}'
    try:
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(request.encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)" \
            if isinstance(exc, asyncio.TimeoutError) else str(exc)
        return False, f'Get "{url}": {reason}'
    finally:
        writer.close()
    parts = line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f'Get "{url}": malformed HTTP response {line[:100]!r}'
    code = int(parts[1])
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"
