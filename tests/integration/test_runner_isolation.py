"""Config privacy and worker isolation (spec runner.md §3.9, P1 and P6): a worker cannot reach
another worker's config, files or process, nor the runner's state, environment or memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import PROBE

pytestmark = pytest.mark.timeout(60)

ALLOWED_ENV = {"HOME", "LANG", "PATH", "TMPDIR"}


async def probe(s: Served, ref: str, **query: Any) -> dict[str, Any]:
    reply = await s.http.post(f"/workers/{ref}/fetch", json=query)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def test_config_is_private_and_workers_are_isolated(tmp_path: Path) -> None:
    marker = "MARKER-" + secrets.token_hex(16)
    config = {"api_key": marker, "nested": {"list": [1, 2.5, None, True], "text": "é"}}

    async def main() -> None:
        async with served(tmp_path / "state") as s:
            a = await s.create(PROBE, name="a", config=config)
            b = await s.create(PROBE, name="b", config={"mine": 1})
            home_a = await probe(s, "a", write=True)
            seen = await _probe_from_b(s, home_a, marker)
            assert seen["config"] == {"mine": 1}
            assert set(seen["env"]) <= ALLOWED_ENV
            # Inherited: stdin, the output file, the channel. Beyond those only what the
            # worker's own asyncio loop opened (epoll and its self-pipe) and the listing.
            fds = seen["fds"]
            assert set(fds) >= {"0", "1", "2", "3"} and fds["0"] == "/dev/null"
            extra = sorted(v.split(":")[0] for k, v in fds.items() if int(k) > 3)
            assert extra == ["anon_inode", "gone", "socket", "socket"], fds
            assert seen["marker"]["found"] == [] and seen["marker"]["scanned"] > 10_000_000
            if s.runner.isolation == "process":
                pytest.skip("filesystem checks need Landlock or a separate uid on this host")
            if s.runner.sandbox.applied("mount_namespace"):
                _b_sees_nothing_of_a_in_its_namespaces(seen)
            else:
                denied = {k: v for k, v in seen.items() if k.startswith(("read_", "list_"))}
                assert all(v != "ok" for v in denied.values()), denied
            own = await probe(s, "a", read={}, other_home="/nonexistent")
            assert own["config"] == config  # the worker itself gets an exact copy
            await _nothing_shows_the_marker(s, a["id"], marker)
            assert b["id"] != a["id"]
        _state_dir_never_holds(tmp_path / "state", marker)

    asyncio.run(main())


async def _probe_from_b(s: Served, home_a: dict[str, Any], marker: str) -> dict[str, Any]:
    state = s.state_dir
    # a's pid on the host, as the runner reports it: inside its pid namespace a is pid 1.
    a_pid = (await s.http.get("/workers/a")).json()["pid"]
    reads = {
        "read_master_key": str(state / "master.key"),
        "read_db": str(state / "runner.db"),
        "read_other_file": os.path.join(home_a["home"], "mine.txt"),
        "read_other_mem": f"/proc/{a_pid}/mem",
        "read_other_environ": f"/proc/{a_pid}/environ",
        "read_runner_environ": f"/proc/{os.getpid()}/environ",
        "read_runner_mem": f"/proc/{os.getpid()}/mem",
    }
    return await probe(
        s,
        "b",
        read=reads,
        other_home=home_a["home"],
        marker_prefix=marker[:7],
        marker_length=len(marker),
        marker_digest=hashlib.sha256(marker.encode()).hexdigest(),
    )


def _b_sees_nothing_of_a_in_its_namespaces(seen: dict[str, Any]) -> None:
    """With namespaces, b's HOME has the same path as a's but is b's own tmpfs, and only b's
    own processes have pids in its pid namespace: a's file and a's process, the runner and
    its state are not even there to be refused."""
    assert seen["read_other_file"] == "FileNotFoundError"
    assert "mine.txt" not in seen["other_home_entries"]
    reads = {k: v for k, v in seen.items() if k.startswith("read_")}
    assert set(reads.values()) == {"FileNotFoundError"}, reads


async def _nothing_shows_the_marker(s: Served, worker_id: str, marker: str) -> None:
    await s.http.post(f"/workers/{worker_id}/run")  # no tasks handler: an error body
    bodies = [
        await s.http.get("/workers"),
        await s.http.get(f"/workers/{worker_id}"),
        await s.http.get("/workers/a"),
        await s.http.get(f"/workers/{worker_id}/runs"),
        await s.http.get(f"/workers/{worker_id}/logs"),
        await s.http.post(f"/workers/{worker_id}/fetch", json={"read": 1}),  # handler raises
        await s.http.post("/workers", json={"script": "def (", "config": {"k": marker}}),
        await s.http.post(
            "/workers", json={"script": "x = 1", "name": "a", "config": {"k": marker}}
        ),
    ]
    for reply in bodies:
        assert marker not in reply.text, reply.text
    assert bodies[5].json()["error"] == "worker handler raised"


def _state_dir_never_holds(state: Path, marker: str) -> None:
    needles = [marker.encode(), marker.encode("utf-16-le")]
    for root, _, files in os.walk(state):
        for name in files:
            data = (Path(root) / name).read_bytes()
            assert not any(n in data for n in needles), name
