"""Running an installer (npm, uv) for a run's packages: outside the sandbox, so with care.

An installer runs as the worker, on the worker's host. It gets the worker's environment
without the worker's own settings (the worker secret among them: no installer needs them, and
nothing an installer fetches should find them), no standard input, and a time limit; what it
prints on failure is reduced to one line for the run's error, and kept whole for its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fulmen.errors import AdaptorError

__all__ = [
    "INSTALL_TIMEOUT_S",
    "Finished",
    "InstallerFailed",
    "Progress",
    "environment",
    "file_lock",
    "run",
]

#: How long an install may take before it is given up.
INSTALL_TIMEOUT_S: Final = 300.0

#: Called with each line worth telling a run about (progress, the installer's complaints).
Progress = Callable[[str], None]


class InstallerFailed(AdaptorError):
    """The installer ran and failed; ``output`` is what it wrote to its standard error, for
    the caller to tell why (its message has the one line ``reason`` gave)."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True, slots=True)
class Finished:
    """What an installer printed, when it succeeded."""

    stdout: str
    stderr: str


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment without its own settings, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    return {**kept, **(extra or {})}


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    what: str,
    tool: str,
    reason: Callable[[str], str],
    env: Mapping[str, str],
    timeout_s: float = INSTALL_TIMEOUT_S,
    output: Progress | None = None,
) -> Finished:
    """Run ``argv`` to its end; with ``output``, each line it wrote to its standard error
    (where installers report) is given to it, failed or not.

    Raises:
        AdaptorError: it could not be started, did not finish in time, or failed; the message
            names ``what`` and gives ``reason(stderr)``, the installer's own one line.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
        )
    except OSError as exc:
        raise AdaptorError(f"{what}: {tool} could not be started ({exc.strerror})") from exc
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise AdaptorError(f"{what}: {tool} did not finish within {timeout_s:g}s") from None
    except asyncio.CancelledError:  # shutting down: the installer goes too, not left behind
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        raise
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if output is not None:
        for line in stderr.splitlines():
            if line.strip():
                output(line.strip())
    if process.returncode != 0:
        raise InstallerFailed(f"{what}: {tool} failed: {reason(stderr)}", stderr)
    return Finished(stdout, stderr)


@contextlib.asynccontextmanager
async def file_lock(path: Path, *, shared: bool = False) -> AsyncIterator[int]:
    """Hold ``flock`` on ``path`` (made if missing) for the block: between processes, as an
    asyncio lock is within one. Closing the descriptor releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)
