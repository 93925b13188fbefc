"""What alerts whom (issue 18): a project's channels, each workflow's rule, each project's
digest.

Every function takes the project the caller names and refuses (NotFoundError) a channel or
workflow of another project, so that a route's project id is the one whose rights it checks.
A webhook channel's secret is sealed with the credentials' cipher (AES-256-GCM under the
operator's key), bound to the channel's id, as webhook auth methods' are: it is shown once,
in the answer to creating the channel, and leaves the store otherwise only with a claimed
delivery (alert_outbox.py) to sign what is sent.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store import alert_policy
from fulmen.store.cipher import CredentialCipher
from fulmen.store.credentials import require_cipher
from fulmen.store.db import Row, Tx, dumps, loads, time_or_none
from fulmen.store.models.alerts import (
    AlertChannel,
    AlertDigest,
    AlertRule,
    ChannelHealth,
    ChannelType,
    DeliveryState,
    DigestFrequency,
    NewAlertChannel,
)

__all__ = [
    "MAX_RECIPIENTS",
    "PURPOSE",
    "create_channel",
    "delete_channel",
    "delete_rule",
    "get_channel",
    "get_digest",
    "get_rule",
    "list_channels",
    "list_rules",
    "put_digest",
    "put_rule",
]

#: The seal is bound to the channel's id in a namespace of its own (cipher.py).
PURPOSE = "alert-webhook"
MAX_RECIPIENTS = 50
#: An address as a mail server takes it in RCPT TO: no spaces, commas or angle brackets.
_ADDRESS = re.compile(r"[^@\s,<>;]{1,64}@[^@\s,<>;]{1,253}")
_URL = re.compile(r"https?://[^/\s?#]+[^\s]*", re.IGNORECASE)


async def create_channel(
    tx: Tx, cipher: CredentialCipher | None, channel: NewAlertChannel, now: datetime
) -> AlertChannel:
    """Store a new channel; a webhook channel's answer carries its secret (the only time)."""
    kind = _kind(channel.type)
    name = channel.name.strip()
    if not name:
        raise InputError("an alert channel needs a name", field="name")
    secret: str | None = None
    sealed: bytes | None = None
    recipients: tuple[str, ...] = ()
    url: str | None = None
    if kind is ChannelType.EMAIL:
        if channel.url is not None or channel.secret is not None:
            raise InputError("an e-mail channel takes recipients, not a URL or secret", field="url")
        recipients = _recipients(channel.recipients)
    else:
        if channel.recipients:
            raise InputError("a webhook channel takes a URL, not recipients", field="recipients")
        url = _url(channel.url)
        secret = channel.secret
        if secret is None:
            secret = alert_policy.new_secret(secrets.token_bytes(alert_policy.SECRET_BYTES))
        alert_policy.secret_key(secret)
        sealed = require_cipher(cipher).seal(channel.id, secret, purpose=PURPOSE)
    if await tx.fetchone("get_project", {"id": channel.project_id}) is None:
        raise NotFoundError(f"project {channel.project_id} does not exist", field="project_id")
    if await tx.fetchone("get_alert_channel", {"id": channel.id}) is not None:
        raise ConflictError(f"alert channel {channel.id} already exists", field="id")
    taken = {"project_id": channel.project_id, "name": name}
    if await tx.fetchone("get_alert_channel_by_name", taken) is not None:
        raise ConflictError(f"the project has an alert channel named {name!r}", field="name")
    await tx.execute(
        "insert_alert_channel",
        {
            "id": channel.id,
            "project_id": channel.project_id,
            "name": name,
            "type": kind,
            "recipients": dumps(list(recipients)),
            "url": url,
            "sealed_secret": sealed,
            "now": now,
        },
    )
    made = await get_channel(tx, channel.project_id, channel.id)
    return replace(made, secret=secret)


async def get_channel(tx: Tx, project_id: str, channel_id: str) -> AlertChannel:
    row = await tx.fetchone("get_alert_channel", {"id": channel_id})
    if row is None or row["project_id"] != project_id:
        raise NotFoundError(
            f"alert channel {channel_id} is not a channel of project {project_id}",
            field="channel_id",
        )
    health = await _health(tx, project_id)
    return _channel(tx, row, health.get(channel_id, ChannelHealth()))


async def list_channels(tx: Tx, project_id: str) -> list[AlertChannel]:
    rows = await tx.fetchall("list_alert_channels", {"project_id": project_id})
    health = await _health(tx, project_id)
    return [_channel(tx, row, health.get(row["id"], ChannelHealth())) for row in rows]


async def delete_channel(tx: Tx, project_id: str, channel_id: str) -> None:
    """Deletes it from every rule and digest too, with its deliveries."""
    await get_channel(tx, project_id, channel_id)
    await tx.execute("delete_alert_channel", {"id": channel_id})


async def put_rule(tx: Tx, rule: AlertRule, now: datetime) -> AlertRule:
    """Make or change the workflow's rule. Turning it off drops the endings not yet alerted
    about (turned on again, it alerts about what ends from then on)."""
    await _workflow_of(tx, rule.project_id, rule.workflow_id)
    outcomes = alert_policy.check_outcomes(rule.outcomes)
    period = alert_policy.check_period(rule.period_seconds)
    channel_ids = await _channels_of(tx, rule.project_id, rule.channel_ids)
    await tx.execute(
        "put_alert_rule",
        {
            "workflow_id": rule.workflow_id,
            "project_id": rule.project_id,
            "enabled": rule.enabled,
            "outcomes": dumps(sorted(outcomes)),
            "period_seconds": period,
            "now": now,
        },
    )
    if not rule.enabled:
        await tx.execute("drop_alert_endings", {"workflow_id": rule.workflow_id})
    await tx.execute("clear_alert_rule_channels", {"workflow_id": rule.workflow_id})
    for channel_id in channel_ids:
        await tx.execute(
            "add_alert_rule_channel", {"workflow_id": rule.workflow_id, "channel_id": channel_id}
        )
    found = await get_rule(tx, rule.project_id, rule.workflow_id)
    assert found is not None  # just written
    return found


async def get_rule(tx: Tx, project_id: str, workflow_id: str) -> AlertRule | None:
    """The workflow's rule; ``None``: it has none (its runs alert nobody)."""
    await _workflow_of(tx, project_id, workflow_id)
    row = await tx.fetchone("get_alert_rule", {"workflow_id": workflow_id})
    if row is None:
        return None
    channels = await tx.fetchall("alert_rule_channels", {"workflow_id": workflow_id})
    return _rule(tx, row, tuple(c["channel_id"] for c in channels))


async def list_rules(tx: Tx, project_id: str) -> list[AlertRule]:
    rows = await tx.fetchall("list_alert_rules", {"project_id": project_id})
    pairs = await tx.fetchall("project_alert_rule_channels", {"project_id": project_id})
    channels: dict[str, list[str]] = {}
    for pair in pairs:
        channels.setdefault(pair["workflow_id"], []).append(pair["channel_id"])
    return [_rule(tx, row, tuple(channels.get(row["workflow_id"], ()))) for row in rows]


async def delete_rule(tx: Tx, project_id: str, workflow_id: str) -> None:
    await _workflow_of(tx, project_id, workflow_id)
    if not await tx.execute("delete_alert_rule", {"workflow_id": workflow_id}):
        raise NotFoundError(f"workflow {workflow_id} has no alert rule", field="workflow_id")
    await tx.execute("drop_alert_endings", {"workflow_id": workflow_id})


async def put_digest(tx: Tx, digest: AlertDigest, now: datetime) -> AlertDigest:
    """Set the project's digest; the next one is due at the first digest time after now."""
    if await tx.fetchone("get_project", {"id": digest.project_id}) is None:
        raise NotFoundError(f"project {digest.project_id} does not exist", field="project_id")
    try:
        frequency = DigestFrequency(digest.frequency)
    except ValueError:
        known = ", ".join(f.value for f in DigestFrequency)
        raise InputError(
            f"a digest's frequency is one of {known}, not {digest.frequency!r}", field="frequency"
        ) from None
    channel_ids = await _channels_of(tx, digest.project_id, digest.channel_ids)
    await tx.execute(
        "put_alert_digest",
        {
            "project_id": digest.project_id,
            "frequency": frequency,
            "next_due_at": alert_policy.next_digest_at(frequency, now),
            "now": now,
        },
    )
    await tx.execute("clear_alert_digest_channels", {"project_id": digest.project_id})
    for channel_id in channel_ids:
        await tx.execute(
            "add_alert_digest_channel", {"project_id": digest.project_id, "channel_id": channel_id}
        )
    return await get_digest(tx, digest.project_id)


async def get_digest(tx: Tx, project_id: str) -> AlertDigest:
    """The project's digest (``off``, with no channels, until one is set)."""
    if await tx.fetchone("get_project", {"id": project_id}) is None:
        raise NotFoundError(f"project {project_id} does not exist", field="project_id")
    row = await tx.fetchone("get_alert_digest", {"project_id": project_id})
    if row is None:
        return AlertDigest(project_id)
    channels = await tx.fetchall("alert_digest_channels", {"project_id": project_id})
    return AlertDigest(
        project_id=project_id,
        frequency=DigestFrequency(row["frequency"]),
        channel_ids=tuple(c["channel_id"] for c in channels),
        next_due_at=time_or_none(tx, row["next_due_at"]),
    )


# -- checks ------------------------------------------------------------------------------------


def _kind(value: object) -> ChannelType:
    try:
        return ChannelType(str(value))
    except ValueError:
        known = ", ".join(kind.value for kind in ChannelType)
        raise InputError(
            f"a channel's type is one of {known}, not {value!r}", field="type"
        ) from None


def _recipients(addresses: Sequence[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(address.strip() for address in addresses))
    if not found or len(found) > MAX_RECIPIENTS:
        raise InputError(
            f"an e-mail channel has 1 to {MAX_RECIPIENTS} recipients", field="recipients"
        )
    for address in found:
        if not _ADDRESS.fullmatch(address):
            raise InputError(f"{address!r} is not an e-mail address", field="recipients")
    return found


def _url(url: str | None) -> str:
    if url is None or not _URL.fullmatch(url.strip()):
        raise InputError("a webhook channel needs an http:// or https:// URL", field="url")
    return url.strip()


async def _workflow_of(tx: Tx, project_id: str, workflow_id: str) -> None:
    row = await tx.fetchone("get_workflow", {"id": workflow_id})
    if row is None or row["project_id"] != project_id:
        raise NotFoundError(
            f"workflow {workflow_id} is not a workflow of project {project_id}",
            field="workflow_id",
        )


async def _channels_of(tx: Tx, project_id: str, channel_ids: Sequence[str]) -> list[str]:
    """``channel_ids`` without repeats, each a channel of the project (InputError, 422,
    naming ``channel_ids``: the value is part of the document sent)."""
    if isinstance(channel_ids, str):
        raise InputError("channel_ids is a list of channel ids", field="channel_ids")
    wanted = list(dict.fromkeys(channel_ids))
    for channel_id in wanted:
        row = await tx.fetchone("get_alert_channel", {"id": channel_id})
        if row is None or row["project_id"] != project_id:
            raise InputError(
                f"alert channel {channel_id} is not a channel of project {project_id}",
                code="unknown_channel",
                field="channel_ids",
            )
    return wanted


# -- rows --------------------------------------------------------------------------------------


async def _health(tx: Tx, project_id: str) -> dict[str, ChannelHealth]:
    """Each channel's failing deliveries: those retrying, and those given up since its latest
    success (a channel that works again is not shown failing for what it once dropped)."""
    sent = {
        row["channel_id"]: tx.time(row["last_sent_at"])
        for row in await tx.fetchall("alert_channel_last_sent", {"project_id": project_id})
    }
    failing: dict[str, list[Row]] = {}
    for row in await tx.fetchall("alert_channel_failures", {"project_id": project_id}):
        last_sent = sent.get(row["channel_id"])
        failed_at = tx.time(row["last_failed_at"])
        if row["state"] == DeliveryState.PENDING or last_sent is None or failed_at > last_sent:
            failing.setdefault(row["channel_id"], []).append(row)
    health: dict[str, ChannelHealth] = {}
    for channel_id in sent.keys() | failing.keys():
        rows = failing.get(channel_id, [])
        latest = rows[0] if rows else None
        health[channel_id] = ChannelHealth(
            failing=len(rows),
            last_error=latest["last_error"] if latest else None,
            last_failed_at=tx.time(latest["last_failed_at"]) if latest else None,
            attempts=latest["attempts"] if latest else 0,
            next_attempt_at=(
                tx.time(latest["next_attempt_at"])
                if latest and latest["state"] == DeliveryState.PENDING
                else None
            ),
            last_sent_at=sent.get(channel_id),
        )
    return health


def _channel(tx: Tx, row: Row, health: ChannelHealth) -> AlertChannel:
    return AlertChannel(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        type=ChannelType(row["type"]),
        recipients=tuple(loads(row["recipients"])),
        url=row["url"],
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
        health=health,
    )


def _rule(tx: Tx, row: Row, channel_ids: tuple[str, ...]) -> AlertRule:
    return AlertRule(
        workflow_id=row["workflow_id"],
        project_id=row["project_id"],
        outcomes=alert_policy.check_outcomes(loads(row["outcomes"])),
        channel_ids=channel_ids,
        period_seconds=row["period_seconds"],
        enabled=bool(row["enabled"]),
        last_alert_at=time_or_none(tx, row["last_alert_at"]),
    )
