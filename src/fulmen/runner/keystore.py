"""Key stores: where omni keys come from (spec runner.md §3.8).

A store turns a :class:`KeyRequest` (an identity, its policy, and what the runner knows about
the asking worker) into the identity's 32-byte omni key, making it at random on first use.
The runner has checked the policy before asking; a remote store (a cloud KMS, an SSSS
network, Sapphire) would check again with its own evidence and its answer would be the one
that counts. The interface is small so that such a store is one class:

- ``local``: sealed in the runner's SQLite file under the master key; survives restarts.
- ``memory``: for tests and throwaway runners; gone when the runner stops.

``sapphire-*`` names are reserved for Escrin's networks and refused until a store for them
exists; any other unknown name is refused as Escrin refused it ("unknown key store").

The omni key leaves a store only into the runner's memory, for an HKDF derivation
(``bindings.py``); a worker never receives it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from fulmen.errors import KeyDenied
from fulmen.runner.policy import Evidence
from fulmen.runner.registry import Registry
from fulmen.runner.sealing import Sealer

__all__ = ["KEY_BYTES", "KeyRequest", "KeyStore", "KeyStores", "LocalKeyStore", "MemoryKeyStore"]

KEY_BYTES: Final = 32


@dataclass(frozen=True)
class KeyRequest:
    identity_id: bytes
    policy: Mapping[str, Any]
    evidence: Evidence


class KeyStore(Protocol):
    """Where one kind of omni key lives."""

    name: str

    async def acquire(self, request: KeyRequest) -> bytes:
        """The identity's key, made on first use; concurrent first requests get one key.

        Raises:
            KeyDenied: the store refuses this worker.
            KeyStoreError: the key exists but cannot be produced (never replaced by a new one).
        """
        ...

    async def destroy(self, identity_id: bytes) -> None:
        """Forget the identity's key for good."""
        ...


class MemoryKeyStore:
    """Keys in a dict: first use wins because nothing awaits between the check and the set."""

    name = "memory"

    def __init__(self) -> None:
        self._keys: dict[bytes, bytes] = {}

    async def acquire(self, request: KeyRequest) -> bytes:
        return self._keys.setdefault(request.identity_id, secrets.token_bytes(KEY_BYTES))

    async def destroy(self, identity_id: bytes) -> None:
        self._keys.pop(identity_id, None)


class LocalKeyStore:
    """Keys sealed in the runner's state file.

    First use draws a key, seals it and inserts it with ``ON CONFLICT DO NOTHING``, then
    reads the row back: whichever insert landed first is the key everyone gets (as Lockbox
    and OmniKeyStore do on chain). The key is unsealed for each request and not cached, so a
    tampered or re-keyed record is refused the next time it is asked for.
    """

    name = "local"

    def __init__(
        self, registry: Registry, sealer: Sealer, now: Callable[[], float] = time.time
    ) -> None:
        self._registry = registry
        self._sealer = sealer
        self._now = now

    async def acquire(self, request: KeyRequest) -> bytes:
        aad = self.aad(request.identity_id)
        record = await self._registry.sealed_key(self.name, request.identity_id)
        if record is None:
            fresh = self._sealer.seal(secrets.token_bytes(KEY_BYTES), aad)
            await self._registry.insert_sealed_key(
                self.name, request.identity_id, fresh, self._now()
            )
            record = await self._registry.sealed_key(self.name, request.identity_id)
            assert record is not None
        return self._sealer.open(record, aad)

    async def destroy(self, identity_id: bytes) -> None:
        await self._registry.delete_sealed_key(self.name, identity_id)

    @classmethod
    def aad(cls, identity_id: bytes) -> bytes:
        """What a sealed key is bound to: its store and identity."""
        return b"omni-key\0" + cls.name.encode() + b"\0" + identity_id


class KeyStores:
    """The stores this runner offers, by name."""

    def __init__(self, stores: Iterable[KeyStore]) -> None:
        self._stores = {store.name: store for store in stores}

    @property
    def names(self) -> list[str]:
        return sorted(self._stores)

    def get(self, name: object) -> KeyStore:
        """Raises KeyDenied for a reserved or unknown name."""
        store = self._stores.get(name) if isinstance(name, str) else None
        if store is not None:
            return store
        if isinstance(name, str) and name.startswith("sapphire-"):
            raise KeyDenied(f"key store {name!r} is not available on this runner")
        raise KeyDenied(f"unknown key store {name!r}; this runner has {', '.join(self.names)}")
