"""Alert channels, rules, digests and what was sent: api/alerts.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.common import InputDoc, NewId
from fulmen.lifecycle import RunState
from fulmen.store import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertDigest,
    AlertRule,
    ChannelType,
    DigestFrequency,
    NewAlertChannel,
)
from fulmen.store.alert_config import MAX_RECIPIENTS
from fulmen.store.alert_policy import (
    DEFAULT_OUTCOMES,
    DEFAULT_PERIOD_SECONDS,
    MAX_PERIOD_SECONDS,
)

#: A final run state but success: what a rule may alert on (alert_policy.ALERTABLE).
Outcome = Literal["failed", "crashed", "killed", "lost", "exception", "cancelled"]
ChannelIds = Annotated[list[str], Field(max_length=100)]
#: The store's defaults (each an Outcome: DEFAULT_OUTCOMES is within ALERTABLE).
_DEFAULTS = cast(list[Outcome], sorted(DEFAULT_OUTCOMES))


class EmailChannelIn(InputDoc):
    """An ``email`` channel: its messages go to ``recipients`` through the coordinators'
    SMTP server (``FULMEN_SMTP_HOST``…)."""

    id: NewId
    name: str = Field(min_length=1, max_length=200)
    type: Literal["email"]
    recipients: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)

    def to_store(self, project_id: str) -> NewAlertChannel:
        return NewAlertChannel(
            self.id, project_id, self.name, ChannelType.EMAIL, tuple(self.recipients)
        )


class WebhookChannelIn(InputDoc):
    """A ``webhook`` channel: a JSON POST to ``url``, signed with ``secret`` (Standard
    Webhooks: ``whsec_`` and the base64 of 24 to 64 bytes). ``secret`` absent: one is made
    and shown in the answer, once."""

    id: NewId
    name: str = Field(min_length=1, max_length=200)
    type: Literal["webhook"]
    url: str = Field(min_length=1, max_length=2000, pattern="^[Hh][Tt][Tt][Pp][Ss]?://")
    secret: str | None = Field(default=None, repr=False)

    def to_store(self, project_id: str) -> NewAlertChannel:
        return NewAlertChannel(
            self.id, project_id, self.name, ChannelType.WEBHOOK, url=self.url, secret=self.secret
        )


#: A new channel, by its ``type``.
AlertChannelIn = Annotated[EmailChannelIn | WebhookChannelIn, Field(discriminator="type")]


class ChannelHealthDoc(BaseModel):
    """Deliveries failing now (retrying, or given up since the channel last worked), the
    latest one's error, attempts and next try (``null``: given up), and the last success."""

    failing: int
    last_error: str | None
    last_failed_at: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    last_sent_at: datetime | None


class AlertChannelDoc(BaseModel):
    id: str
    project_id: str
    name: str
    type: str
    recipients: list[str]
    url: str | None
    inserted_at: datetime
    updated_at: datetime
    health: ChannelHealthDoc
    #: Only in the answer to creating a ``webhook`` channel: its secret, this once.
    secret: str | None = None

    @classmethod
    def of(cls, channel: AlertChannel) -> AlertChannelDoc:
        h = channel.health
        return cls(
            id=channel.id,
            project_id=channel.project_id,
            name=channel.name,
            type=channel.type.value,
            recipients=list(channel.recipients),
            url=channel.url,
            inserted_at=channel.inserted_at,
            updated_at=channel.updated_at,
            health=ChannelHealthDoc(
                failing=h.failing,
                last_error=h.last_error,
                last_failed_at=h.last_failed_at,
                attempts=h.attempts,
                next_attempt_at=h.next_attempt_at,
                last_sent_at=h.last_sent_at,
            ),
            secret=channel.secret,
        )


class AlertRuleIn(InputDoc):
    """When the workflow's runs alert: ending in one of ``outcomes`` (by default the issue's
    fail, crash, kill and lost: ``failed``, ``crashed``, ``killed``, ``lost``), through
    ``channel_ids`` (channels of the project), at most one alert per ``period_seconds``; runs
    that end in between are folded into the next alert, which says how many."""

    outcomes: list[Outcome] = Field(
        default_factory=lambda: list(_DEFAULTS), min_length=1, max_length=6
    )
    channel_ids: ChannelIds = Field(default_factory=list)
    period_seconds: int = Field(default=DEFAULT_PERIOD_SECONDS, ge=1, le=MAX_PERIOD_SECONDS)
    enabled: bool = True

    def to_store(self, project_id: str, workflow_id: str) -> AlertRule:
        return AlertRule(
            workflow_id=workflow_id,
            project_id=project_id,
            outcomes=frozenset(RunState(o) for o in self.outcomes),
            channel_ids=tuple(self.channel_ids),
            period_seconds=self.period_seconds,
            enabled=self.enabled,
        )


class AlertRuleDoc(BaseModel):
    workflow_id: str
    project_id: str
    outcomes: list[str]
    channel_ids: list[str]
    period_seconds: int
    enabled: bool
    #: When its latest alert was made; the next comes a period later at the earliest.
    last_alert_at: datetime | None

    @classmethod
    def of(cls, rule: AlertRule) -> AlertRuleDoc:
        return cls(
            workflow_id=rule.workflow_id,
            project_id=rule.project_id,
            outcomes=sorted(rule.outcomes),
            channel_ids=list(rule.channel_ids),
            period_seconds=rule.period_seconds,
            enabled=rule.enabled,
            last_alert_at=rule.last_alert_at,
        )


class AlertDigestIn(InputDoc):
    """The project's digest: ``daily`` (00:00 UTC, about the day before) or ``weekly``
    (Monday 00:00 UTC, about the week before), through ``channel_ids``; ``off``: none."""

    frequency: Literal["off", "daily", "weekly"]
    channel_ids: ChannelIds = Field(default_factory=list)

    def to_store(self, project_id: str) -> AlertDigest:
        return AlertDigest(project_id, DigestFrequency(self.frequency), tuple(self.channel_ids))


class AlertDigestDoc(BaseModel):
    project_id: str
    frequency: str
    channel_ids: list[str]
    next_due_at: datetime | None

    @classmethod
    def of(cls, digest: AlertDigest) -> AlertDigestDoc:
        return cls(
            project_id=digest.project_id,
            frequency=digest.frequency.value,
            channel_ids=list(digest.channel_ids),
            next_due_at=digest.next_due_at,
        )


class AlertDoc(BaseModel):
    id: str
    project_id: str
    workflow_id: str | None
    kind: str
    #: What it says: for ``failures``, the count of runs folded into it, the first and last
    #: run, outcomes and error types; for a ``digest``, runs by outcome, the slowest
    #: workflows and the new failure types.
    body: dict[str, Any]
    inserted_at: datetime

    @classmethod
    def of(cls, alert: Alert) -> AlertDoc:
        return cls(
            id=alert.id,
            project_id=alert.project_id,
            workflow_id=alert.workflow_id,
            kind=alert.kind.value,
            body=dict(alert.body),
            inserted_at=alert.inserted_at,
        )


class AlertDeliveryDoc(BaseModel):
    id: str
    alert_id: str
    channel_id: str
    kind: str
    workflow_id: str | None
    #: ``pending`` (not sent yet, or to be tried again), ``sent`` or ``failed`` (given up).
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_failed_at: datetime | None
    sent_at: datetime | None
    inserted_at: datetime

    @classmethod
    def of(cls, delivery: AlertDelivery) -> AlertDeliveryDoc:
        return cls(
            id=delivery.id,
            alert_id=delivery.alert_id,
            channel_id=delivery.channel_id,
            kind=delivery.kind.value,
            workflow_id=delivery.workflow_id,
            state=delivery.state.value,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_error=delivery.last_error,
            last_failed_at=delivery.last_failed_at,
            sent_at=delivery.sent_at,
            inserted_at=delivery.inserted_at,
        )
