"""Each coordinator's alert dispatcher: one loop that asks the store for due work and sends it.

A pass (:meth:`AlertDispatcher.tick`, with the clock's time) does, each step its own short
transaction in the store (fulmen.store.alert_outbox):

1. **Fold**: the workflows whose period allows an alert get one, folding every ending
   pending since their last (``Store.fold_alerts``).
2. **Digests**: the projects whose digest is due get one (``Store.make_alert_digests``).
3. **Send**: due deliveries are claimed for one try each (``Store.claim_alert_deliveries``,
   leased for longer than a send may take), sent at once, side by side, outside any
   transaction, and each outcome recorded: sent, again after the backoff
   (``alert_policy.retry_at``: ``FULMEN_ALERT_BACKOFF``, ``FULMEN_ALERT_MAX_ATTEMPTS``), or
   given up. What failed is logged and shown on the channel (its ``health``).

Any number of coordinators run it on one database: the store's locks (SKIP LOCKED on
PostgreSQL; SQLite has one writer) let each alert be made once and each delivery be claimed
by one of them. Nothing here touches the run queue, and a run's end only ever wrote one row,
so a slow mail server or a dead webhook delays alerts and nothing else.

:meth:`AlertDispatcher.run` repeats the pass every ``alert_poll_interval`` seconds; stopping
the coordinator cancels it wherever it is (a send cut short is claimed again after its lease,
by whichever coordinator is still up).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from fulmen.coordinator.alerts.email import EmailSender
from fulmen.coordinator.alerts.messages import render
from fulmen.coordinator.alerts.webhook import WebhookSender
from fulmen.coordinator.core import Coordinator
from fulmen.errors import AlertError, FulmenError
from fulmen.store import Alert, ChannelType, ClaimedDelivery
from fulmen.store.alert_policy import DeliveryPolicy, retry_at

__all__ = ["HISTORY", "AlertDispatcher", "Senders", "Tick"]

log = logging.getLogger(__name__)

#: Alerts (and their deliveries) are kept this long for the API and dashboard, then pruned.
HISTORY: Final = timedelta(days=30)
#: How often a dispatcher prunes them.
PRUNE_EVERY: Final = timedelta(hours=1)
#: At most this many deliveries claimed, and sent side by side, per pass.
BATCH: Final = 20


@dataclass(frozen=True)
class Senders:
    email: EmailSender
    webhook: WebhookSender


@dataclass(frozen=True)
class Tick:
    """What one pass did."""

    alerts: list[Alert] = field(default_factory=list)
    digests: list[Alert] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    #: Deliveries whose try failed: (delivery id, error).
    failed: list[tuple[str, str]] = field(default_factory=list)


class AlertDispatcher:
    def __init__(self, coordinator: Coordinator, *, senders: Senders | None = None) -> None:
        self._c = coordinator
        settings = coordinator.settings
        self._senders = senders or Senders(
            EmailSender(settings), WebhookSender(settings.alert_send_timeout, coordinator.outbound)
        )
        self._policy = DeliveryPolicy(
            settings.alert_backoff_min, settings.alert_backoff_max, settings.alert_max_attempts
        )
        #: Longer than a send may take, so that a claim lapses only when its claimer died.
        self._lease = timedelta(seconds=2 * settings.alert_send_timeout + 30)
        self._pruned_at: datetime | None = None

    async def tick(self) -> Tick:
        store = self._c.store
        alerts = await store.fold_alerts()
        digests = await store.make_alert_digests()
        for alert in alerts:
            log.info(
                "alert %s: workflow %s, %s run(s)", alert.id, alert.workflow_id, alert.body["count"]
            )
        claimed = await store.claim_alert_deliveries(lease=self._lease, limit=BATCH)
        outcomes = await asyncio.gather(*(self._deliver(d) for d in claimed))
        sent = [d.id for d, error in zip(claimed, outcomes, strict=True) if error is None]
        failed = [(d.id, e) for d, e in zip(claimed, outcomes, strict=True) if e is not None]
        await self._prune()
        return Tick(alerts, digests, sent, failed)

    async def _deliver(self, delivery: ClaimedDelivery) -> str | None:
        """Send one claimed delivery and record the outcome; the error, if it failed."""
        message = render(delivery.alert, self._c.settings.public_url)
        error: str | None = None
        try:
            if delivery.channel_type is ChannelType.EMAIL:
                await self._senders.email.send(delivery, message)
            else:
                await self._senders.webhook.send(delivery, message, self._c.now())
        except AlertError as failure:
            error = failure.message
        except Exception as failure:  # a sender's bug must not end the coordinator's lifespan
            log.exception("alert delivery %s failed unexpectedly", delivery.id)
            error = f"unexpected {type(failure).__name__}: {failure}"
        now = self._c.clock.now()
        again = None if error is None else retry_at(self._policy, delivery.attempt, now)
        if error is not None:
            log.warning(
                "alert channel %s (%s): try %d failed: %s; %s",
                delivery.channel_name,
                delivery.channel_id,
                delivery.attempt,
                error,
                f"again at {again.isoformat()}" if again else "given up",
            )
        recorded = await self._c.store.finish_alert_delivery(
            delivery.id, delivery.attempt, error=error, retry_at=again
        )
        if not recorded:
            log.warning("alert delivery %s: its claim lapsed while it was sent", delivery.id)
        return error

    async def _prune(self) -> None:
        now = self._c.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        gone = await self._c.store.prune_alerts(before=now - HISTORY)
        if gone:
            log.info("alerts: %d older than %d days forgotten", gone, HISTORY.days)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except FulmenError as error:
                log.error("the alert dispatcher's pass failed: %s", error)
            await asyncio.sleep(self._c.settings.alert_poll_interval)
