"""Failure alerts and digests, sent (issue 18). The store decides what is due and keeps the
outbox (fulmen.store.alert_outbox); here, each coordinator's :class:`AlertDispatcher` asks it
for due work and sends it: e-mail through the operator's SMTP server (email.py), or a signed
JSON POST (webhook.py, signing.py), each rendered from the alert's stored content
(messages.py)."""

from __future__ import annotations

from fulmen.coordinator.alerts.dispatcher import AlertDispatcher, Senders, Tick

__all__ = ["AlertDispatcher", "Senders", "Tick"]
