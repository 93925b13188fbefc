"""Named identities: an omni key whose policy its owner can change (spec runner.md §3.8).

``POST /identities {name, policy}`` makes a random 32-byte identity and returns an admin
token once; only the token's SHA-256 is kept. ``PUT /identities/{name}`` with that token
replaces the policy. A worker created with ``identity: name`` gets the identity's key only
while the current policy admits it, which is how a script can be upgraded and keep its key:
list both versions' hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from fulmen.errors import RunnerError
from fulmen.runner.policy import validate_policy
from fulmen.runner.registry import Identity, Registry
from fulmen.runner.spec import check_name

__all__ = ["Identities"]


class Identities:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def create(self, name: object, policy: object) -> dict[str, Any]:
        """Raises RunnerError: ``bad_request``, ``name_taken``."""
        checked = validate_policy(policy, named=True)
        token = secrets.token_urlsafe(32)
        identity = Identity(
            check_name(name, "name"), secrets.token_bytes(32), checked, _hash(token)
        )
        await self._registry.add_identity(identity)
        return {
            "name": identity.name,
            "identity_id": identity.identity_id.hex(),
            "admin_token": token,
        }

    async def get(self, name: str) -> dict[str, Any]:
        identity = await self._find(name)
        return {
            "name": identity.name,
            "identity_id": identity.identity_id.hex(),
            "policy": identity.policy,
        }

    async def update(self, name: str, policy: object, token: str | None) -> dict[str, Any]:
        """Replace the policy. Raises RunnerError ``unauthorized``/``forbidden``/``bad_request``."""
        identity = await self._find(name)
        if not token:
            raise RunnerError("the identity's admin token is required", code="unauthorized")
        if not hmac.compare_digest(_hash(token), identity.token_sha256):
            raise RunnerError("wrong admin token for this identity", code="forbidden")
        await self._registry.set_identity_policy(name, validate_policy(policy, named=True))
        return await self.get(name)

    async def _find(self, name: str) -> Identity:
        identity = await self._registry.identity(name)
        if identity is None:
            raise RunnerError(f"no identity named {name!r}", code="not_found")
        return identity


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
