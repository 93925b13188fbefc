"""A loopback TCP switch in front of coordinator processes, for failover tests.

A worker given the switch's address reaches whichever coordinator the switch points at when
it connects; :meth:`Switch.point` moves new connections to another one, as a load balancer
does when a replica is taken out. A connection ends on both sides as soon as either side
closes it (or its process dies), so a worker sees a coordinator's death as it would directly.

:meth:`Switch.lose_replies` makes the network lose what the coordinators send on the
connections open at that moment: the worker's requests still arrive and are handled, their
replies never come back. That is the moment a restart can catch at random (a report stored,
its reply not yet on the wire), made certain, so that a test need not hope to hit it.
:meth:`Switch.lost` waits until a lost frame matches a pattern. Frames between a worker and
a coordinator on loopback are not compressed (worker/websocket.py), so a reply's JSON shows
in the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

__all__ = ["Switch"]

_CHUNK = 65536


class _Link:
    """One worker connection; ``losing``: what the coordinator sends on it is dropped."""

    def __init__(self) -> None:
        self.losing = False


class Switch:
    """Forwards each connection to ``127.0.0.1:<port>``, the port given by :meth:`point`."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: set[_Link] = set()
        self._lost = bytearray()
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Switch:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/worker"

    def point(self, port: int) -> None:
        """New connections go to ``port``; those open stay where they are."""
        self.target = port

    def lose_replies(self) -> None:
        """From now on, drop what the coordinators send on the connections open now."""
        self._lost.clear()
        for link in self._links:
            link.losing = True

    async def lost(self, pattern: bytes, *, timeout: float = 20.0) -> None:
        """Until the bytes dropped since :meth:`lose_replies` match ``pattern`` (a regular
        expression).

        Raises:
            AssertionError: not within ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: re.search(pattern, self._lost) is not None)
        except TimeoutError:
            raise AssertionError(f"no lost frame like {pattern!r} within {timeout}s") from None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link()
        self._links.add(link)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            except OSError:
                return  # nothing listening there: the worker sees a refused connection
            try:
                pumps = [
                    asyncio.create_task(self._pump(reader, up_writer, None)),
                    asyncio.create_task(self._pump(up_reader, writer, link)),
                ]
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._links.discard(link)
            self._tasks.discard(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link | None
    ) -> None:
        """Copy ``source`` to ``sink``; from a coordinator (``link``), drop it once losing."""
        with contextlib.suppress(OSError):
            while data := await source.read(_CHUNK):
                if link is not None and link.losing:
                    async with self._changed:
                        self._lost += data
                        self._changed.notify_all()
                    continue
                sink.write(data)
                await sink.drain()
