"""Each worker's log: its stdout, stderr and ``rnr.log`` lines, and the runner's own records
about it (started, crashed, restarting, skipped-overlap, missed), as JSON lines.

One file per worker, ``logs/<id>.jsonl``, rotated to ``<id>.jsonl.1`` at 5 MiB, so a chatty
worker costs at most twice that. The files outlive a runner restart; ``GET .../logs`` reads
them. A short in-memory tail per worker lets a caller (a test, the bench) await a record
instead of polling the file.

A worker's config is private (spec runner.md §3.9, P1), but its script may print it, or
raise with it in the message. Once :meth:`Logbook.mask` is given the config, every value of
it is masked (``***``) in whatever is written about that worker, by the scrubber the
coordinator's runs use for credentials (``fulmen.scrub``, with its rules: values
shorter than its minimum, and locating keys such as ``url`` or ``username``, are left as they
are). The run history takes its error text through :meth:`Logbook.scrub` too, so no config
value reaches the log files, ``runner.db`` or its WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from fulmen.clock import Clock
from fulmen.scrub import Scrubber

__all__ = ["Logbook"]

_MAX_FILE_BYTES: Final = 5 * 1024 * 1024
_TAIL: Final = 500

Record = dict[str, Any]


class Logbook:
    def __init__(self, directory: str, clock: Clock, max_file_bytes: int = _MAX_FILE_BYTES):
        self._directory = directory
        self._clock = clock
        self._max = max_file_bytes
        self._tails: dict[str, deque[Record]] = {}
        self._masks: dict[str, Scrubber] = {}
        self._waiters: list[tuple[str, Callable[[Record], bool], asyncio.Future[Record]]] = []
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def mask(self, worker_id: str, config: Mapping[str, Any]) -> None:
        """Mask the values of ``config`` in every record written about the worker from now."""
        self._masks[worker_id] = Scrubber([config])

    def scrub(self, worker_id: str, text: str) -> str:
        """``text`` with the worker's config values masked."""
        mask = self._masks.get(worker_id)
        return mask.text(text) if mask else text

    def write(self, worker_id: str, stream: str, line: str, **extra: Any) -> Record:
        """Append one record (``stream``: stdout, stderr, log or runner), config values masked."""
        mask = self._masks.get(worker_id)
        if mask:
            line, extra = mask.text(line), mask.value(extra)
        record = {"ts": self._clock.now().timestamp(), "stream": stream, "line": line, **extra}
        path = self._path(worker_id)
        data = json.dumps(record).encode() + b"\n"
        try:
            if os.path.getsize(path) + len(data) > self._max:
                os.replace(path, path + ".1")
        except FileNotFoundError:
            pass
        with open(path, "ab") as f:
            f.write(data)
        self._tails.setdefault(worker_id, deque(maxlen=_TAIL)).append(record)
        if self._waiters:
            self._wake(worker_id, record)
        return record

    def read(self, worker_id: str, since: float | None = None, limit: int = 200) -> list[Record]:
        """The latest ``limit`` records after ``since``, oldest first."""
        records: list[Record] = []
        for path in (self._path(worker_id) + ".1", self._path(worker_id)):
            try:
                with open(path, "rb") as f:
                    records.extend(json.loads(line) for line in f if line.strip())
            except FileNotFoundError:
                continue
        if since is not None:
            records = [r for r in records if r["ts"] > since]
        return records[-limit:] if limit > 0 else []

    def remove(self, worker_id: str) -> None:
        for path in (self._path(worker_id), self._path(worker_id) + ".1"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._tails.pop(worker_id, None)
        self._masks.pop(worker_id, None)

    async def wait_for(self, worker_id: str, match: Callable[[Record], bool]) -> Record:
        """The first record (in the recent tail, or still to come) that ``match`` accepts."""
        for record in self._tails.get(worker_id, ()):
            if match(record):
                return record
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        waiter = (worker_id, match, future)
        self._waiters.append(waiter)
        try:
            return await future
        finally:
            self._waiters.remove(waiter)

    def _wake(self, worker_id: str, record: Record) -> None:
        for wid, match, future in self._waiters:
            if wid == worker_id and not future.done() and match(record):
                future.set_result(record)

    def _path(self, worker_id: str) -> str:
        return os.path.join(self._directory, f"{worker_id}.jsonl")
