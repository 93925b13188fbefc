"""A stored worker is bound to its identity by the runner's signature (issue 13). Editing
``runner.db`` behind the runner's back (a swapped script under the victim's identity, a
loosened policy, a borrowed identity) leaves a row that does not verify: the runner refuses
it with a log line naming it and never starts it. Rows from before rows were signed are
signed once, at the first start that finds them."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen_testing.runner.harness import bearer, runner_process, served
from fulmen_testing.runner.scripts import ECHO, KEYS

pytestmark = pytest.mark.timeout(60)

SWAPPED = """
print("SWAPPED SCRIPT RAN")

async def fetch(request, rnr):
    key = await rnr.get_omni_key("local")
    return {"bits": (await key.derive_bits(256, salt=b"salt", info=b"info")).hex(),
            "config": await rnr.get_config()}
"""


def _create(http: httpx2.Client, script: str, **fields: Any) -> dict[str, Any]:
    reply = http.post("/workers", json={"script": script, **fields})
    assert reply.status_code == 201, reply.text
    made: dict[str, Any] = reply.json()
    return made


def test_a_worker_edited_in_runner_db_is_refused_and_never_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with runner_process(state) as (process, url):
        with httpx2.Client(base_url=url, timeout=30, headers=bearer(state)) as http:
            victim = _create(http, KEYS, name="victim", config={"token": "victim's own"},
                             policy={"min_isolation": "process"})  # fmt: skip
            _create(http, KEYS + "# b\n", name="loosened", policy={"min_isolation": "L3"})
            _create(http, KEYS + "# c\n", name="borrower")
            _create(http, ECHO, name="bystander")
            assert http.post("/workers/victim/fetch", json={}).json()["bits"]
        process.terminate()
        assert process.wait(timeout=20) == 0
    with sqlite3.connect(state / "runner.db") as db:
        db.execute("UPDATE workers SET script = ? WHERE name = 'victim'", (SWAPPED,))
        db.execute("UPDATE workers SET policy = '{}' WHERE name = 'loosened'")
        db.execute(
            "UPDATE workers SET identity_id = (SELECT identity_id FROM workers"
            " WHERE name = 'victim') WHERE name = 'borrower'"
        )
    with runner_process(state) as (process, url):
        with httpx2.Client(base_url=url, timeout=30, headers=bearer(state)) as http:
            ids = {w["name"]: w["id"] for w in http.get("/workers").json()}
            for name in ("victim", "loosened", "borrower"):
                _assert_refused(http, name)
            assert http.get("/workers/bystander").json()["state"] == "ready"
            lines = [r["line"] for r in http.get("/workers/victim/logs").json()]
            assert not any("SWAPPED" in line for line in lines), lines
            assert any(line.startswith(f"worker {victim['id']} (victim) refused") for line in lines)
            purge = http.delete("/workers/victim", params={"purge_key": "1"})
            assert purge.status_code == 409 and purge.json()["code"] == "refused"
            assert http.delete("/workers/victim").status_code == 204
            assert http.get("/workers/victim").status_code == 404
        process.terminate()
        process.wait(timeout=20)
        assert process.stderr is not None
        stderr = process.stderr.read()
    for name in ("victim", "loosened", "borrower"):
        line = f"worker {ids[name]} ({name}) refused: its stored record"
        assert sum(line in x for x in stderr.splitlines()) == 1, stderr
    assert "bystander" not in stderr


def _assert_refused(http: httpx2.Client, name: str) -> None:
    detail = http.get(f"/workers/{name}").json()
    assert detail["state"] == "refused" and detail["pid"] is None, detail
    assert detail["handlers"] == []
    for reply in (http.post(f"/workers/{name}/fetch", json={}),
                  http.post(f"/workers/{name}/restart"),
                  http.post(f"/workers/{name}/run")):  # fmt: skip
        assert reply.status_code == 409 and reply.json()["code"] == "refused", reply.text


def test_workers_stored_before_signing_are_signed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path = tmp_path / "runner.db"

    async def main() -> None:
        async with served(tmp_path) as s:
            made = await s.create(ECHO, name="old")
        # The file as it was before rows were signed (and before its schema was versioned).
        with sqlite3.connect(db_path) as db:
            db.execute("ALTER TABLE workers DROP COLUMN mac")
            db.execute("DROP TABLE schema_version")
        for start in range(2):
            async with served(tmp_path) as s:
                assert (await s.http.get("/workers/old")).json()["state"] == "ready"
                assert (await s.http.get("/workers/old/fetch/x")).json()["path"] == "/x"
                logs = (await s.http.get("/workers/old/logs")).json()
                signed = [r for r in logs if r.get("event") == "signed"]
                assert len(signed) == 1, (start, signed)
        assert signed[0]["line"] == (
            f"worker {made['id']} (old) was stored before workers were signed; "
            "signed it now as it is"
        )
        with sqlite3.connect(db_path) as db:
            [(mac,)] = db.execute("SELECT mac FROM workers").fetchall()
        assert isinstance(mac, bytes) and len(mac) == 32

    with caplog.at_level(logging.WARNING, logger="fulmen.runner"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if "signed it now" in r.getMessage()] == [
        f"worker {made_id(db_path)} (old) was stored before workers were signed; "
        "signed it now as it is"
    ]


def made_id(db_path: Path) -> str:
    with sqlite3.connect(db_path) as db:
        [(worker_id,)] = db.execute("SELECT id FROM workers").fetchall()
    return str(worker_id)
