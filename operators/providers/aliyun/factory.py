"""The aliyun provider made from the operator's configuration (config.aliyun_settings):
the installation's account, and the clusters' own (accounts.py) behind a router."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from ...config import layout
from ..errors import ProviderError
from .accounts import AccountStore
from .client import AliyunClient, Credentials
from .eci_spec import EciPlacement
from .routed import Router

T = TypeVar("T")


def read_credentials(directory: str | None) -> Credentials:
    """An access key pair from a mounted Secret's files; the error names the file, never a value."""
    if not directory:
        raise ProviderError("no credentials: SK8S_ALIYUN_CREDENTIALS names no directory",
                            reason="MissingCredentials", retryable=False)
    values = {}
    for key in ("access-key-id", "access-key-secret"):
        path = Path(directory) / key
        try:
            values[key] = path.read_text().strip()
        except OSError as exc:
            raise ProviderError(f"cannot read credential file {path}: {exc.strerror}",
                                reason="MissingCredentials", retryable=False) from None
        if not values[key]:
            raise ProviderError(f"credential file {path} is empty", reason="MissingCredentials", retryable=False)
    return Credentials(values["access-key-id"], values["access-key-secret"])


def make_client(settings: dict, credentials: Credentials | None = None) -> AliyunClient:
    return AliyunClient(credentials or read_credentials(settings.get("credentials")), settings["region"],
                        endpoint=settings.get("endpoint"))


def account_store() -> AccountStore:
    """The clusters' own accounts, beside this home's other keys (0700)."""
    return AccountStore(layout().pki / "aliyun-accounts")


def make_router(settings: dict, build: Callable[[AliyunClient], T]) -> Router[T]:
    """`build(client)` makes one account's object; a client per account and region."""
    return Router(read_credentials(settings.get("credentials")), account_store(),
                  lambda creds: build(make_client(settings, creds)))


def make_placement(settings: dict, home_id: str) -> EciPlacement:
    """The operator-wide placement; each sandbox's cluster comes from its labels."""
    missing = [name for name, key in (("SK8S_ALIYUN_VSWITCH", "vswitch"),
                                      ("SK8S_ALIYUN_SECURITY_GROUP", "security_group")) if not settings.get(key)]
    if missing:
        raise ProviderError(f"{' and '.join(missing)} must be set for the aliyun provider",
                            reason="MissingConfiguration", retryable=False)
    return EciPlacement(region_id=settings["region"], zone_id=settings.get("zone"), vswitch_id=settings["vswitch"],
                        security_group_id=settings["security_group"], cluster_uid="", home_id=home_id)
