"""A real worker (real sockets, real sandboxed children) against the scripted Lightning:
multi-job workflows down their success and failure paths, every event in §5.11's order with
the payload shapes the recorded ws-worker 1.25.0 sends, and the failures around a run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.worker import (
    Lightning,
    Recorded,
    ScriptedRun,
    job,
    keys,
    plan,
    private_key,
    running,
    scenario,
    settings_for,
)

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix" / "capture.jsonl"
SECRET_VALUE = "s3cret-value-4711"

CHECK = job(
    "check",
    "@fn\n"
    "def check(state):\n"
    "    print('configured for', state['configuration'])\n"
    "    if not state['data'].get('items'):\n"
    "        raise ValueError('no items')\n"
    "    state['data'] = {'count': len(state['data']['items'])}\n"
    "    return state\n",
    credential_id="cred-1",
)
REPORT = job("report", "fn(lambda s: {**s, 'data': {'report': s['data']['count'] * 10}})\n")
RECOVER = job("recover", "fn(lambda s: {**s, 'data': {'recovered': True}})\n")
BRANCHING = plan(
    CHECK,
    REPORT,
    RECOVER,
    edges=[
        {"id": "e1", "source_job_id": "check", "target_job_id": "report",
         "condition": "on_job_success"},
        {"id": "e2", "source_job_id": "check", "target_job_id": "recover",
         "condition": "on_job_failure"},
    ],
)  # fmt: skip
CREDENTIALS = {"cred-1": {"user": "u", "password": SECRET_VALUE}}


def server() -> Lightning:
    return Lightning(secret=keys().worker_secret, private_key=private_key())


def dataclip(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- the order of §5.11 ---------------------------------------------------------------------

_ORDER = re.compile(
    r"join plan (dataclip )?(credential )*rte rte start rte ver (ss (steplog )*sc )*"
    r"status (status )?complete leave"
)


def tokens(events: list[Recorded]) -> str:
    """One word per event, so that the order of §5.11 is a regular expression."""
    words = []
    active: str | None = None
    for e in events:
        p = e.payload
        if e.event == "run:log":
            if p["source"] in ("RTE", "VER"):
                words.append(p["source"].lower())
            elif p.get("step_id") is not None:
                assert p["step_id"] == active, "a step's log carries that step's id"
                words.append("steplog")
            else:
                words.append("status")
        elif e.event == "step:start":
            active = p["step_id"]
            words.append("ss")
        elif e.event == "step:complete":
            assert p["step_id"] == active
            active = None
            words.append("sc")
        else:
            words.append(
                {
                    "phx_join": "join",
                    "fetch:plan": "plan",
                    "fetch:dataclip": "dataclip",
                    "fetch:credential": "credential",
                    "run:start": "start",
                    "run:complete": "complete",
                    "phx_leave": "leave",
                }[e.event]
            )
    return " ".join(words)


def payload_keys_of_ws_worker() -> dict[str, set[frozenset[str]]]:
    """The key sets of every payload the real ws-worker sent, per event."""
    shapes: dict[str, set[frozenset[str]]] = {}
    for line in CAPTURE.read_text().splitlines():
        record = json.loads(line)
        if record["dir"] == "W->L" and isinstance(record["frame"][4], dict):
            event, payload = record["frame"][3], record["frame"][4]
            shapes.setdefault(event, set()).add(frozenset(payload))
    return shapes


def assert_shaped_like_ws_worker(events: list[Recorded]) -> None:
    """Each payload has the keys ws-worker's has, but the engine's ``thread_id`` (we have no
    threads); optional keys (``input_dataclip_id``, ``step_id``…) may be absent."""
    known = payload_keys_of_ws_worker()
    for e in events:
        if e.event in ("phx_leave", "fetch:credential"):
            continue
        theirs = set().union(*known[e.event])
        ours = set(e.payload)
        assert ours <= theirs, f"{e.event} has keys ws-worker never sends: {ours - theirs}"
        assert any(shape - {"thread_id"} <= ours | {"input_dataclip_id", "step_id", "mem",
                                                   "duration", "timestamp"}
                   for shape in known[e.event]), e.event  # fmt: skip


async def wait_left(lightning: Lightning, run_id: str) -> list[Recorded]:
    await lightning.wait_for(lambda: any(e.event == "phx_leave" for e in lightning.of_run(run_id)))
    return lightning.of_run(run_id)


# -- tests ------------------------------------------------------------------------------------


def test_a_branching_workflow_down_both_paths() -> None:
    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning)):
            ok = ScriptedRun("ok", BRANCHING, dataclip({"data": {"items": [1, 2]}}), CREDENTIALS)
            bad = ScriptedRun("bad", BRANCHING, dataclip({"data": {}}), CREDENTIALS)
            lightning.enqueue(ok)
            lightning.enqueue(bad)
            for run_id in ("ok", "bad"):
                events = await wait_left(lightning, run_id)
                assert _ORDER.fullmatch(tokens(events)), tokens(events)
                assert_shaped_like_ws_worker(events)
                everything = json.dumps([e.payload for e in events])
                assert SECRET_VALUE not in everything  # credentials never leave
            check_success_path(lightning.of_run("ok"))
            check_failure_path(lightning.of_run("bad"))

    scenario(body)


def check_success_path(events: list[Recorded]) -> None:
    starts = [e.payload for e in events if e.event == "step:start"]
    completes = [e.payload for e in events if e.event == "step:complete"]
    assert [s["job_id"] for s in starts] == ["check", "report"]
    assert [c["reason"] for c in completes] == ["success", "success"]
    assert starts[0]["input_dataclip_id"] == "d"
    assert starts[1]["input_dataclip_id"] == completes[0]["output_dataclip_id"]
    assert json.loads(completes[1]["output_dataclip"]) == {"data": {"report": 20}}
    [complete] = [e.payload for e in events if e.event == "run:complete"]
    assert complete["reason"] == "success" and complete["error_type"] is None
    assert complete["final_state"] == {"data": {"report": 20}}
    assert complete["final_dataclip_id"] == completes[1]["output_dataclip_id"]
    assert re.fullmatch(r"\d{16}", complete["timestamp"])
    logs = [" ".join(map(str, e.payload["message"])) for e in events if e.event == "run:log"]
    assert "configured for {'user': 'u', 'password': '***'}" in logs


def check_failure_path(events: list[Recorded]) -> None:
    completes = [e.payload for e in events if e.event == "step:complete"]
    assert [(c["job_id"], c["reason"], c["error_type"]) for c in completes] == [
        ("check", "fail", "ValueError"),
        ("recover", "success", None),
    ]
    assert completes[0]["error_message"] == "no items"
    failed_state = json.loads(completes[0]["output_dataclip"])
    assert failed_state["errors"]["check"]["name"] == "ValueError"
    assert "configuration" not in failed_state
    [complete] = [e.payload for e in events if e.event == "run:complete"]
    assert complete["reason"] == "success"  # the failure was handled downstream (§7.1)
    assert complete["final_state"] == {
        "data": {"recovered": True},
        "errors": failed_state["errors"],
    }


def test_an_unhandled_failure_fails_the_run_with_its_state() -> None:
    throw = plan(job("t", "@fn\ndef boom(state):\n    raise RuntimeError('boom')\n"))

    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning)):
            lightning.enqueue(ScriptedRun("throw", throw))
            complete = await lightning.completed("throw")
            events = await wait_left(lightning, "throw")
        assert _ORDER.fullmatch(tokens(events))
        assert (complete["reason"], complete["error_type"], complete["error_message"]) == (
            "fail",
            "RuntimeError",
            "boom",
        )
        status = [e.payload["message"] for e in events if e.event == "run:log"][-2:]
        assert status == [["Run complete with status: fail"], ["RuntimeError: boom"]]
        [step] = [e.payload for e in events if e.event == "step:complete"]
        assert complete["final_dataclip_id"] == step["output_dataclip_id"]

    scenario(body)


def test_withheld_outputs_and_batched_logs() -> None:
    big = job(
        "big",
        "fn(lambda s: {**s, 'data': {'blob': 'x' * 3000}})\nprint('made it')\nprint('y' * 5000)\n",
    )
    small = job("small", "fn(lambda s: {**s, 'data': {'size': len(s['data']['blob'])}})\n")
    edges = [{"id": "e", "source_job_id": "big", "target_job_id": "small"}]
    limited = plan(
        big, small, edges=edges, options={"payload_limit_mb": 0.001, "log_payload_limit_mb": 0.001}
    )
    hidden = plan(small, options={"output_dataclips": False})

    async def body() -> None:
        async with server() as lightning:
            async with running(settings_for(lightning, batch_logs=True)):
                lightning.enqueue(ScriptedRun("limited", limited))
                lightning.enqueue(
                    ScriptedRun("hidden", hidden, dataclip({"data": {"blob": "abc"}}))
                )
                await lightning.completed("limited")
                await lightning.completed("hidden")
            check_withheld(lightning.of_run("limited"))
            [hidden_complete] = [
                e.payload for e in lightning.of_run("hidden") if e.event == "step:complete"
            ]
            assert "output_dataclip" not in hidden_complete
            assert hidden_complete["output_dataclip_id"]

    scenario(body)


def check_withheld(events: list[Recorded]) -> None:
    completes = [e.payload for e in events if e.event == "step:complete"]
    assert completes[0]["output_dataclip_error"] == "DATACLIP_TOO_LARGE"
    assert "output_dataclip" not in completes[0]
    assert "output_dataclip_id" not in completes[0]
    second = [e.payload for e in events if e.event == "step:start"][1]
    assert "input_dataclip_id" not in second  # §5.7: its input was withheld
    assert json.loads(completes[1]["output_dataclip"]) == {"data": {"size": 3000}}
    batches = [e.payload for e in events if e.event == "run:batch_logs"]
    assert batches and not [e for e in events if e.event == "run:log"]
    lines = [" ".join(line["message"]) for b in batches for line in b["logs"]]
    assert any(text.startswith("Dataclip exceeds payload limit") for text in lines)
    assert "made it" in lines
    assert "(Log message redacted: exceeds 0.001mb memory limit)" in lines  # §7.2
    assert not any("yyyy" in text for text in lines)


@pytest.mark.parametrize("accepts", [frozenset(), frozenset({"run:batch_logs"})])
def test_logs_are_batched_when_the_server_says_it_takes_batches(accepts: frozenset[str]) -> None:
    """§5.9 has no negotiation; a Fulmen coordinator says so in its worker:queue join reply,
    Lightning does not, and then each line goes alone."""
    talk = plan(job("talk", "print('one')\nprint('two')\n"))

    async def body() -> list[Recorded]:
        async with Lightning(
            secret=keys().worker_secret, private_key=private_key(), accepts=accepts
        ) as lightning:
            async with running(settings_for(lightning)):
                lightning.enqueue(ScriptedRun("talk", talk))
                await lightning.completed("talk")
            return lightning.of_run("talk")

    events = scenario(body)
    lines = [" ".join(e.payload["message"]) for e in events if e.event == "run:log"]
    batches = [e.payload["logs"] for e in events if e.event == "run:batch_logs"]
    lines += [" ".join(line["message"]) for batch in batches for line in batch]
    assert {"one", "two"} <= set(lines)
    if accepts:
        assert batches and not [e for e in events if e.event == "run:log"]
    else:
        assert not batches


def test_a_missing_credential_or_dataclip_ends_the_run_before_it_starts() -> None:
    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning, capacity=2)):
            lightning.enqueue(ScriptedRun("no-cred", BRANCHING, credentials={}))
            lightning.enqueue(ScriptedRun("no-clip", BRANCHING, dataclip=None))
            no_cred = await lightning.completed("no-cred")
            no_clip = await lightning.completed("no-clip")
            assert no_cred == {
                "reason": "exception",
                "error_type": "CredentialLoadError",
                "error_message": "Failed to load credential cred-1: id: Credential not found!",
            }
            assert no_clip == {
                "reason": "exception",
                "error_type": "DataClipError",
                "error_message": "Failed to load dataclip d: not_found",
            }
            for run_id in ("no-cred", "no-clip"):
                names = [e.event for e in lightning.of_run(run_id)]
                assert "run:start" not in names and "step:start" not in names

    scenario(body)


def test_a_plan_that_does_not_compile_crashes_the_run() -> None:
    broken = plan(job("a", "fn(lambda s: s\n"))

    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning)):
            lightning.enqueue(ScriptedRun("broken", broken))
            complete = await lightning.completed("broken")
            assert complete["reason"] == "crash"
            assert complete["error_type"] == "CompileError"
            assert set(complete) == {"reason", "error_type", "error_message"}

    scenario(body)
