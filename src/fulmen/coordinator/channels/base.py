"""What a channel needs from the socket it lives on, and what the socket needs of a channel.

A channel is made for each accepted join of a topic and lives until the worker leaves, joins
the topic again, or the socket goes. The socket hands it the join and then each request, one
at a time and in arrival order, as Phoenix runs each channel as one process (so a run's
events are stored in the order they came).
"""

from __future__ import annotations

from typing import Protocol

from fulmen.contract import JSON
from fulmen.phoenix.server import JoinRequest, Request

__all__ = ["Channel", "Host"]


class Host(Protocol):
    """The socket side: answers go out through it."""

    @property
    def worker_id(self) -> str: ...

    async def accept(
        self, join: JoinRequest, response: JSON = None, *, close: bool = False
    ) -> bool:
        """Answer ``ok`` (``{}`` unless ``response`` is given); true if it went out. With
        ``close``, the channel is closed with that answer (``ServerSession.accept``)."""
        ...

    async def refuse(self, join: JoinRequest, response: JSON) -> bool: ...

    async def reply(self, request: Request, ok: bool, response: JSON | bytes) -> bool:
        """Send the answer; true if it was handed to a live connection."""
        ...

    async def push(self, topic: str, event: str, payload: JSON) -> bool:
        """Push ``event`` on a joined ``topic``; true if it was handed to a live connection
        (false, and nothing sent, when the topic is not joined)."""
        ...


class Channel(Protocol):
    async def join(self, join: JoinRequest) -> bool:
        """Accept or refuse ``join``; true if accepted."""
        ...

    async def handle(self, request: Request) -> None:
        """Answer ``request`` (every request gets exactly one answer)."""
        ...

    def left(self) -> None:
        """The channel is gone (left, replaced, or its socket closed)."""
        ...
