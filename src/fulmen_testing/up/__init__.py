"""``fulmen up`` as a subprocess, for the acceptance and browser tests: started in a
directory of the test's, read until it has said where everything is, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

__all__ = ["FULMEN", "Up", "environment", "fulmen_up"]

FULMEN = [sys.executable, "-m", "fulmen"]


@dataclass
class Up:
    process: asyncio.subprocess.Process
    cwd: Path
    #: What it printed on stdout, line by line, up to ``Data:``.
    lines: list[str]
    stderr: list[str] = field(default_factory=list)

    def value(self, label: str) -> str:
        """The first word after ``<label>: `` in the printed lines."""
        for line in self.lines:
            if line.startswith(label + ": "):
                return line.removeprefix(label + ": ").split()[0]
        raise AssertionError(f"no {label} line in {self.lines}")

    @property
    def dashboard(self) -> str:
        return self.value("Dashboard")

    @property
    def base(self) -> str:
        return self.dashboard.removesuffix("/ui")

    @property
    def webhooks(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("Webhook: ")]

    @property
    def admin(self) -> tuple[str, str]:
        """The first admin's e-mail address and password, printed on the first start."""
        return self.value("Admin"), self.value("Password")

    @property
    def token(self) -> str:
        return Path(self.value("API token")).read_text().strip()

    def api(self) -> httpx2.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx2.AsyncClient(base_url=self.base, headers=headers, timeout=30)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    async def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            return await self.process.wait()


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}


@asynccontextmanager
async def fulmen_up(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[Up]:
    """``fulmen up --port 0 --runner-port 0`` in ``cwd``, until it printed its ``Data:`` line;
    ``env``: settings for it (``FULMEN_*``), over an environment cleared of the caller's."""
    cwd.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *FULMEN,
        "up",
        "--port",
        "0",
        "--runner-port",
        "0",
        *args,
        cwd=cwd,
        env=environment() | dict(env or {}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    up = Up(process, cwd, [])

    async def drain(stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode().rstrip())

    errors = asyncio.get_running_loop().create_task(drain(process.stderr, up.stderr))
    try:
        async with asyncio.timeout(90):
            while not up.lines or not up.lines[-1].startswith("Data: "):
                line = await process.stdout.readline()
                assert line, "fulmen up ended early:\n" + "\n".join(up.stderr[-40:])
                up.lines.append(line.decode().rstrip())
        rest = asyncio.get_running_loop().create_task(drain(process.stdout, up.lines))
        yield up
    finally:
        await up.interrupt()
        await errors
    await rest


def url_of(line: str) -> str:
    match = re.search(r"https?://\S+", line)
    assert match, line
    return match.group(0)
