"""Cloud accounts as the API sees them: every access key belongs to one account, and every
resource to the account whose key made it.

The keys the emulator starts with form the account DEFAULT; `POST /_emulator/accounts`
(`Accounts.add`) adds an account with its keys, or more keys to one. A call sees only its
own account's resources: listings leave the others out, and an id of another account's
resource is answered as an id that does not exist (each product's own NotFound), as the
cloud answers it. ClientTokens are per account. Accounts are the API's view only: the local
data plane (sandboxes, VPC networks, load balancers) is one host's, shared by all."""
from __future__ import annotations

from typing import Any, Mapping

DEFAULT = "default"


class Accounts:
    """Access key id -> account name, and the secrets the Verifier checks signatures with."""

    def __init__(self, credentials: Mapping[str, str], secrets: dict[str, str]):
        self.secrets = secrets  # the Verifier's own mapping: a key added here signs at once
        self.of_key: dict[str, str] = {key_id: DEFAULT for key_id in credentials}

    def account(self, key_id: str) -> str:
        return self.of_key[key_id]

    def add(self, body: Any) -> None:
        """{"name": NAME, "keys": {ACCESS_KEY_ID: SECRET, ...}}: ValueError, naming what is
        wrong, for a malformed body or a key already known (to any account)."""
        if not isinstance(body, dict):
            raise ValueError('a JSON object {"name": ..., "keys": {ACCESS_KEY_ID: SECRET}} is expected')
        name, keys = body.get("name"), body.get("keys")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name: a non-empty string is expected")
        if not isinstance(keys, dict) or not keys or not all(
                isinstance(k, str) and k and isinstance(s, str) and s for k, s in keys.items()):
            raise ValueError("keys: a non-empty object of ACCESS_KEY_ID: SECRET strings is expected")
        known = sorted(k for k in keys if k in self.secrets)
        if known:
            raise ValueError(f"access keys already known: {known}")
        self.secrets.update(keys)
        self.of_key.update({key_id: name for key_id in keys})
