"""The runner's HTTP API on a loopback socket: create in each of Escrin's content types, every
bad input refused with nothing created, the three triggers, listing, runs and logs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import CLASSIC, CONFIG, ECHO, RELAY

pytestmark = pytest.mark.timeout(60)


def test_create_in_every_content_type_then_use_the_three_triggers(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            made = await _create_three_ways(s, tmp_path)
            assert [m["state"] for m in made] == ["ready"] * 3
            listed = (await s.http.get("/workers")).json()
            assert {w["id"] for w in listed} == {m["id"] for m in made}
            await _http_trigger(s, made[0]["id"])
            await _event_trigger(s, made)
            await _manual_and_create_runs(s, made[0]["id"])
            await _classic_script(s)

    asyncio.run(main())


async def _create_three_ways(s: Served, tmp_path: Path) -> list[dict[str, Any]]:
    config = {"token": "abc"}
    as_json = await s.http.post(
        "/", json={"script": ECHO, "type": "module", "name": "j", "config": config, "events": ["t"]}
    )
    assert as_json.status_code == 201, as_json.text
    as_form = await s.http.post(
        "/workers",
        data={"script": ECHO, "type": "module", "name": "u", "config": json.dumps(config),
              "events": "t, other"},
    )  # fmt: skip
    assert as_form.status_code == 201, as_form.text
    # The README's curl example, verbatim but for the port and files: -F with a file upload.
    script = tmp_path / "worker.py"
    script.write_text(ECHO)
    as_multipart = await _multipart(s, script, config)
    assert as_multipart["schedule"] == "*/5 * * * *"
    assert as_multipart["next_run"] is not None
    return [as_json.json(), as_form.json(), as_multipart]


async def _multipart(s: Served, script: Path, config: dict[str, Any]) -> dict[str, Any]:
    curl = shutil.which("curl")
    if curl is None:  # the same request built by the client library
        files = {"script": ("worker.py", script.read_bytes())}
        data = {"type": "module", "schedule": "*/5 * * * *", "config": json.dumps(config)}
        reply = await s.http.post("/", files=files, data=data)
        assert reply.status_code == 201, reply.text
        result: dict[str, Any] = reply.json()
        return result
    command = [curl, "-sS", "-w", "\\n%{http_code}", s.url,
               "-H", f"Authorization: Bearer {s.auth.token}", "-F", f"script=@{script}",
               "-F", "type=module", "-F", 'schedule="*/5 * * * *"',
               "-F", f"config={json.dumps(config)}"]  # fmt: skip
    done = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    out, _ = await done.communicate()
    body, status = out.decode().rsplit("\n", 1)
    assert status == "201", body
    parsed: dict[str, Any] = json.loads(body)
    return parsed


async def _http_trigger(s: Served, worker_id: str) -> None:
    reply = await s.http.post(f"/workers/{worker_id}/fetch/a/b?x=1&x=2&y=3", content=b"hi")
    assert reply.status_code == 200
    query = {"x": ["1", "2"], "y": ["3"]}
    assert reply.json() == {"method": "POST", "path": "/a/b", "query": query, "body": "hi",
                            "calls": 1, "worker": worker_id}  # fmt: skip
    bare = await s.http.get(f"/workers/{worker_id}/fetch")
    assert bare.json()["path"] == "/" and bare.json()["calls"] == 2
    by_name = await s.http.get("/workers/j/fetch/z")
    assert by_name.json()["path"] == "/z"


async def _event_trigger(s: Served, made: list[dict[str, Any]]) -> None:
    reply = await s.http.post("/events/t", json={"n": 1})
    assert reply.status_code == 202
    assert sorted(reply.json()["delivered_to"]) == sorted(m["id"] for m in made[:2])
    for worker in made[:2]:
        await s.runner.logbook.wait_for(worker["id"], lambda r: r["line"] == "event t {'n': 1}")
    nobody = await s.http.post("/events/nobody.listens", json=None)
    assert nobody.json()["delivered_to"] == []


async def _manual_and_create_runs(s: Served, worker_id: str) -> None:
    reply = await s.http.post(f"/workers/{worker_id}/run")
    assert reply.status_code == 202
    run_id = reply.json()["run_id"]
    await s.runner.logbook.wait_for(worker_id, lambda r: r.get("run_id") == run_id
                                    and r.get("event") == "run_ended")  # fmt: skip
    runs = (await s.http.get(f"/workers/{worker_id}/runs")).json()
    assert [(r["trigger"], r["outcome"]) for r in runs] == [("manual", "ok"), ("create", "ok")]
    lines = [r["line"] for r in (await s.http.get(f"/workers/{worker_id}/logs")).json()]
    assert "tasks ran manual" in lines and "config has 1 keys" in lines
    detail = (await s.http.get(f"/workers/{worker_id}")).json()
    assert detail["recent_runs"] == {"ok": 2} and detail["handlers"] == ["event", "fetch", "tasks"]
    assert detail["last_run"] == runs[0]["ended_at"]
    # every time is ISO 8601 in UTC (issue 21: created_at and last_run were unix floats)
    logged = (await s.http.get(f"/workers/{worker_id}/logs")).json()
    times = [detail["created_at"], detail["last_run"], logged[-1]["ts"]]
    times += [r[key] for r in runs for key in ("started_at", "ended_at")]
    assert all(datetime.fromisoformat(t).utcoffset() == timedelta(0) for t in times)
    # and since= takes one: only what came after
    after = await s.http.get(f"/workers/{worker_id}/logs", params={"since": logged[-2]["ts"]})
    assert after.json() == [logged[-1]]


async def _classic_script(s: Served) -> None:
    made = await s.create(CLASSIC, type="classic", name="old-style")
    reply = await s.http.get(f"/workers/{made['id']}/fetch/p")
    assert reply.text == "hello from classic /p"
    await s.runner.logbook.wait_for(made["id"], lambda r: r["line"] == "classic tick")


BAD_CREATES: list[tuple[str, dict[str, Any], int, str]] = [
    ("unparseable JSON", {"content": b"{nope", "headers": {"content-type": "application/json"}},
     400, "not valid JSON"),
    ("JSON array", {"json": [1, 2]}, 400, "JSON object"),
    ("unsupported type", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported content type: text/plain"),
    ("broken multipart", {"content": b"--zz\r\nnonsense",
                          "headers": {"content-type": "multipart/form-data; boundary=zz"}},
     400, "script: is required"),
    ("no script", {"json": {"type": "module"}}, 400, "script: is required"),
    ("empty script", {"json": {"script": "   "}}, 400, "script: is required"),
    ("script that does not compile", {"json": {"script": "def broken(:\n"}}, 400,
     "does not compile"),
    ("type: must be one of module, classic", {"json": {"script": "x = 1", "type": "esm"}}, 400,
     "type: must be one of module, classic"),
    ("bad config JSON in a form", {"data": {"script": "x = 1", "config": "{not json"}}, 400,
     "config: is not valid JSON"),
    ("config not an object", {"json": {"script": "x = 1", "config": [1]}}, 400,
     "config: must be an object"),
    ("config string not JSON", {"json": {"script": "x = 1", "config": "oops"}}, 400,
     "config: is not valid JSON"),
    ("invalid cron", {"json": {"script": "async def tasks(r): pass", "schedule": "61 * * * *"}},
     400, "invalid schedule"),
    ("six-field cron", {"json": {"script": "async def tasks(r): pass",
                                 "schedule": "0 */5 * * * *"}}, 400, "invalid schedule"),
    ("never-firing cron", {"json": {"script": "async def tasks(r): pass",
                                    "schedule": "0 0 30 2 *"}}, 400, "invalid schedule"),
    ("unknown time zone", {"json": {"script": "async def tasks(r): pass",
                                    "schedule": "* * * * *", "timezone": "Mars/Olympus"}},
     400, "invalid schedule"),
    ("unknown field", {"json": {"script": "x = 1", "colour": "red"}}, 400, "unknown field"),
    ("bad name", {"json": {"script": "x = 1", "name": "no spaces"}}, 400, "name: must be"),
    ("bad event topic", {"json": {"script": "x = 1", "events": ["Caps!"]}}, 400,
     "optionally ending in"),
    ("unknown policy field", {"json": {"script": "x = 1", "policy": {"anyone": True}}}, 400,
     "unknown policy field"),
    ("unknown identity", {"json": {"script": "x = 1", "identity": "ghost"}}, 400,
     "no identity named"),
    ("script raises on load", {"json": {"script": "raise ImportError('no such lib')"}}, 400,
     "script failed to load: ImportError: no such lib"),
    ("schedule without tasks", {"json": {"script": "x = 1", "schedule": "* * * * *"}}, 400,
     "needs a tasks handler"),
    ("events without on_event", {"json": {"script": "x = 1", "events": ["t"]}}, 400,
     "need an on_event handler"),
    ("script over 1 MiB", {"json": {"script": "#" * (1 << 20) + "\n"}}, 413, "over"),
]  # fmt: skip


def test_every_bad_create_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            await s.create(ECHO, name="taken")
            before = [w.id for w in await s.runner.registry.workers()]
            for label, request, status, message in BAD_CREATES:
                for path in ("/", "/workers"):
                    reply = await s.http.post(path, **request)
                    assert reply.status_code == status, (label, reply.text)
                    assert reply.headers["content-type"] == "application/json", label
                    assert message in reply.json()["error"], (label, reply.json())
            taken = await s.http.post("/workers", json={"script": ECHO, "name": "taken"})
            assert taken.status_code == 409
            assert [w.id for w in await s.runner.registry.workers()] == before
            assert len(s.runner.workers()) == 1
            logs = sorted(os.listdir(tmp_path / "logs"))
            assert logs == [f"{before[0]}.jsonl"]

    asyncio.run(main())


def test_other_bad_requests(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            made = await s.create(CONFIG, name="c")
            checks = [
                (await s.http.get("/workers/nope"), 404),
                (await s.http.delete("/workers/nope"), 404),
                (await s.http.post("/workers/nope/run"), 404),
                (await s.http.post(f"/workers/{made['id']}/run"), 404),  # no tasks handler
                (await s.http.get("/workers/nope/fetch/x"), 404),
                (await s.http.post("/events/Bad Topic", json={}), 400),
                (await s.http.post("/events/t", content=b"{nope"), 400),
                (await s.http.post("/events/t", content=b"x" * (300 * 1024)), 413),
                (await s.http.get(f"/workers/{made['id']}/runs?limit=0"), 400),
                (await s.http.get(f"/workers/{made['id']}/logs?since=yesterday"), 400),
                (await s.http.get("/no/such/route"), 404),
                (await s.http.put("/workers"), 405),
            ]
            for reply, status in checks:
                assert reply.status_code == status, reply.text
                assert "error" in reply.json()
            assert (await s.http.delete(f"/workers/{made['id']}")).status_code == 204
            assert (await s.http.get("/workers")).json() == []
            # Parameters do not change the media type; no content type at all means JSON.
            body = json.dumps({"script": CONFIG, "run_on_create": False}).encode()
            for headers in ({"content-type": "application/json; charset=utf-8"}, {}):
                reply = await s.http.post("/workers", content=body, headers=headers)
                assert reply.status_code == 201, reply.text
                assert ("content-type" in reply.request.headers) is bool(headers)
            assert (await s.http.get("/healthz")).json()["ok"] is True

    asyncio.run(main())


def test_workers_emit_events_and_a_loop_stops_after_the_hop_limit(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            relay = await s.create(RELAY, events=["loop"])
            listener = await s.create(ECHO, events=["loop"], run_on_create=False)
            assert (await s.http.post("/events/loop", json={})).json()["delivered_to"] == [
                relay["id"], listener["id"]]  # fmt: skip
            failed = await s.runner.logbook.wait_for(
                relay["id"], lambda r: r.get("event") == "event_failed"
            )
            assert "hops" in failed["line"]
            lines = [r["line"] for r in s.runner.logbook.read(relay["id"])]
            hops = [line for line in lines if line.startswith("hop ")]
            assert hops[0] == "hop 0 from None"
            assert hops[1:] == [f"hop {n} from {relay['id']}" for n in range(1, 9)]
            assert (await s.http.get(f"/workers/{relay['id']}")).json()["state"] == "ready"

    asyncio.run(main())
