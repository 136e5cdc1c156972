"""Runs one probe against a container: exec inside it; httpGet, tcpSocket and grpc from
inside the pod's own network namespace, to the pod itself. Outcomes and messages as the kubelet's
prober words them, since users read them in `kubectl describe pod` events.

The host is never a probe's vantage point: a probe's `host` is the tenant's to choose, and
from the host it would reach the host's loopback services (the meta-cluster's etcd and
apiservers) and other tenants' pods. So the socket is created in the pod's namespace, only
the pod's own addresses are accepted (its IP, or loopback, which there is the pod's), and
nothing is resolved. Admission refuses other hosts already; this is the second line."""
from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import quote

from ....models.contracts import DEFAULT_VERSION
from ....models.podspec import Container, Probe
from .. import netns
from . import grpcprobe

ExecFn = Callable[[list[str], float], Awaitable[tuple[int, str]]]
# The kubelet's: kube-probe/<major>.<minor> of the Kubernetes version sk8s runs.
USER_AGENT = "kube-probe/" + ".".join(DEFAULT_VERSION.removeprefix("v").split(".")[:2])
EXEC_SETUP_ALLOWANCE = 3.0
# Hosts that name the pod itself inside its network namespace (see README, probes).
LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "127.0.0.1"}
HEADER_NAME = re.compile(r"[-A-Za-z0-9]+")         # the apiserver's IsHTTPHeaderName
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what Go's net/http refuses in a value or URL
STATUS_FAILURE = "HTTP probe failed with statuscode: "  # a response came (lifecycle hooks accept it)


@dataclass(frozen=True)
class PodNetwork:
    """Where a pod's probes connect from and to."""

    ip: str | None     # the pod's address
    netns: str | None  # path of the pod's network namespace (the infra container's SandboxKey)


class Refused(ValueError):
    """A probe that would leave the pod or add to the request: never sent."""


def resolve_port(port: int | str, container: Container) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    return next((p.containerPort for p in container.ports or [] if p.name == port), None)


def target_address(host: str | None, pod_ip: str | None) -> str:
    """The address a probe connects to: the pod IP, or a loopback literal (the pod's own
    loopback, inside its namespace). Anything else, a name included, is refused: a name
    would need a resolver, and any other address is not the pod."""
    if not host or host == pod_ip:
        if not pod_ip:
            raise Refused("the pod has no IP address yet")
        return pod_ip
    if host in LOOPBACK_HOSTS:
        return LOOPBACK_HOSTS[host]
    raise Refused(f"probe host {json.dumps(host)} is not the pod: probes connect only to the pod itself "
                  f"(leave host empty, or use 127.0.0.1, ::1 or localhost)")


def request_path(path: str | None) -> str:
    """The request target as Go's url package writes it: escaped, so that no byte of the
    path can end the request line. A control character is refused, as Go refuses it."""
    path = path or "/"
    if CONTROL.search(path):
        raise Refused(f"parse {json.dumps(path)}: net/url: invalid control character in URL")
    if not path.startswith("/"):
        path = "/" + path
    path = path.split("#", 1)[0]
    return quote(path, safe="/?&=%:@!$'()*+,;~-._[]")


def request_headers(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Header lines as given, each name a token and each value free of line breaks and
    other control characters (Go's net/http refuses them too): no value can add a line."""
    for name, value in pairs:
        if not HEADER_NAME.fullmatch(name):
            raise Refused(f"net/http: invalid header field name {json.dumps(name)}")
        if CONTROL.search(value):
            raise Refused(f"net/http: invalid header field value for {json.dumps(name)}")
    return pairs


async def probe(p: Probe, container: Container, pod: PodNetwork, exec_fn: ExecFn) -> tuple[bool, str]:
    """(success, message on failure)."""
    timeout = float(p.timeoutSeconds or 1)
    if p.exec is not None:
        return await _exec(p.exec.command, timeout, exec_fn)
    action = p.httpGet or p.tcpSocket or p.grpc
    if action is None:
        return True, ""
    port = resolve_port(action.port, container)
    if port is None:
        return False, f"unable to find port {action.port!r} in container {container.name}"
    try:
        host = target_address(getattr(action, "host", None), pod.ip)
    except Refused as exc:
        return False, str(exc)
    if not pod.netns:
        return False, "the pod has no network namespace yet"
    if p.httpGet is not None:
        return await _http_get(p, pod.netns, host, port, timeout)
    if p.grpc is not None:
        return await _grpc(p, pod.netns, host, port, timeout)
    return await _tcp(pod.netns, host, port, timeout)


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
        return f"dial tcp {_hostport(host, port)}: i/o timeout"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {_hostport(host, port)}: connect: connection refused"
    return f"dial tcp {_hostport(host, port)}: {exc}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _connect(netns_path: str, host: str, port: int, timeout: float,
                   ctx: ssl.SSLContext | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream to host:port from inside the pod's network namespace."""
    async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = await netns.connect_in(netns_path, host, port)
        try:
            # No SNI for an address, as Go's TLS client; "localhost" was mapped to one.
            return await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname="" if ctx else None)
        except BaseException:
            sock.close()
            raise
    return await asyncio.wait_for(dial(), timeout)


async def _tcp(netns_path: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _, writer = await _connect(netns_path, host, port, timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return False, _dial_error(host, port, exc)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, ""


async def _http_get(p: Probe, netns_path: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
    action = p.httpGet
    assert action is not None
    scheme = (action.scheme or "HTTP").lower()
    try:
        path = request_path(action.path)
        given = request_headers([(h.name, h.value) for h in action.httpHeaders or []])
    except Refused as exc:
        return False, f'Get "{scheme}://{_hostport(host, port)}": {exc}'
    url = f"{scheme}://{_hostport(host, port)}{path}"
    headers = {"Host": _hostport(host, port), "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
    for name, value in given:
        headers[name.title() if name.lower() in ("host", "user-agent", "accept") else name] = value
    # The kubelet does not verify probe certificates.
    ctx = None
    if scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        reader, writer = await _connect(netns_path, host, port, timeout, ctx)
    except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
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
    return False, f"{STATUS_FAILURE}{code}"


async def _grpc(p: Probe, netns_path: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
    """grpc.health.v1.Health/Check, with the messages of the kubelet's gRPC prober."""
    action = p.grpc
    assert action is not None
    addr = _hostport(host, port)
    tls = action.mode == "TLS"
    ctx = None
    if tls:  # as the kubelet: TLS without verifying the certificate
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
    try:
        reader, writer = await _connect(netns_path, host, port, timeout, ctx)
    except asyncio.TimeoutError:
        return False, f'timeout: failed to connect service "{addr}" within {timeout:g}s: context deadline exceeded'
    except OSError as exc:
        return False, f'error: failed to connect service at "{addr}": {_dial_error(host, port, exc)}'
    try:
        status = await asyncio.wait_for(grpcprobe.check(reader, writer, authority=addr, service=action.service or "",
                                                        tls=tls, user_agent=USER_AGENT), timeout)
    except asyncio.TimeoutError:
        return False, f"timeout: health rpc did not complete within {timeout:g}s"
    except grpcprobe.RPCError as exc:
        if exc.code == grpcprobe.UNIMPLEMENTED:
            return False, ("error: this server does not implement the grpc health protocol "
                           f"(grpc.health.v1.Health): {exc.message}")
        return False, f"error: health rpc probe failed: {exc}"
    except (OSError, ValueError) as exc:
        return False, f"error: health rpc probe failed: {exc}"
    finally:
        writer.close()
    if status != grpcprobe.SERVING:
        return False, f'service unhealthy (responded with "{grpcprobe.STATUS_NAMES.get(status, str(status))}")'
    return True, ""
