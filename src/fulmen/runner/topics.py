"""Event topics and subscriptions (spec runner.md §3.4). Pure.

A topic is ``[a-z0-9_.-]+``; a subscription is a topic, or a prefix ending in ``.*`` that
matches every topic beneath it (``orders.*`` matches ``orders.new`` and ``orders.eu.paid``,
not ``orders`` itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_HOPS", "is_subscription", "is_topic", "matches", "subscribers"]

MAX_HOPS: Final = 8
"""How many times an event may be re-emitted by workers before the chain is stopped."""

_TOPIC: Final = re.compile(r"[a-z0-9_.-]{1,128}")
_SUBSCRIPTION: Final = re.compile(r"[a-z0-9_.-]{1,128}(\.\*)?")


def is_topic(text: str) -> bool:
    return _TOPIC.fullmatch(text) is not None


def is_subscription(text: str) -> bool:
    return _SUBSCRIPTION.fullmatch(text) is not None


def matches(subscription: str, topic: str) -> bool:
    if subscription.endswith(".*"):
        return topic.startswith(subscription[:-1])
    return subscription == topic


def subscribers(topic: str, subscriptions: Iterable[tuple[str, Iterable[str]]]) -> list[str]:
    """Ids of the workers (``(id, subscriptions)`` pairs) that ``topic`` reaches."""
    return [wid for wid, subs in subscriptions if any(matches(s, topic) for s in subs)]
