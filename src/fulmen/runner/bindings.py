"""The runner's answers to a worker's requests: config, omni keys, derivations, events.

Every request arrives on one worker's own channel, and the channel decides who is asking
(``supervisor.py`` binds :meth:`Bindings.serve` to the worker's record); a frame never names
its sender, so no worker can ask on another's behalf. Unknown ops are refused with
``unknown_op``: there is no op that returns an omni key, only derivations from it.

Keys: each ``get_omni_key`` and each derivation checks the key policy again against evidence
the runner gathers itself (``policy.Evidence``), then asks the store. A named identity's
policy is read fresh each time, so replacing or expiring it takes effect on the next call.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fulmen.errors import KeyDenied, RunnerError
from fulmen.runner import topics
from fulmen.runner.hkdf import MAX_LENGTH, hkdf_sha256
from fulmen.runner.keystore import KeyRequest, KeyStores
from fulmen.runner.policy import Evidence, evaluate
from fulmen.runner.protocol import Op, b64decode, b64encode
from fulmen.runner.registry import Registry, WorkerRecord
from fulmen.runner.sealing import Sealer

__all__ = ["Bindings", "config_aad"]

Publish = Callable[[str, Any, str, int], Awaitable[list[str]]]
"""(topic, payload, source worker id, hops) -> ids delivered to."""
EvidenceOf = Callable[[WorkerRecord], Evidence]


def config_aad(worker_id: str) -> bytes:
    """What a sealed config is bound to: its worker."""
    return b"config\0" + worker_id.encode()


class Bindings:
    def __init__(
        self,
        registry: Registry,
        sealer: Sealer,
        stores: KeyStores,
        evidence: EvidenceOf,
        publish: Publish,
    ) -> None:
        self._registry = registry
        self._sealer = sealer
        self._stores = stores
        self._evidence = evidence
        self._publish = publish

    async def serve(self, worker: WorkerRecord, op: str, args: dict[str, Any]) -> Any:
        """Answer one request from ``worker``'s channel.

        Raises:
            RunnerError: ``unknown_op``, ``bad_request``; KeyDenied; KeyStoreError.
        """
        if op == Op.GET_CONFIG:
            return await self.config(worker)
        if op == Op.OMNI_KEY:
            await self.omni_key(worker, args.get("store"))
            return {"store": args.get("store")}
        if op == Op.OMNI_DERIVE:
            return await self._derive(worker, args)
        if op == Op.EMIT:
            return await self._emit(worker, args)
        raise RunnerError(f"unknown op {op!r}", code="unknown_op")

    async def config(self, worker: WorkerRecord) -> dict[str, Any]:
        record = await self._registry.sealed_config(worker.id)
        if record is None:
            raise RunnerError("the worker's config is gone", code="not_found")
        config: dict[str, Any] = json.loads(self._sealer.open(record, config_aad(worker.id)))
        return config

    async def omni_key(self, worker: WorkerRecord, store_name: object) -> bytes:
        """The worker's omni key in ``store_name``, for a derivation in this process only.

        Raises:
            KeyDenied: unknown store, or the policy does not release the key now.
            KeyStoreError: the stored key does not open.
        """
        store = self._stores.get(store_name)
        identity_id, policy = await self._identity(worker)
        evidence = self._evidence(worker)
        allowed, reason = evaluate(policy, evidence)
        if not allowed:
            raise KeyDenied(f"key policy: {reason}")
        return await store.acquire(KeyRequest(identity_id, policy, evidence))

    async def _identity(self, worker: WorkerRecord) -> tuple[bytes, dict[str, Any]]:
        if worker.identity_name is None:
            # A default identity hashes the script in; its policy implicitly lists it.
            return worker.identity_id, {"scripts": [worker.script_sha256], **worker.policy}
        identity = await self._registry.identity(worker.identity_name)
        if identity is None:
            raise KeyDenied(f"identity {worker.identity_name!r} no longer exists")
        return identity.identity_id, identity.policy

    async def _derive(self, worker: WorkerRecord, args: dict[str, Any]) -> str:
        length = args.get("length")
        if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= MAX_LENGTH:
            raise RunnerError(f"length must be 1..{MAX_LENGTH} bytes", code="bad_request")
        try:
            salt, info = b64decode(args.get("salt", "")), b64decode(args.get("info", ""))
        except ValueError as exc:
            raise RunnerError(f"salt and info must be base64: {exc}", code="bad_request") from None
        key = await self.omni_key(worker, args.get("store"))
        return b64encode(hkdf_sha256(key, length, salt=salt, info=info))

    async def _emit(self, worker: WorkerRecord, args: dict[str, Any]) -> list[str]:
        topic, hops = args.get("topic"), args.get("hops", 0)
        if not isinstance(topic, str) or not topics.is_topic(topic):
            raise RunnerError("topic must be [a-z0-9_.-]+", code="bad_request")
        if not isinstance(hops, int) or hops < 0:
            hops = 0
        if hops + 1 > topics.MAX_HOPS:
            raise RunnerError(
                f"event chain longer than {topics.MAX_HOPS} hops", code="too_many_hops"
            )
        return await self._publish(topic, args.get("payload"), worker.id, hops + 1)
