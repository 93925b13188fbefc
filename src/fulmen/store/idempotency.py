"""Idempotency keys (issue 14): a request retried with the same key gets the first answer
and makes nothing new.

*Why in the run's transaction.* A client whose connection was cut after the coordinator had
committed a run (it died before answering) cannot tell whether the run exists, so it sends
the request again. The key must then be on record exactly when the run is: :func:`once`
writes it in the transaction that makes the run, so a coordinator killed at any moment
leaves both or neither.

*Why the database decides.* Coordinators sharing a PostgreSQL database know nothing of each
other's memory, so concurrency is settled by the table's primary key ``(scope, key)``. The
key's row is the *first* write of the transaction (``claim_idempotency_key``). A second
request with the same key, on any coordinator, meets that row: on PostgreSQL its INSERT
waits for the first transaction's outcome, then finds the row committed (and replays its
answer) or gone (and does the work itself); on SQLite write transactions take turns
anyway. No transaction commits a key without its answer, so there is no "in progress" state
for another request to see, and the work is never done twice.

*What is compared.* A request carries a fingerprint (a digest of what it asks, made by the
coordinator); the same key with another fingerprint is refused, InputError
``idempotency_key_reused``, as Stripe and the IETF draft (draft-ietf-httpapi-idempotency-
key-header, "reuse with a different payload") refuse it: it is a client's bug, and answering
the first request's answer to it would hide that.

*How long.* Each key is kept for its ``ttl`` (the coordinator's setting, a day by default);
after that the same key is a new key: its row is taken over by the next request, or removed
by the retention sweep (:func:`delete_expired`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from fulmen.errors import ConflictError, InputError
from fulmen.store.db import Tx, dumps, loads
from fulmen.store.models.common import JSONValue

__all__ = [
    "MAX_KEY_LENGTH",
    "Answer",
    "Answered",
    "IdempotencyKey",
    "delete_expired",
    "once",
]

#: The longest key kept (characters). Stripe's limit; UUIDs and hashes fit well within it.
MAX_KEY_LENGTH: Final = 255


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's key for one request, and where and how long it counts."""

    #: Where the key counts: one webhook trigger, or one API route with the workflow or step
    #: its path names. The same key in another scope is another key.
    scope: str
    #: The client's key: 1 to :data:`MAX_KEY_LENGTH` characters.
    key: str
    #: A digest of what the request asks; the same key must come with the same fingerprint.
    fingerprint: str
    #: How long the key is kept after its first use.
    ttl: timedelta

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > MAX_KEY_LENGTH:
            raise InputError(
                f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters, not {len(self.key)}",
                code="idempotency_key_invalid",
            )
        if self.ttl <= timedelta(0):
            raise InputError("an idempotency key's retention must be positive")


@dataclass(frozen=True, slots=True)
class Answer:
    """The first answer to a request: what every retry of it is answered."""

    status: int
    body: JSONValue
    #: The answer waits for the run to end (a webhook replying after completion): ``body``
    #: holds the run's ids, and the caller answers from the run as it is at the time.
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    answer: Answer
    #: The answer is an earlier request's: nothing was made this time.
    replayed: bool


async def once(
    tx: Tx, key: IdempotencyKey, now: datetime, work: Callable[[], Awaitable[Answer]]
) -> Answered:
    """``work()``'s answer, recorded under ``key`` in ``tx``; or, when the key is already
    recorded, its first answer, without calling ``work``.

    Call this first in a write transaction, with ``work`` writing in the same ``tx``: if
    ``work`` raises, the transaction (with the key) is rolled back by the caller.

    Raises:
        InputError: ``idempotency_key_reused``: the key was recorded for another request.
    """
    claimed = await tx.fetchone(
        "claim_idempotency_key",
        {
            "scope": key.scope,
            "key": key.key,
            "fingerprint": key.fingerprint,
            "now": now,
            "expires_at": now + key.ttl,
        },
    )
    if claimed is None:
        return Answered(await _recorded(tx, key), replayed=True)
    answer = await work()
    await tx.execute(
        "answer_idempotency_key",
        {
            "scope": key.scope,
            "key": key.key,
            "status": answer.status,
            "body": dumps(answer.body),
            "deferred": answer.deferred,
        },
    )
    return Answered(answer, replayed=False)


async def delete_expired(tx: Tx, limit: int, now: datetime) -> int:
    """Remove up to ``limit`` keys past their expiry; how many went."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"a batch is a positive number of keys, not {limit!r}")
    return await tx.execute("delete_expired_idempotency_keys", {"limit": limit, "now": now})


async def _recorded(tx: Tx, key: IdempotencyKey) -> Answer:
    row = await tx.fetchone("get_idempotency_key", {"scope": key.scope, "key": key.key})
    if row is None or row["status"] is None:
        # Not reachable while every transaction that claims a key answers it before it
        # commits; said rather than guessed if that ever stops being so.
        raise ConflictError(
            "a request with this idempotency key is still being handled; try again shortly",
            code="idempotency_key_in_progress",
        )
    if row["fingerprint"] != key.fingerprint:
        raise InputError(
            "this idempotency key was used for a different request here; a new request "
            "needs a new key",
            code="idempotency_key_reused",
        )
    return Answer(
        status=int(row["status"]), body=loads(row["body"]), deferred=bool(row["deferred"])
    )
