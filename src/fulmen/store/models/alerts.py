"""Failure alerts and digests (issue 18): alert_config.py and alert_outbox.py.

Channels belong to a project; a workflow's rule and a project's digest name some of them.
What is sent is an :class:`Alert` (its content whole, as a JSON document the senders render)
through each of its channels as an :class:`AlertDelivery`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fulmen.lifecycle import RunState
from fulmen.store.models.common import JSONValue

__all__ = [
    "Alert",
    "AlertChannel",
    "AlertDelivery",
    "AlertDigest",
    "AlertKind",
    "AlertRule",
    "ChannelHealth",
    "ChannelType",
    "ClaimedDelivery",
    "DeliveryState",
    "DigestFrequency",
    "NewAlertChannel",
]


class ChannelType(StrEnum):
    #: E-mail to the channel's recipients, through the operator's SMTP server.
    EMAIL = "email"
    #: A JSON POST to the channel's URL, signed with its secret (Standard Webhooks).
    WEBHOOK = "webhook"


class DigestFrequency(StrEnum):
    OFF = "off"
    #: Every day at 00:00 UTC, about the day before.
    DAILY = "daily"
    #: Every Monday at 00:00 UTC, about the week before.
    WEEKLY = "weekly"


class AlertKind(StrEnum):
    #: Runs of one workflow that ended in one of its rule's outcomes.
    FAILURES = "failures"
    #: A project's digest.
    DIGEST = "digest"


class DeliveryState(StrEnum):
    #: Not sent yet: waiting for its first try, or for the next one after a failure.
    PENDING = "pending"
    SENT = "sent"
    #: Given up after the last attempt the settings allow.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewAlertChannel:
    """A channel to create. An e-mail channel has ``recipients``; a webhook channel a ``url``
    and a ``secret`` (``None``: the store makes one, shown once in the answer)."""

    id: str
    project_id: str
    name: str
    type: ChannelType
    recipients: tuple[str, ...] = ()
    url: str | None = None
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """How a channel's deliveries went: the ones failing now (retrying, or given up) and the
    latest of them; ``last_sent_at`` is its latest success."""

    failing: int = 0
    last_error: str | None = None
    last_failed_at: datetime | None = None
    #: Attempts of the latest failing delivery, and when it is tried next (``None``: given up).
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertChannel:
    """A channel without its secret, but in the answer to creating a webhook channel (the
    one time it is shown)."""

    id: str
    project_id: str
    name: str
    type: ChannelType
    recipients: tuple[str, ...]
    url: str | None
    inserted_at: datetime
    updated_at: datetime
    health: ChannelHealth = ChannelHealth()
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When a workflow's runs alert: ending in one of ``outcomes`` (final run states), through
    ``channel_ids`` (channels of the workflow's project), at most one alert per
    ``period_seconds``; ``last_alert_at`` is set by the store."""

    workflow_id: str
    project_id: str
    outcomes: frozenset[RunState]
    channel_ids: tuple[str, ...]
    period_seconds: int = 300
    enabled: bool = True
    last_alert_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertDigest:
    project_id: str
    frequency: DigestFrequency = DigestFrequency.OFF
    channel_ids: tuple[str, ...] = ()
    #: When the next digest is made (``None`` while off); set by the store.
    next_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert or digest as made: ``body`` is its content, which the senders render."""

    id: str
    project_id: str
    workflow_id: str | None
    kind: AlertKind
    body: dict[str, JSONValue]
    inserted_at: datetime


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    id: str
    alert_id: str
    channel_id: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_failed_at: datetime | None
    sent_at: datetime | None
    inserted_at: datetime
    kind: AlertKind
    workflow_id: str | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery claimed for one try (``attempt``, the claim's token), with what sending it
    needs: the channel's address and opened secret, and the alert."""

    id: str
    attempt: int
    channel_id: str
    channel_name: str
    channel_type: ChannelType
    recipients: tuple[str, ...]
    url: str | None
    secret: str | None = field(repr=False)
    alert: Alert
