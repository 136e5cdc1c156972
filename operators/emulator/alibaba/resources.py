"""What the emulator's VPC and ECS modules share with each other (and any later product
that makes tagged, paged, idempotent resources): ClientToken idempotency, Tag.N on create
and as a filter, PageNumber/PageSize paging, resource ids, a resource by id as its account
sees it.

- ClientToken: per account and action, the same token with the same parameters answers
  the first call's resource; with other parameters it is IdempotentParameterMismatch, as
  the cloud says it.
- Tags: at most 20, each with a Key; key and value at most 128 characters, not starting
  with "aliyun" or "acs:", without "http://" or "https://" (the cloud's rule). A Tag.N
  filter matches the key, and the value when one is given; several filters all match.
- Paging: PageNumber from 1, PageSize 1 to 50 (default 10); TotalCount counts all matches.
- Ids: prefix + 21 lowercase letters and digits ("vpc-bp1...", "vsw-..."); `own_shape`
  tells an id the emulator could have made from one it never would ("vsw-sk8s-local", the
  account's pre-existing VSwitch of the default placement).
- Accounts (accounts.py): `owned` finds a record by id for one account; another account's
  is None, as an unknown id is. Account None is the emulator's own view (every account's),
  for what is no call's: its background work, the data plane, unit tests."""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
import time
from typing import Callable, Mapping, Sequence, TypeVar

from . import params as p
from .errors import ApiError, invalid

MAX_TAGS = 20
MAX_PAGE_SIZE = 50
ID_LENGTH = 21
T = TypeVar("T")


def new_id(prefix: str) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return f"{prefix}-" + "".join(secrets.choice(alphabet) for _ in range(ID_LENGTH))


def own_shape(resource_id: str, prefix: str) -> bool:
    return re.fullmatch(rf"{re.escape(prefix)}-[a-z0-9]{{{ID_LENGTH}}}", resource_id) is not None


def owned(records: Mapping[str, T], resource_id: str, account: str | None) -> T | None:
    """The record of that id if `account` holds it (None: any account's), else None."""
    record = records.get(resource_id)
    if record is None or account not in (None, record.account):  # type: ignore[attr-defined]
        return None
    return record


class ClientTokens:
    def __init__(self) -> None:
        # (account, action, token) -> (fingerprint, id): the same token in two accounts is two tokens
        self._seen: dict[tuple[str, str, str], tuple[str, str]] = {}

    @staticmethod
    def _token(params: dict[str, str]) -> str | None:
        token = p.text(params, "ClientToken")
        if token is not None and (len(token) > 64 or not token.isascii()):
            raise invalid("ClientToken", "At most 64 ASCII characters.")
        return token

    @staticmethod
    def _fingerprint(region: str, params: dict[str, str]) -> str:
        body = sorted((k, v) for k, v in params.items() if k != "ClientToken")
        return hashlib.sha256(json.dumps([region, body]).encode()).hexdigest()

    def seen(self, action: str, account: str, region: str, params: dict[str, str]) -> str | None:
        """The id an earlier call with this token made, None if there was none."""
        token = self._token(params)
        if token is None:
            return None
        earlier = self._seen.get((account, action, token))
        if earlier is None:
            return None
        if earlier[0] != self._fingerprint(region, params):
            raise ApiError(400, "IdempotentParameterMismatch",
                           "The request uses the same client token as a previous, but non-identical request.")
        return earlier[1]

    def remember(self, action: str, account: str, region: str, params: dict[str, str], resource_id: str) -> None:
        token = self._token(params)
        if token is not None:
            self._seen[(account, action, token)] = (self._fingerprint(region, params), resource_id)


def _tag_text_ok(value: str) -> bool:
    return (len(value) <= 128 and not value.startswith(("aliyun", "acs:"))
            and "http://" not in value and "https://" not in value)


def create_tags(params: dict[str, str]) -> list[dict[str, str]]:
    """The Tag.N of a create, checked as the cloud checks them."""
    tags = p.unflatten({k: v for k, v in params.items() if k.startswith("Tag.")}).get("Tag", [])
    if len(tags) > MAX_TAGS or any(not isinstance(t, dict) or not t.get("Key") for t in tags):
        raise invalid("Tag", f"At most {MAX_TAGS} tags, each with a Key.")
    for i, t in enumerate(tags, 1):
        for field in ("Key", "Value"):
            if not _tag_text_ok(t.get(field, "")):
                raise invalid(f"Tag.{i}.{field}", "At most 128 characters, not starting with aliyun or acs:, "
                              "without http:// or https://.")
    return [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags]


def tag_filters(params: dict[str, str]) -> list[dict[str, str]]:
    tags = p.unflatten({k: v for k, v in params.items() if k.startswith("Tag.")}).get("Tag", [])
    if len(tags) > MAX_TAGS or any(not isinstance(t, dict) or not t.get("Key") for t in tags):
        raise invalid("Tag", f"At most {MAX_TAGS} tag filters, each with a Key.")
    return tags


def tagged(tags: Sequence[dict[str, str]], filters: Sequence[dict[str, str]]) -> bool:
    return all(any(t["Key"] == f["Key"] and ("Value" not in f or t["Value"] == f["Value"]) for t in tags)
               for f in filters)


def page(items: list[T], params: dict[str, str]) -> tuple[list[T], dict[str, int]]:
    """One page of `items` (already in creation order) and the paging fields of the answer."""
    number = p.integer(params, "PageNumber", 1, low=1)
    size = p.integer(params, "PageSize", 10, low=1, high=MAX_PAGE_SIZE)
    start = (number - 1) * size
    return items[start:start + size], {"TotalCount": len(items), "PageNumber": number, "PageSize": size}


def first_user(users: list[Callable[[str], str | None]], resource_id: str) -> str | None:
    """The kind of the first resource that depends on `resource_id` ("SecurityGroup",
    "ContainerGroup", "LoadBalancer"...), None when nothing does."""
    for user in users:
        kind = user(resource_id)
        if kind:
            return kind
    return None


def not_found(kind: str, resource_id: str, what: str) -> ApiError:
    return ApiError(404, f"Invalid{kind}Id.NotFound", f"The specified {what} {resource_id} does not exist.")


def render_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

