"""What the coordinator remembers about a run between its events, in this process.

* **Replays.** A Fulmen worker whose socket dropped before a reply arrived joins the run
  channel again and sends the same event again (the server may or may not have stored it).
  Each lifecycle event that changed something is remembered by a fingerprint of its name
  and payload, with the reply it got; the same event again gets the same reply. A copy that
  arrives while the first is still being handled waits for the first's outcome. This is a
  shortcut, not the guarantee: across a restart or another coordinator (PostgreSQL) the run
  and step state tables catch those events (channels/reports.py). Log frames are not
  remembered here at all: the store recognises a resent one across processes
  (store/events.py), where only the run's last frame can be a copy; remembered here, a new
  frame equal to any of the last few hundred would be taken for one.
* **Secrets** (spec §8.4): the run's scrubber (fulmen.scrub), built when a worker joins the
  run from the credentials its plan uses and the webhook-auth secrets of its triggers
  (channels/secrets.py), and used on every log line, output and error a worker sends.
* **The webhook reply** (§10.1): the latest ``webhook_response`` and the final state, for a
  trigger that answers its HTTP caller after the run completes.
* **The plan** a claim that fetched read, until the run's join takes it (channels/fetched.py).

Bounded: the runs least recently used are forgotten first (each with at most
``MAX_REPLIES`` remembered replies), so memory does not grow with the number of runs.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import orjson

from fulmen.contract import JSON
from fulmen.scrub import Scrubber

__all__ = ["Outcome", "RunMemories", "RunMemory", "fingerprint"]

MAX_REPLIES: Final = 512
MAX_RUNS: Final = 4096

#: (ok, response): the outcome of one event.
Outcome: TypeAlias = "tuple[bool, JSON | bytes]"


def fingerprint(event: str, payload: JSON | bytes) -> str:
    body = (
        payload
        if isinstance(payload, bytes)
        else orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    )
    return hashlib.sha256(event.encode() + b"\0" + body).hexdigest()


@dataclass
class RunMemory:
    scrubber: Scrubber = field(default_factory=lambda: Scrubber([]))
    webhook_response: dict[str, JSON] | None = None
    final_state: JSON = None
    plan: dict[str, Any] | None = None
    _replies: OrderedDict[str, asyncio.Future[Outcome]] = field(default_factory=OrderedDict)

    async def once(self, key: str, handle: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """The outcome of the event ``key``: remembered if it succeeded before, else
        ``handle()``'s. Failed outcomes are not remembered (nothing was stored)."""
        known = self._replies.get(key)
        if known is not None:
            self._replies.move_to_end(key)
            return await asyncio.shield(known)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        try:
            outcome = await handle()
        except BaseException as error:
            self._forget(key, future)
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        if not outcome[0]:
            self._forget(key, future)
        future.set_result(outcome)
        while len(self._replies) > MAX_REPLIES:
            self._replies.popitem(last=False)
        return outcome

    def _forget(self, key: str, future: asyncio.Future[Outcome]) -> None:
        if self._replies.get(key) is future:
            del self._replies[key]


class RunMemories:
    """The memories of the runs this process has seen lately, by run id."""

    def __init__(self, limit: int = MAX_RUNS) -> None:
        self._limit = limit
        self._runs: OrderedDict[str, RunMemory] = OrderedDict()

    def __call__(self, run_id: str) -> RunMemory:
        memory = self._runs.get(run_id)
        if memory is None:
            memory = self._runs[run_id] = RunMemory()
            while len(self._runs) > self._limit:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return memory

    def peek(self, run_id: str) -> RunMemory | None:
        return self._runs.get(run_id)
