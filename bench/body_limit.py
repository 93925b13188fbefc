"""What unauthenticated oversized bodies cost the coordinator (issue 13): ``fulmen server``
(SQLite in a temporary data directory) on loopback, sent four 200 MB ``POST /api/projects``
at once, without a token.

Each post is streamed from one 64 KiB chunk sent again and again, so this process never holds
a body. Two cases: the length declared (``Content-Length``, as ``curl --data-binary @file``
sends it) and not declared (``Transfer-Encoding: chunked``, as a client streaming from a pipe
does). A sender goes on until the server stops taking its bytes, then reads the answer.

Printed per case: the server's resident memory (VmRSS, from ``/proc``) before the posts, its
highest seen while they were sent (sampled every 5 ms) and after them; what each sender got
in before the server stopped it; and the answers. The issue's bar: less than 50 MB of growth.

Run: ``.venv/bin/python bench/body_limit.py [--mb 200] [--posts 4] [--path /api/projects]
[--src DIR]`` (``--src``: a ``src`` directory to run ``fulmen server`` from, to measure another
version of it; ``--path``: another route, such as a manual run's, whose limit is a dataclip's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fulmen import keys as keyring

MB = 1024 * 1024
CHUNK = b"1," * (32 * 1024)


@dataclass
class Sent:
    bytes: int
    status: str


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) / 1024


def post(port: int, path: str, total: int, *, declared: bool) -> Sent:
    """One unauthenticated POST of ``total`` bytes, streamed; what went out, and the answer."""
    length = f"Content-Length: {total}" if declared else "Transfer-Encoding: chunked"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\n{length}\r\n\r\n"
    ).encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        with contextlib.suppress(ConnectionError):
            while sent < total:
                piece = CHUNK[: total - sent] if declared else CHUNK
                sock.sendall(piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            if not declared:
                sock.sendall(b"0\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionError, TimeoutError):
            while data := sock.recv(65536):
                answer += data
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(no answer)"
    return Sent(sent, status)


class Sampler:
    """The highest VmRSS of ``pid`` while in the block, sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def case(pid: int, port: int, path: str, posts: int, total: int, *, declared: bool) -> None:
    before = rss_mb(pid)
    started = time.perf_counter()
    with Sampler(pid) as sampler:
        sent = await asyncio.gather(
            *(asyncio.to_thread(post, port, path, total, declared=declared) for _ in range(posts))
        )
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # let the server finish with the closed connections
    after = rss_mb(pid)
    name = "Content-Length" if declared else "chunked"
    print(f"{posts} x {total // MB} MB to {path}, {name}, no token, in {elapsed:.2f}s:")
    print(
        f"  server RSS before {before:.1f} MB, peak {sampler.peak:.1f} MB, "
        f"after {after:.1f} MB: grew {after - before:+.1f} MB (peak {sampler.peak - before:+.1f})"
    )
    for one in sent:
        print(f"  sent {one.bytes / MB:7.2f} MB before the server stopped it: {one.status}")


@contextlib.contextmanager
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-") as tmp:
        yield Path(tmp) / "data"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of each post")
    parser.add_argument("--posts", type=int, default=4, help="posts at once")
    parser.add_argument("--path", default="/api/projects", help="where to post")
    parser.add_argument("--src", help="run fulmen server from this src directory")
    args = parser.parse_args()
    generated = keyring.generate()
    with data_dir() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
        env.update(
            WORKER_SECRET=generated.worker_secret,
            WORKER_RUNS_PRIVATE_KEY=generated.private_key,
            FULMEN_DATA_DIR=str(data),
        )
        if args.src:
            env["PYTHONPATH"] = str(Path(args.src).resolve())
        server = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "fulmen", "server", "--host", "127.0.0.1", "--port", "0"),
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        assert server.stderr is not None
        try:
            port = await listening(server.stderr)
            drain = asyncio.create_task(server.stderr.read())  # its log must not fill the pipe
            for declared in (True, False):
                total = args.mb * MB
                await case(server.pid, port, args.path, args.posts, total, declared=declared)
        finally:
            server.terminate()
            await server.wait()
        await drain


async def listening(log: asyncio.StreamReader) -> int:
    """The port ``fulmen server`` says it listens on."""
    while line := await log.readline():
        if found := re.search(rb"listening on http://[\d.]+:(\d+)", line):
            return int(found.group(1))
    raise SystemExit("fulmen server exited before listening")


if __name__ == "__main__":
    asyncio.run(main())
