"""The way from a run's end to a message sent about it (issue 18), through three tables, each
step its own short transaction so that nothing waits on a mail server or a webhook:

1. **Ending** (:func:`note_ending`): in the transaction that ends a run (endings.after_end),
   one ``INSERT … SELECT`` writes a pending ``alert_endings`` row when the workflow's rule
   asks for that outcome, and nothing otherwise. It commits or rolls back with the run's end.
2. **Alert** (:func:`fold_due`, :func:`make_digests`): a dispatcher takes the rules whose
   period allows an alert (``alert_policy.decide``) and folds every pending ending of each
   into one ``alerts`` row, with one ``alert_deliveries`` row per channel; digests likewise
   when due. On PostgreSQL the rule (or digest) row is locked with SKIP LOCKED while this
   happens, and the endings are deleted as they are folded: two coordinators never make the
   same alert.
3. **Delivery** (:func:`claim_deliveries`, :func:`finish_delivery`): a dispatcher claims due
   deliveries (SKIP LOCKED), sends them outside any transaction, and records each outcome
   guarded by the attempt it claimed: sent, tried again later (``alert_policy.retry_at``), or
   given up. A claim moves the delivery a lease ahead, so a coordinator that dies mid-send
   leaves it to another after the lease: a message is sent once unless a coordinator dies
   between the server's acceptance and the record of it, when it is sent again with the same
   id (the e-mail's Message-ID, the webhook's ``webhook-id``) for the receiver to recognise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from fulmen.errors import ConfigError
from fulmen.lifecycle import RunState
from fulmen.store import alert_policy
from fulmen.store.alert_config import PURPOSE
from fulmen.store.cipher import CredentialCipher
from fulmen.store.credentials import require_cipher
from fulmen.store.db import Row, Tx, dumps, loads, time_or_none
from fulmen.store.models.alerts import (
    Alert,
    AlertDelivery,
    AlertKind,
    ChannelType,
    ClaimedDelivery,
    DeliveryState,
    DigestFrequency,
)
from fulmen.store.models.common import JSONValue

__all__ = [
    "SLOWEST",
    "claim_deliveries",
    "finish_delivery",
    "fold_due",
    "list_alerts",
    "list_deliveries",
    "make_digests",
    "note_ending",
    "prune",
]

#: How many of the slowest workflows a digest names.
SLOWEST = 5


async def note_ending(tx: Tx, run_id: str, now: datetime) -> None:
    """Run ``run_id`` just reached its final state in ``tx``: a pending ending if its
    workflow's rule names that state. One statement; no row when no rule asks."""
    await tx.execute("note_alert_ending", {"run_id": run_id, "now": now})


async def fold_due(tx: Tx, now: datetime, limit: int) -> list[Alert]:
    """Make the alerts that are due now, for at most ``limit`` workflows."""
    made: list[Alert] = []
    for rule in await tx.fetchall("due_alert_rules", {"now": now, "limit": limit}):
        period = timedelta(seconds=rule["period_seconds"])
        last = time_or_none(tx, rule["last_alert_at"])
        if not alert_policy.alert_due(last, period, now):
            continue
        taken = await tx.fetchall("take_alert_endings", {"workflow_id": rule["workflow_id"]})
        folded = alert_policy.decide(last, period, [_ending(tx, row) for row in taken], now)
        if folded is None:
            continue
        body = await _failures_body(tx, rule, folded, last)
        channels = await tx.fetchall("alert_rule_channels", {"workflow_id": rule["workflow_id"]})
        alert = await _insert(tx, rule["project_id"], rule["workflow_id"], body, channels, now)
        await tx.execute("set_alert_rule_alerted", {"workflow_id": rule["workflow_id"], "now": now})
        made.append(alert)
    return made


async def _failures_body(
    tx: Tx, rule: Row, folded: alert_policy.Folded, last: datetime | None
) -> dict[str, JSONValue]:
    workflow = await tx.fetchone("get_workflow", {"id": rule["workflow_id"]})
    project = await tx.fetchone("get_project", {"id": rule["project_id"]})
    assert workflow is not None and project is not None  # the rule cascades with them
    return {
        "kind": AlertKind.FAILURES.value,
        "project": {"id": project["id"], "name": project["name"]},
        "workflow": {"id": workflow["id"], "name": workflow["name"]},
        "count": folded.count,
        "first_run_id": folded.first_run_id,
        "last_run_id": folded.last_run_id,
        "first_ended_at": folded.first_ended_at.isoformat(),
        "last_ended_at": folded.last_ended_at.isoformat(),
        "outcomes": dict(folded.outcomes),
        "error_types": dict(folded.error_types),
        "period_seconds": rule["period_seconds"],
        "previous_alert_at": last.isoformat() if last else None,
    }


async def make_digests(tx: Tx, now: datetime, limit: int) -> list[Alert]:
    """Make the digests due now, for at most ``limit`` projects; each project's next one is
    due at the first digest time after now."""
    made: list[Alert] = []
    for row in await tx.fetchall("due_alert_digests", {"now": now, "limit": limit}):
        frequency = DigestFrequency(row["frequency"])
        project_id = row["project_id"]
        start, end = alert_policy.digest_window(frequency, tx.time(row["next_due_at"]))
        project = await tx.fetchone("get_project", {"id": project_id})
        assert project is not None  # the digest cascades with it
        body = await _digest_body(tx, project, frequency, start, end)
        channels = await tx.fetchall("alert_digest_channels", {"project_id": project_id})
        made.append(await _insert(tx, project_id, None, body, channels, now))
        await tx.execute(
            "set_alert_digest_due",
            {
                "project_id": project_id,
                "next_due_at": alert_policy.next_digest_at(frequency, now),
            },
        )
    return made


async def _digest_body(
    tx: Tx, project: Row, frequency: DigestFrequency, start: datetime, end: datetime
) -> dict[str, JSONValue]:
    window = {"project_id": project["id"], "start": start, "end": end}
    outcomes = {
        row["state"]: int(row["runs"]) for row in await tx.fetchall("digest_outcomes", window)
    }
    slowest: list[JSONValue] = [
        {
            "workflow_id": row["workflow_id"],
            "name": row["name"],
            "runs": int(row["runs"]),
            "max_ms": int(row["max_ms"]),
            "avg_ms": int(row["avg_ms"]),
        }
        for row in await tx.fetchall("digest_slowest", window | {"limit": SLOWEST})
    ]
    new_failures: list[JSONValue] = [
        {
            "error_type": row["error_type"],
            "runs": int(row["runs"]),
            "first_seen": tx.time(row["first_seen"]).isoformat(),
            "workflow_id": row["workflow_id"],
        }
        for row in await tx.fetchall("digest_new_failures", window)
    ]
    return {
        "kind": AlertKind.DIGEST.value,
        "project": {"id": project["id"], "name": project["name"]},
        "frequency": frequency.value,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "slowest": slowest,
        "new_failure_types": new_failures,
    }


async def _insert(
    tx: Tx,
    project_id: str,
    workflow_id: str | None,
    body: dict[str, JSONValue],
    channels: Sequence[Row],
    now: datetime,
) -> Alert:
    alert_id = str(uuid4())
    kind = AlertKind(str(body["kind"]))
    await tx.execute(
        "insert_alert",
        {
            "id": alert_id,
            "project_id": project_id,
            "workflow_id": workflow_id,
            "kind": kind,
            "body": dumps(body),
            "now": now,
        },
    )
    for channel in channels:
        await tx.execute(
            "insert_alert_delivery",
            {
                "id": str(uuid4()),
                "alert_id": alert_id,
                "channel_id": channel["channel_id"],
                "now": now,
            },
        )
    return Alert(alert_id, project_id, workflow_id, kind, body, now)


async def claim_deliveries(
    tx: Tx, cipher: CredentialCipher | None, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` deliveries due now for one try each, until ``now + lease``."""
    params = {"now": now, "until": now + lease, "limit": limit}
    claimed = await tx.fetchall("claim_alert_deliveries", params)
    if not claimed:
        return []
    rows = await tx.fetchall("alert_delivery_targets", {"ids": [row["id"] for row in claimed]})
    return [_claimed(tx, cipher, row) for row in rows]


async def finish_delivery(
    tx: Tx,
    delivery_id: str,
    attempt: int,
    now: datetime,
    *,
    error: str | None,
    retry_at: datetime | None,
) -> bool:
    """Record try ``attempt``: sent (``error`` is ``None``), to be tried again at
    ``retry_at``, or given up (``retry_at`` is ``None``). False: the claim had lapsed and
    another try was claimed since; nothing is recorded."""
    params: dict[str, Any] = {"id": delivery_id, "attempt": attempt, "now": now}
    if error is None:
        return bool(await tx.execute("alert_delivery_sent", params))
    params |= {"error": error[:1000], "retry_at": retry_at, "give_up": retry_at is None}
    return bool(await tx.execute("alert_delivery_failed", params))


async def list_deliveries(
    tx: Tx, project_id: str, channel_id: str | None, failing: bool, limit: int
) -> list[AlertDelivery]:
    """The project's deliveries, newest first; of one channel; only those failing (retrying
    or given up)."""
    params = {
        "project_id": project_id,
        "channel_id": channel_id,
        "failing": failing,
        "limit": limit,
    }
    return [_delivery(tx, row) for row in await tx.fetchall("list_alert_deliveries", params)]


async def list_alerts(tx: Tx, project_id: str, workflow_id: str | None, limit: int) -> list[Alert]:
    params = {"project_id": project_id, "workflow_id": workflow_id, "limit": limit}
    return [_alert(tx, row) for row in await tx.fetchall("list_alerts", params)]


async def prune(tx: Tx, before: datetime) -> int:
    """Forget alerts made before ``before`` whose deliveries have all ended."""
    return await tx.execute("prune_alerts", {"before": before})


# -- rows --------------------------------------------------------------------------------------


def _ending(tx: Tx, row: Row) -> alert_policy.Ending:
    return alert_policy.Ending(
        run_id=row["run_id"],
        outcome=RunState(row["outcome"]),
        error_type=row["error_type"],
        ended_at=tx.time(row["ended_at"]),
    )


def _alert(tx: Tx, row: Row) -> Alert:
    return Alert(
        id=row["id"],
        project_id=row["project_id"],
        workflow_id=row["workflow_id"],
        kind=AlertKind(row["kind"]),
        body=loads(row["body"]),
        inserted_at=tx.time(row["inserted_at"]),
    )


def _claimed(tx: Tx, cipher: CredentialCipher | None, row: Row) -> ClaimedDelivery:
    secret = None
    if row["sealed_secret"] is not None:
        try:
            opened = require_cipher(cipher).open(
                row["channel_id"], bytes(row["sealed_secret"]), purpose=PURPOSE
            )
        except ConfigError:
            opened = None  # no key, or another one: the send fails, saying so, and is retried
        secret = None if opened is None else str(opened)
    return ClaimedDelivery(
        id=row["id"],
        attempt=row["attempts"],
        channel_id=row["channel_id"],
        channel_name=row["channel_name"],
        channel_type=ChannelType(row["type"]),
        recipients=tuple(loads(row["recipients"])),
        url=row["url"],
        secret=secret,
        alert=_alert(tx, {**row, "id": row["alert_id"]}),
    )


def _delivery(tx: Tx, row: Row) -> AlertDelivery:
    state = DeliveryState(row["state"])
    return AlertDelivery(
        id=row["id"],
        alert_id=row["alert_id"],
        channel_id=row["channel_id"],
        state=state,
        attempts=row["attempts"],
        next_attempt_at=(
            tx.time(row["next_attempt_at"]) if state is DeliveryState.PENDING else None
        ),
        last_error=row["last_error"],
        last_failed_at=time_or_none(tx, row["last_failed_at"]),
        sent_at=time_or_none(tx, row["sent_at"]),
        inserted_at=tx.time(row["inserted_at"]),
        kind=AlertKind(row["kind"]),
        workflow_id=row["workflow_id"],
    )
