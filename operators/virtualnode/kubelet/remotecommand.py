"""The kubelet's remote command protocol (exec/attach) over WebSocket, as upstream speaks it.

Since Kubernetes 1.36 (ExtendWebSocketsToKubelet, beta, on by default) the apiserver hands
kubectl's WebSocket `v5.channel.k8s.io` upgrade straight to a kubelet that declares the
feature in `node.status.declaredFeatures`, instead of translating it to SPDY; `v4` requests
(client libraries) were always proxied as they are. Each binary message is one channel byte
followed by the payload; v5 adds the close signal `[255, channel]` (stdin EOF). The error
channel carries one JSON `metav1.Status` and the connection closes after it.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Mapping

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
# Before v4 (and with no subprotocol at all) the framing is the same, but the error channel
# carries only a failure's message as text, and nothing on success (the kubelet's
# v1WriteStatusFunc, cri-streaming/remotecommand).
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
PRE_V4 = ""  # a client that asks for no subprotocol
# In the order of preference: the client's own order decides among these.
PROTOCOLS = (V5, V4, V4_BASE64, V1, V1_BASE64)
BASE64 = (V4_BASE64, V1_BASE64)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255


class OptionsError(ValueError):
    pass


@dataclass(frozen=True)
class StreamOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: tuple[str, ...] = ()


def parse_options(query: Mapping[str, str], commands: list[str] | None = None, *, exec_: bool) -> StreamOptions:
    """The query of `/exec/...` and `/attach/...`, with the kubelet's own checks and messages."""
    flag = {k: query.get(k) == "1" for k in ("input", "output", "error", "tty")}
    tty = flag["tty"]
    # The kubelet drops stderr under a tty: the terminal merges it into stdout.
    stderr = flag["error"] and not tty
    if not (flag["input"] or flag["output"] or stderr):
        raise OptionsError("you must specify at least 1 of stdin, stdout, stderr")
    command = tuple(commands or ())
    if exec_ and not command:
        raise OptionsError("you must specify at least one command for the container")
    return StreamOptions(stdin=flag["input"], stdout=flag["output"], stderr=stderr, tty=tty, command=command)


def encode(protocol: str, channel: int, data: bytes) -> bytes | str:
    if protocol in BASE64:
        return chr(ord("0") + channel) + base64.b64encode(data).decode()
    return bytes([channel]) + data


@dataclass(frozen=True)
class Frame:
    channel: int
    data: bytes = b""
    close: bool = False  # v5: the client will send nothing more on `channel`


def decode(protocol: str, message: bytes | str) -> Frame | None:
    """One client message; None for empty or malformed ones, which upstream skips."""
    if isinstance(message, str):
        if protocol not in BASE64:
            # Upstream reads text messages as bytes too (the Python client sends str as text).
            message = message.encode()
        elif not message:
            return None
        else:
            try:
                return Frame(ord(message[0]) - ord("0"), base64.b64decode(message[1:]))
            except ValueError:
                return None
    if not message:
        return None
    if protocol == V5 and message[0] == CLOSE:
        return Frame(message[1], close=True) if len(message) == 2 else None
    return Frame(message[0], bytes(message[1:]))


class ResizeDecoder:
    """Terminal sizes from the resize channel: a stream of `{"Width":..,"Height":..}` objects."""

    def __init__(self):
        self._buf = ""
        self._json = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buf += data.decode(errors="replace")
        sizes = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return sizes
            try:
                obj, end = self._json.raw_decode(text)
            except ValueError:
                self._buf = text  # an object split across messages
                return sizes
            self._buf = text[end:]
            if isinstance(obj, dict):
                width, height = int(obj.get("Width") or 0), int(obj.get("Height") or 0)
                if width > 0 and height > 0:
                    sizes.append((width, height))


def status_for(protocol: str, status: bytes) -> bytes | None:
    """The error channel's last message for `protocol`: the Status as JSON from v4 on;
    before, a failure's message as text and nothing for success."""
    if protocol in (V5, V4, V4_BASE64):
        return status
    obj = json.loads(status)
    return None if obj.get("status") == "Success" else str(obj.get("message") or "").encode()


def _dump(status: dict) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def status_success() -> bytes:
    return _dump({"metadata": {}, "status": "Success"})


def status_exit_code(code: int) -> bytes:
    """What the kubelet sends for a non-zero exit; kubectl turns it into
    `command terminated with exit code N` and exits with N."""
    return _dump({
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: command terminated with exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    })


def status_internal_error(message: str) -> bytes:
    return _dump({
        "metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
        "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500,
    })
