"""Changing a project's alert settings (issue 18): its channels, each workflow's rule and its
digest, each change with its audit record in the change's own transaction. The REST API
(api/alerts.py) and the dashboard's page (dashboard/alerts.py) both change them through
these functions, after asking the caller's role, so both leave the same record.

A channel is recorded by its name, kind and where it sends (recipients, URL), never by a
webhook's signing secret. A webhook's URL whose host is this host or an internal address
written out is refused when saved (``destination_refused``, fulmen.outbound), unless the
operator allows it; a name that resolves to one is refused when sent.
"""

from __future__ import annotations

from fulmen.coordinator import audit
from fulmen.coordinator.audit import Document
from fulmen.outbound import Policy
from fulmen.store import (
    Actor,
    AlertChannel,
    AlertDigest,
    AlertRule,
    NewAlertChannel,
    Store,
    Target,
)

__all__ = ["create_channel", "delete_channel", "delete_rule", "put_digest", "put_rule"]


async def create_channel(
    store: Store, by: Actor, channel: NewAlertChannel, outbound: Policy
) -> AlertChannel:
    """The new channel (a webhook's made secret in it, shown once).

    Raises:
        InputError: ``destination_refused`` (the outbound policy refuses the URL), or the
            store's refusals.
    """
    if channel.url is not None:
        outbound.check_url(channel.url, "url")
    async with store.together():
        made = await store.create_alert_channel(channel)
        await audit.record(
            store,
            by,
            "alert_channel.created",
            _channel_target(made),
            project_id=made.project_id,
            after=_channel_document(made),
        )
    return made


async def delete_channel(store: Store, by: Actor, project_id: str, channel_id: str) -> None:
    current = await store.get_alert_channel(project_id, channel_id)
    async with store.together():
        await store.delete_alert_channel(project_id, channel_id)
        await audit.record(
            store,
            by,
            "alert_channel.deleted",
            _channel_target(current),
            project_id=project_id,
            before=_channel_document(current),
        )


async def put_rule(store: Store, by: Actor, rule: AlertRule) -> AlertRule:
    current = await store.get_alert_rule(rule.project_id, rule.workflow_id)
    async with store.together():
        saved = await store.put_alert_rule(rule)
        await audit.record(
            store,
            by,
            "alert_rule.updated" if current else "alert_rule.created",
            Target("alert_rule", rule.workflow_id),
            project_id=rule.project_id,
            before=_rule_document(current) if current else None,
            after=_rule_document(saved),
        )
    return saved


async def delete_rule(store: Store, by: Actor, project_id: str, workflow_id: str) -> None:
    current = await store.get_alert_rule(project_id, workflow_id)
    async with store.together():
        await store.delete_alert_rule(project_id, workflow_id)
        await audit.record(
            store,
            by,
            "alert_rule.deleted",
            Target("alert_rule", workflow_id),
            project_id=project_id,
            before=_rule_document(current) if current else None,
        )


async def put_digest(store: Store, by: Actor, digest: AlertDigest) -> AlertDigest:
    current = await store.get_alert_digest(digest.project_id)
    async with store.together():
        saved = await store.put_alert_digest(digest)
        await audit.record(
            store,
            by,
            "alert_digest.updated",
            Target("alert_digest", digest.project_id),
            project_id=digest.project_id,
            before=_digest_document(current),
            after=_digest_document(saved),
        )
    return saved


def _channel_target(channel: AlertChannel) -> Target:
    return Target("alert_channel", channel.id, channel.name)


def _channel_document(channel: AlertChannel) -> Document:
    return {
        "name": channel.name,
        "type": channel.type.value,
        "recipients": list(channel.recipients),
        "url": channel.url,
    }


def _rule_document(rule: AlertRule) -> Document:
    return {
        "workflow_id": rule.workflow_id,
        "outcomes": sorted(str(outcome) for outcome in rule.outcomes),
        "channel_ids": list(rule.channel_ids),
        "period_seconds": rule.period_seconds,
        "enabled": rule.enabled,
    }


def _digest_document(digest: AlertDigest) -> Document:
    return {"frequency": digest.frequency.value, "channel_ids": list(digest.channel_ids)}
