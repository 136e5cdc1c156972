"""The framing of ECI's exec WebSocket (the WebSocketUri that ExecContainerCommand answers),
spoken by the aliyun provider and served by the emulator.

Alibaba documents the URI, not what travels on it. What public clients of the real service
read (binary messages whose first byte, 0 to 4, is cut off before the text) is Kubernetes'
channel framing, which we therefore use in full: each binary message is one channel byte
and its payload (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); the error channel carries
one JSON `metav1.Status` (Success, or NonZeroExitCode with the code in a cause) before the
server closes; a resize is `{"Width": w, "Height": h}`; under `v5.channel.k8s.io` the client
ends its input with `[255, 0]`. Payloads with no channel byte of ours are ignored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255


@dataclass(frozen=True)
class Frame:
    channel: int
    data: bytes = b""
    close: bool = False  # [255, channel]: nothing more on that channel


def encode(channel: int, data: bytes = b"") -> bytes:
    return bytes([channel]) + data


def close_stdin() -> bytes:
    return bytes([CLOSE, STDIN])


def decode(message: bytes | str) -> Frame | None:
    """One message; None for an empty or malformed one. Text messages are read as bytes (some
    clients send text frames for binary data)."""
    if isinstance(message, str):
        message = message.encode()
    if not message:
        return None
    if message[0] == CLOSE:
        return Frame(message[1], close=True) if len(message) == 2 else None
    return Frame(message[0], bytes(message[1:]))


def resize(width: int, height: int) -> bytes:
    return encode(RESIZE, json.dumps({"Width": width, "Height": height}).encode())


def parse_resize(data: bytes) -> tuple[int, int] | None:
    try:
        obj = json.loads(data)
        width, height = int(obj.get("Width") or 0), int(obj.get("Height") or 0)
    except (ValueError, TypeError, AttributeError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _dump(status: dict) -> bytes:
    return json.dumps(status, separators=(",", ":")).encode()


def exit_status(code: int) -> bytes:
    """The error channel's message for a command that exited with `code`."""
    if code == 0:
        return _dump({"metadata": {}, "status": "Success"})
    return _dump({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                  "message": f"command terminated with non-zero exit code: {code}",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})


def failure_status(message: str) -> bytes:
    """The error channel's message when the command could not be run at all."""
    return _dump({"metadata": {}, "status": "Failure", "reason": "InternalError", "message": message})


@dataclass(frozen=True)
class Outcome:
    """What the error channel said: an exit code, or why there is none."""

    exit_code: int | None
    message: str = ""


def parse_status(data: bytes) -> Outcome:
    try:
        status = json.loads(data)
    except ValueError:
        return Outcome(None, data.decode(errors="replace"))
    if not isinstance(status, dict):
        return Outcome(None, str(status))
    if status.get("status") == "Success":
        return Outcome(0)
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return Outcome(int(cause.get("message")))
            except (TypeError, ValueError):
                break
    return Outcome(None, str(status.get("message") or "the command failed"))
