"""RunEvents: runtime events in, Lightning events out, in §5.11's order, with the worker's
dataclip bookkeeping (§6.5) and withheld outputs (§5.8, §7.2). Plain data, no sockets."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from fulmen.contract import RunComplete, RunLog, RunStart, StepComplete, StepStart
from fulmen.plan import Plan
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime import events as rt
from fulmen.worker.events import (
    DATACLIP_TOO_LARGE,
    Message,
    RunEvents,
    RunLimits,
    event_of,
    version_banner,
    versions_for,
)

NOW = 1_795_358_227_000_000
LIMITS = RunLimits(timeout_ms=300_000, memory_mb=500, payload_mb=10)


def three_steps(**extra: Any) -> Plan:
    return Plan.from_wire(
        {
            "id": "r",
            "dataclip_id": "d",
            "starting_node_id": "a",
            "jobs": [
                {"id": "a", "body": "", "adaptor": "@openfn/language-common@3.3.4"},
                {"id": "b", "body": "", "adaptor": "@openfn/language-common@3.3.4"},
                {"id": "c", "body": "", "adaptor": "@openfn/language-http@6.5.1"},
            ],
            "edges": [
                {"id": "ab", "source_job_id": "a", "target_job_id": "b"},
                {"id": "bc", "source_job_id": "b", "target_job_id": "c"},
            ],
            **extra,
        }
    )


def mapper(plan: Plan | None = None, limits: RunLimits = LIMITS) -> RunEvents:
    ids = (f"out-{i}" for i in itertools.count(1))
    return RunEvents(plan or three_steps(), limits, new_id=lambda: next(ids), now_us=lambda: NOW)


def step(job: str, output: str, nxt: list[str], reason: str = "success", **kw: Any) -> list[Any]:
    sid = f"s-{job}"
    complete = rt.StepComplete(
        sid, job, reason, kw.get("error_type"), kw.get("error_message"), output, nxt,
        duration_ms=3, mem_bytes=1000, timestamp=str(NOW + 2),
    )  # fmt: skip
    return [
        rt.StepStart(sid, job, str(NOW + 1)),
        rt.LogLine("info", "JOB", [f"in {job}"], str(NOW + 1), sid),
        complete,
    ]


def feed_all(m: RunEvents, events: list[Any]) -> list[Message]:
    out: list[Message] = list(m.preamble())
    for event in events:
        out.extend(m.feed(event))
    return out


def shape(messages: list[Message]) -> list[str]:
    """Event names, with each log's source: the order §5.11 prescribes."""
    return [
        f"{event_of(m)}:{m.line.source}" if isinstance(m, RunLog) else str(event_of(m))
        for m in messages
    ]


def happy_run() -> list[Any]:
    return [
        rt.WorkflowStart(str(NOW)),
        *step("a", '{"data":{"a":1}}', ["b"]),
        *step("b", '{"data":{"a":1,"b":2}}', ["c"]),
        *step("c", '{"data":{"a":1,"b":2,"c":3}}', []),
        rt.LogLine("info", "R/T", ["Run complete with status: success"], str(NOW + 5)),
        rt.WorkflowComplete("success", None, None, '{"data":{"a":1,"b":2,"c":3}}', ["s-c"],
                            str(NOW + 4)),
    ]  # fmt: skip


def test_a_run_comes_out_in_the_order_of_5_11() -> None:
    out = feed_all(mapper(), happy_run())
    per_step = ["step:start", "run:log:JOB", "step:complete"]
    assert shape(out) == [
        "run:log:RTE",
        "run:log:RTE",
        "run:start",
        "run:log:RTE",
        "run:log:VER",
        *per_step * 3,
        "run:log:R/T",
        "run:complete",
    ]
    notes = [m.line.message[0] for m in out if isinstance(m, RunLog) and m.line.source == "RTE"]
    assert notes == ["Memory limit: 500mb", "Timeout: 300s", "Payload limit: 10mb"]


def test_dataclip_ids_chain_from_the_input_to_the_leaf() -> None:
    out = feed_all(mapper(), happy_run())
    starts = [m for m in out if isinstance(m, StepStart)]
    completes = [m for m in out if isinstance(m, StepComplete)]
    assert [s.input_dataclip_id for s in starts] == ["d", "out-1", "out-2"]
    assert [c.output_dataclip_id for c in completes] == ["out-1", "out-2", "out-3"]
    [complete] = [m for m in out if isinstance(m, RunComplete)]
    assert complete.final_dataclip_id == "out-3"
    assert complete.final_state == {"data": {"a": 1, "b": 2, "c": 3}}
    assert complete.timestamp == str(NOW + 4)


def test_payloads_have_the_shapes_ws_worker_sends() -> None:
    out = feed_all(mapper(), happy_run())
    start = next(m for m in out if isinstance(m, RunStart))
    assert list(start.to_wire()) == ["versions", "timestamp"]
    complete = next(m for m in out if isinstance(m, StepComplete)).to_wire()
    # ws-worker 1.25.0's key order (fixture), without the engine's thread_id
    assert list(complete) == [
        "step_id",
        "job_id",
        "mem",
        "duration",
        "timestamp",
        "output_dataclip_id",
        "output_dataclip",
        "reason",
        "error_type",
        "error_message",
    ]
    assert complete["output_dataclip"] == '{"data":{"a":1}}'
    assert complete["mem"] == {"job": 1000, "system": 1000}
    run_complete = next(m for m in out if isinstance(m, RunComplete)).to_wire()
    assert list(run_complete) == [
        "timestamp",
        "final_state",
        "reason",
        "error_type",
        "error_message",
        "final_dataclip_id",
    ]
    log = next(m for m in out if isinstance(m, RunLog) and m.line.step_id).to_wire()
    assert list(log) == ["run_id", "message", "source", "level", "timestamp", "step_id"]


def test_worker_lines_are_dated_10ms_back() -> None:
    out = mapper().preamble()
    assert all(m.line.timestamp == str(NOW - 10_000) for m in out if isinstance(m, RunLog))


def test_output_dataclips_false_keeps_ids_and_withholds_bodies() -> None:
    limits = RunLimits(300_000, 500, 10, output_dataclips=False)
    out = feed_all(mapper(limits=limits), happy_run())
    completes = [m for m in out if isinstance(m, StepComplete)]
    assert [c.output_dataclip for c in completes] == [None, None, None]
    assert [c.output_dataclip_id for c in completes] == ["out-1", "out-2", "out-3"]
    assert "output_dataclip" not in completes[0].to_wire()


def test_an_output_over_the_payload_limit_is_withheld_and_the_run_goes_on() -> None:
    limits = RunLimits(300_000, 500, payload_mb=0.0001)  # 104 bytes
    big = json.dumps({"data": {"a": "x" * 200}}, separators=(",", ":"))
    events = [
        rt.WorkflowStart(str(NOW)),
        *step("a", big, ["b"]),
        *step("b", '{"data":{}}', []),
        rt.WorkflowComplete("success", None, None, '{"data":{}}', ["s-b"], str(NOW + 4)),
    ]
    out = feed_all(mapper(limits=limits), events)
    first = next(m for m in out if isinstance(m, StepComplete))
    assert first.output_dataclip_error == DATACLIP_TOO_LARGE
    assert first.output_dataclip is None and first.output_dataclip_id is None
    index = out.index(first)
    note = out[index - 1]
    assert isinstance(note, RunLog) and str(note.line.message[0]).startswith("Dataclip exceeds")
    second = [m for m in out if isinstance(m, StepStart)][1]
    assert second.input_dataclip_id is None  # §5.7: omitted after a withheld output
    assert "input_dataclip_id" not in second.to_wire()


def test_a_final_state_over_the_limit_has_its_data_redacted() -> None:
    limits = RunLimits(300_000, 500, payload_mb=0.0001)
    big = json.dumps({"data": "x" * 300, "references": []})
    m = mapper(Plan.from_wire({"id": "r", "jobs": [{"id": "a", "body": ""}]}), limits)
    m.feed(rt.WorkflowStart(str(NOW)))
    [complete] = m.feed(rt.WorkflowComplete("success", None, None, big, ["s"], str(NOW)))
    assert isinstance(complete, RunComplete)
    assert complete.final_state == {"data": "[REDACTED]", "references": []}
    assert complete.final_dataclip_id is None  # the leaf was never seen: no id to link


def test_a_failed_leaf_fails_the_run_with_the_state() -> None:
    errors = '{"data":{},"errors":{"t":{"name":"ValueError","message":"boom"}}}'
    m = mapper(Plan.from_wire({"id": "r", "jobs": [{"id": "t", "body": ""}]}))
    events = [
        rt.WorkflowStart(str(NOW)),
        *step("t", errors, [], "fail", error_type="ValueError", error_message="boom"),
        rt.WorkflowComplete("fail", "ValueError", "boom", errors, ["s-t"], str(NOW + 9)),
    ]
    out = feed_all(m, events)
    complete = out[-1]
    assert isinstance(complete, RunComplete)
    assert complete.to_wire()["reason"] == "fail"
    assert complete.final_state == json.loads(errors)
    assert complete.final_dataclip_id == "out-1"
    assert m.exit == ExitReason(Reason.FAIL, "ValueError", "boom")


def test_the_error_path_sends_only_the_reason() -> None:
    m = mapper()
    m.feed(rt.WorkflowStart(str(NOW)))
    [complete] = m.feed(
        rt.WorkflowComplete("kill", "TimeoutError", "Workflow failed to return within 1000ms",
                            None, [], None)
    )  # fmt: skip
    assert isinstance(complete, RunComplete)
    assert complete.to_wire() == {
        "reason": "kill",
        "error_type": "TimeoutError",
        "error_message": "Workflow failed to return within 1000ms",
    }


def test_an_event_before_workflow_start_starts_the_run_first() -> None:
    """A plan that does not compile ends before WorkflowStart; ws-worker has sent run:start
    by then (its engine compiles after starting), so we do too."""
    m = mapper()
    out = list(m.preamble())
    out += m.feed(rt.LogLine("info", "R/T", ["Run complete with status: crash"], str(NOW)))
    out += m.feed(rt.WorkflowComplete("crash", "CompileError", "bad", None, [], str(NOW)))
    assert shape(out) == [
        "run:log:RTE",
        "run:log:RTE",
        "run:start",
        "run:log:RTE",
        "run:log:VER",
        "run:log:R/T",
        "run:complete",
    ]


def test_abort_completes_the_active_step_then_the_run() -> None:
    m = mapper()
    m.feed(rt.WorkflowStart(str(NOW)))
    m.feed(rt.StepStart("s-a", "a", str(NOW)))
    reason = ExitReason(Reason.KILL, "ShutdownError", "The worker shut down")
    out = m.abort(reason)
    assert shape(out) == ["step:complete", "run:log:R/T", "run:log:R/T", "run:complete"]
    aborted = out[0]
    assert isinstance(aborted, StepComplete)
    assert aborted.to_wire() == {
        "step_id": "s-a",
        "job_id": "a",
        "output_dataclip_id": "out-1",
        "output_dataclip": "{}",
        "reason": "kill",
        "error_type": "ShutdownError",
        "error_message": "The worker shut down",
    }
    lines = [m.line.message[0] for m in out if isinstance(m, RunLog)]
    assert lines == ["Run complete with status: kill", "ShutdownError: The worker shut down"]
    assert m.exit == reason


def test_a_failure_before_the_start_sends_no_run_start() -> None:
    m = mapper()
    reason = ExitReason(Reason.EXCEPTION, "CredentialLoadError", "Failed to load credential c")
    out = m.fail(reason)
    assert shape(out) == ["run:log:R/T", "run:log:R/T", "run:complete"]
    assert out[-1].to_wire() == reason.to_wire()


def test_first_inputs_go_to_every_target_of_the_start_trigger() -> None:
    plan = Plan.from_wire(
        {
            "id": "r",
            "dataclip_id": "d",
            "starting_node_id": "t",
            "triggers": [{"id": "t"}],
            "jobs": [{"id": "a", "body": ""}, {"id": "b", "body": ""}, {"id": "x", "body": ""}],
            "edges": [
                {"source_trigger_id": "t", "target_job_id": "a"},
                {"source_trigger_id": "t", "target_job_id": "b"},
                {"source_trigger_id": "t", "target_job_id": "x", "enabled": False},
            ],
        }
    )
    m = mapper(plan)
    inputs = [m.feed(rt.StepStart(f"s-{j}", j, str(NOW)))[-1] for j in ("a", "b", "x")]
    assert [s.input_dataclip_id for s in inputs if isinstance(s, StepStart)] == ["d", "d", None]


def test_log_lines_keep_their_step_and_are_made_acceptable() -> None:
    m = mapper()
    m.feed(rt.WorkflowStart(str(NOW)))
    [log] = m.feed(rt.LogLine("trace", "ADAPTORLOGS", [], str(NOW), "s-a"))
    assert isinstance(log, RunLog)
    assert log.to_wire() == {
        "run_id": "r",
        "message": [""],
        "source": "ADAPTORL",
        "level": "info",
        "timestamp": str(NOW),
        "step_id": "s-a",
    }


def test_webhook_response_is_forwarded_from_the_output_state() -> None:
    m = mapper()
    m.feed(rt.WorkflowStart(str(NOW)))
    output = '{"data":{},"webhookResponse":{"status":202,"body":{"ok":true}}}'
    out = m.feed(step("a", output, [])[2])
    complete = out[-1]
    assert isinstance(complete, StepComplete)
    assert complete.webhook_response == {"status": 202, "body": {"ok": True}}


@pytest.mark.parametrize(
    ("adaptor", "packages", "line"),
    [
        ("common", {"common": "0.1.0"}, "common"),
        ("six@1.16.0", {"six": "1.16.0"}, "six"),
        ("@openfn/language-common@3.3.4", {}, "@openfn/language-common"),
    ],
)
def test_versions_and_banner(adaptor: str, packages: dict[str, str], line: str) -> None:
    """A JavaScript job's adaptor is named at its exact version; a Python job's packages at
    the versions installed for the run (``packages``), never as the job asked."""
    plan = Plan.from_wire({"id": "r", "jobs": [{"id": "a", "body": "", "adaptor": adaptor}]})
    versions = versions_for(plan, packages=packages)
    assert set(versions) >= {"worker", "python"}
    banner = version_banner(versions).splitlines()
    assert banner[0] == "Versions:"
    assert banner[1].startswith("    ▸ python ") and banner[2].startswith("    ▸ worker ")
    assert banner[3].startswith(f"    ▸ {line}")
    assert len({line.index(line.split()[-1]) for line in banner[1:]}) == 1  # one column
