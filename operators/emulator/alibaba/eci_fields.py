"""One structure of an unflattened request, read field by field (pure).

Whatever a reader has not asked for by the time `done()` is called is a parameter the
emulator does not honour: it is refused as InvalidParameter naming the parameter as the
request spelled it ("Container.1.Gpu"), never dropped silently. Values are checked with the
same readers as the API's own (params.py), their errors naming the full parameter."""
from __future__ import annotations

from typing import Any

from . import params as p
from .errors import invalid

NOT_HONOURED = "The emulator does not support this parameter."


class Fields:
    def __init__(self, data: Any, path: str = ""):
        if not isinstance(data, dict):
            raise invalid(path.rstrip(".") or "(request)", "A structure is expected.")
        self.data = data
        self.path = path  # "" or "Container.1.": the prefix of every key read here
        self._read: set[str] = set()
        self._children: list[Fields] = []

    def name(self, key: str) -> str:
        return f"{self.path}{key}"

    def has(self, key: str) -> bool:
        return p.text(self.data, key) is not None or isinstance(self.data.get(key), (dict, list))

    def skip(self, *keys: str) -> None:
        """Parameters read elsewhere (the API's own: names, placement, tags)."""
        self._read.update(keys)

    def _scalar(self, key: str) -> dict[str, Any]:
        """{full name: value}: the params readers then name the full parameter in errors."""
        self._read.add(key)
        value = self.data.get(key)
        if isinstance(value, (dict, list)):
            raise invalid(self.name(key), "A single value is expected.")
        return {self.name(key): value}

    def text(self, key: str) -> str | None:
        return p.text(self._scalar(key), self.name(key))

    def literal(self, key: str) -> str | None:
        """A value where "None" is a value (DnsPolicy None), not the SDK's unset."""
        value = self._scalar(key)[self.name(key)]
        return None if value in (None, "") else str(value)

    def integer(self, key: str, low: int | None = None, high: int | None = None) -> int | None:
        return p.integer(self._scalar(key), self.name(key), low=low, high=high)

    def number(self, key: str) -> float | None:
        return p.number(self._scalar(key), self.name(key))

    def boolean(self, key: str) -> bool | None:
        """True, False, or None when absent."""
        one = self._scalar(key)
        return None if p.text(one, self.name(key)) is None else p.boolean(one, self.name(key))

    def choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(key)
        if value is not None and value not in allowed:
            raise invalid(self.name(key), f"One of {', '.join(allowed)}.")
        return value

    def strings(self, key: str) -> list[str] | None:
        """A list of values ("Command.1", "Command.2"...), None when absent."""
        self._read.add(key)
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or any(isinstance(v, (dict, list)) for v in value):
            raise invalid(self.name(key), "A list of values (Name.1, Name.2, ...) is expected.")
        return [str(v) for v in value]

    def child(self, key: str) -> Fields | None:
        self._read.add(key)
        value = self.data.get(key)
        if value is None:
            return None
        sub = Fields(value, f"{self.name(key)}.")
        self._children.append(sub)
        return sub

    def items(self, key: str) -> list[Fields]:
        """A list of structures ("Port.1.Port", "Port.2.Port"...), [] when absent."""
        self._read.add(key)
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(self.name(key), "A list (Name.1.Field, Name.2.Field, ...) is expected.")
        subs = [Fields(v, f"{self.name(key)}.{i}.") for i, v in enumerate(value, 1)]
        self._children.extend(subs)
        return subs

    def done(self) -> None:
        """Refuse the first parameter nobody read, here or in a structure read from here."""
        left = sorted(k for k in self.data if k not in self._read)
        if left:
            raise invalid(self.name(left[0]), NOT_HONOURED)
        for sub in self._children:
            sub.done()
