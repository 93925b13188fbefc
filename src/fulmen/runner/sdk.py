"""What a smart worker's script sees: ``rnr``, ``Request``, ``Response``, ``OmniKey``.

Scripts import it as ``smartworker`` (the host registers this module under that name). Every
binding is a request over the worker's channel, answered by the runner (``protocol.py``):
the config is fetched when asked for, and the omni key never comes here at all. An
:class:`OmniKey` is a name and a way to ask; HKDF runs in the runner, and only derived bytes
come back (spec runner.md §3.2). That is stronger than WebCrypto's non-extractable key: there
is nothing to extract from this process's memory.

Imported by the worker's process: standard library only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fulmen.runner.protocol import Op, b64decode, b64encode

__all__ = [
    "BindingError",
    "KeyDenied",
    "OmniKey",
    "Request",
    "Response",
    "Runner",
]

Call = Callable[[Op, dict[str, Any]], Awaitable[Any]]
"""Send a request to the runner and wait for its result (raises BindingError/KeyDenied)."""


class BindingError(Exception):
    """The runner refused or failed a binding call; ``code`` says why."""

    def __init__(self, message: str, code: str = "binding_error") -> None:
        super().__init__(message)
        self.code = code


class KeyDenied(BindingError):
    """The key policy does not release the omni key to this worker (the message says why)."""


@dataclass(frozen=True)
class Request:
    """An HTTP request routed from ``/workers/{id}/fetch/...``; ``path`` is the part after it."""

    method: str
    url: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    """What ``fetch`` may return; ``str``/``bytes`` (200) and ``dict``/``list`` (JSON) also do."""

    body: bytes | str = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(json.dumps(data).encode(), status, merged)


class OmniKey:
    """A handle on the worker's omni key in one store: it can derive, never export.

    Both methods compute HKDF-SHA256 (RFC 5869) in the runner; the output equals WebCrypto's
    ``deriveBits`` over an HKDF key with the same salt and info.
    """

    __slots__ = ("_call", "store")

    def __init__(self, call: Call, store: str) -> None:
        self._call = call
        self.store = store

    def __repr__(self) -> str:
        return f"OmniKey(store={self.store!r})"

    async def derive_bits(self, length_bits: int, salt: bytes = b"", info: bytes = b"") -> bytes:
        """``length_bits`` (a multiple of 8) bits of HKDF output."""
        if length_bits <= 0 or length_bits % 8:
            raise ValueError("length_bits must be a positive multiple of 8")
        return await self.derive_key(length_bits // 8, salt=salt, info=info)

    async def derive_key(self, length: int = 32, salt: bytes = b"", info: bytes = b"") -> bytes:
        """``length`` bytes of HKDF output, e.g. an AES-GCM key."""
        args = {
            "store": self.store,
            "length": length,
            "salt": b64encode(salt),
            "info": b64encode(info),
        }
        return b64decode(await self._call(Op.OMNI_DERIVE, args))


class Runner:
    """The ``rnr`` passed to every handler; built fresh for each invocation."""

    def __init__(
        self,
        call: Call,
        *,
        worker_id: str,
        name: str | None,
        args: Mapping[str, Any],
        trigger: Mapping[str, Any],
        log: logging.Logger,
    ) -> None:
        self._call = call
        self.worker_id = worker_id
        self.name = name
        self.args = dict(args)
        self.trigger = dict(trigger)
        self.log = log

    async def get_config(self) -> dict[str, Any]:
        """The private config given at creation (a fresh copy each call)."""
        config: dict[str, Any] = await self._call(Op.GET_CONFIG, {})
        return config

    async def get_omni_key(self, store: str = "local") -> OmniKey:
        """The omni key in ``store``, made on first use; raises KeyDenied if the policy says no."""
        await self._call(Op.OMNI_KEY, {"store": store})
        return OmniKey(self._call, store)

    async def emit(self, topic: str, payload: Any = None) -> list[str]:
        """Publish an event; returns the ids of the workers it was delivered to."""
        args = {"topic": topic, "payload": payload, "hops": self.trigger.get("hops", 0)}
        delivered: list[str] = await self._call(Op.EMIT, args)
        return delivered
