"""The child processes of ``fulmen up``: each a real ``fulmen server``, ``fulmen worker`` or
``fulmen runner``, started, watched and stopped.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches ``fulmen up``
only, and the supervisor stops the children in the order that loses nothing (the worker
first, so that it can still report its runs to the coordinator, which stops last). A child
also gets SIGTERM if ``fulmen up`` itself dies without stopping it (``PR_SET_PDEATHSIG``), so
no process outlives it. Whatever a child prints goes to our stderr, each line prefixed with
its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Mapping
from typing import Final

from fulmen.sandbox import libc

__all__ = ["Child", "StartError"]

#: The command that starts each part: this interpreter, this Fulmen.
FULMEN: Final = (sys.executable, "-m", "fulmen")
#: How many of a child's last lines are kept, to explain an early exit.
TAIL: Final = 20


class StartError(Exception):
    """A child exited, or did not say it was ready in time; the message says which and why."""


def _die_with_parent() -> None:
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process and the pump that relays its output."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self._args = args
        self._env = dict(env)
        self.process: asyncio.subprocess.Process | None = None
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._tail: list[str] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._relaying = False

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *FULMEN,
            *self._args,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        loop = asyncio.get_running_loop()
        self._pumps = [
            loop.create_task(self._pump(self.process.stdout)),
            loop.create_task(self._pump(self.process.stderr)),
        ]

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self._tail = [*self._tail[-TAIL + 1 :], text]
            if self._relaying:
                print(f"{self.name:>6} | {text}", file=sys.stderr, flush=True)
            else:
                await self._lines.put(text)
        await self._lines.put(None)

    async def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line matching ``pattern``; every line before it is relayed.

        Raises:
            StartError: the child ended or stayed silent for ``timeout`` seconds.
        """
        wanted = re.compile(pattern)
        ended = 0
        try:
            async with asyncio.timeout(timeout):
                while ended < len(self._pumps):
                    line = await self._lines.get()
                    if line is None:
                        ended += 1
                        continue
                    print(f"{self.name:>6} | {line}", file=sys.stderr, flush=True)
                    if match := wanted.search(line):
                        return match
        except TimeoutError:
            raise StartError(f"the {self.name} did not start within {timeout:g}s") from None
        status = await self.wait()
        raise StartError(f"the {self.name} exited with status {status} while starting")

    def relay(self) -> None:
        """From now on, print every line as it comes (and whatever was queued)."""
        self._relaying = True
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line is not None:
                print(f"{self.name:>6} | {line}", file=sys.stderr, flush=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self) -> int:
        """The exit status, once the child and its output have ended."""
        assert self.process is not None
        status = await self.process.wait()
        if self._pumps:
            await asyncio.wait(self._pumps)  # unlike gather, cancelling this leaves them be
        return status

    async def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.wait()
        except TimeoutError:
            print(
                f"fulmen up: the {self.name} did not stop in {timeout:g}s; killing it",
                file=sys.stderr,
                flush=True,
            )
            self.signal(signal.SIGKILL)
            return await self.wait()

    def signal(self, number: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(number)
