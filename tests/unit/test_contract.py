"""The Lightning contract: recorded payloads decode once and encode back to the same bytes;
bad payloads are refused with the field named; any JSON decodes or raises ContractError."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulmen.contract import (
    JSON,
    MAX_REPORTS,
    WIRE_REASONS,
    ClaimedRun,
    ClaimReply,
    ClaimRequest,
    CredentialReply,
    DataclipReply,
    ErrorReply,
    Event,
    ExitReason,
    FetchCredential,
    FetchDataclip,
    FetchPlan,
    LogLevel,
    LogLine,
    LogReply,
    Mem,
    QueueJoin,
    QueueJoined,
    Reason,
    ReportReply,
    RunBatchLogs,
    RunComplete,
    RunJoin,
    RunJoined,
    RunLog,
    RunReports,
    RunStart,
    StepComplete,
    StepReply,
    StepStart,
    decode_plan_reply,
    decode_run_request,
    format_timestamp,
    parse_timestamp,
    run_id_of,
    run_topic,
)
from fulmen.errors import ContractError, ContractFieldError
from fulmen.phoenix.frames import Message, decode_text, encode_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix"


def recorded(name: str) -> Message:
    return decode_text((FIXTURES / f"{name}.txt").read_text())


def capture() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / "capture.jsonl").read_text().splitlines()]


# -- recorded payloads, byte for byte ---------------------------------------------------------

WORKER_PAYLOADS: list[tuple[str, Any]] = [
    ("w2l-queue-join", QueueJoin),
    ("w2l-claim", ClaimRequest),
    ("w2l-run-join", RunJoin),
    ("w2l-fetch-plan", FetchPlan),
    ("w2l-fetch-dataclip", FetchDataclip),
    ("w2l-run-log-before-start", RunLog),
    ("w2l-run-start", RunStart),
    ("w2l-run-log-versions", RunLog),
    ("w2l-step-start", StepStart),
    ("w2l-run-log-step", RunLog),
    ("w2l-step-complete", StepComplete),
    ("w2l-step-complete-fail", StepComplete),
    ("w2l-run-complete", RunComplete),
    ("w2l-run-complete-fail", RunComplete),
]


@pytest.mark.parametrize(("name", "kind"), WORKER_PAYLOADS, ids=[n for n, _ in WORKER_PAYLOADS])
def test_recorded_worker_payload_round_trips_to_the_same_bytes(name: str, kind: Any) -> None:
    message = recorded(name)
    value = kind.from_wire(message.payload)
    wire = value.to_wire()
    assert wire == message.payload
    again = Message(message.join_ref, message.ref, message.topic, message.event, wire)
    assert encode_text(again) == (FIXTURES / f"{name}.txt").read_text()


def test_recorded_claim_value() -> None:
    claim = ClaimRequest.from_wire(recorded("w2l-claim").payload)
    assert claim == ClaimRequest(demand=1, worker_name=None, queues=("manual", "*"))


def test_recorded_step_complete_value() -> None:
    step = StepComplete.from_wire(recorded("w2l-step-complete").payload)
    assert step == StepComplete(
        step_id="20ffe6c2-4afe-497b-89b4-456888f1a2fb",
        job_id="j1",
        exit=ExitReason(Reason.SUCCESS),
        mem=Mem(job=48336456, system=192937984),
        duration=307,
        thread_id=2,
        timestamp="1795358228306496",
        output_dataclip_id="5deceea9-821f-4942-89ae-4596af553a05",
        output_dataclip='{"data":{"x":42}}',
    )
    failed = StepComplete.from_wire(recorded("w2l-step-complete-fail").payload)
    assert failed.exit == ExitReason(Reason.FAIL, "JobError", "boom")
    assert failed.mem is None  # absent on the wire, and so absent again on encode


def test_every_recorded_run_event_decodes_and_round_trips() -> None:
    seen = set()
    for record in capture():
        if record["dir"] != "W->L" or not record["frame"][2].startswith("run:"):
            continue
        _, _, _, event, payload = record["frame"]
        if event in ("phx_join", "phx_leave"):
            continue
        value = decode_run_request(event, payload)
        assert value.to_wire() == payload
        seen.add(event)
    assert seen == {
        "fetch:plan", "fetch:dataclip", "run:log", "run:start", "step:start", "step:complete",
        "run:complete",
    }  # fmt: skip


def test_recorded_server_replies() -> None:
    claim = recorded("l2w-claim-reply").payload
    assert isinstance(claim, dict)
    assert ClaimReply.from_wire(claim["response"]) == ClaimReply(
        (ClaimedRun("smoke-run-1", "x.y.z"),)
    )
    plan = recorded("l2w-plan-reply").payload
    assert isinstance(plan, dict)
    body = decode_plan_reply(plan["response"])
    assert body["id"] == "wire-3step" and len(body["jobs"]) == 3  # type: ignore[arg-type]


def test_dataclip_reply_from_lightning_bytes_or_from_the_mocks_byte_array() -> None:
    mock = recorded("l2w-dataclip-reply").payload
    assert isinstance(mock, dict)
    from_mock = DataclipReply.from_wire(mock["response"])
    from_lightning = DataclipReply.from_wire(b'{"data":{}}')
    assert from_mock == from_lightning
    assert from_mock.json() == {"data": {}}
    assert from_lightning.to_wire() == b'{"data":{}}'
    with pytest.raises(ContractError) as info:
        DataclipReply(b"\xff").json()
    assert info.value.code == "bad_dataclip"


def test_credential_reply_is_an_object_or_null() -> None:
    assert CredentialReply.from_wire({"user": "u"}).body == {"user": "u"}
    assert CredentialReply.from_wire(None).to_wire() is None
    with pytest.raises(ContractFieldError):
        CredentialReply.from_wire("secret")


def test_lightning_replies() -> None:
    assert StepReply.from_wire({"step_id": "s"}).to_wire() == {"step_id": "s"}
    assert LogReply.from_wire({"log_line_id": "l"}).to_wire() == {"log_line_id": "l"}


# -- what workers send, built from values -------------------------------------------------------


def test_claim_always_carries_worker_name_and_defaults_queues() -> None:
    assert ClaimRequest(1, None).to_wire() == {"demand": 1, "worker_name": None}
    assert ClaimRequest.from_wire({"demand": 2}).queue_preference == ("manual", "*")
    assert ClaimRequest.from_wire({"demand": 1, "worker_name": "pod-1"}).worker_name == "pod-1"


def test_run_complete_on_the_error_path_is_only_the_exit_reason() -> None:
    value = RunComplete(ExitReason(Reason.EXCEPTION, "CredentialLoadError", "Failed to load"))
    assert value.to_wire() == {
        "reason": "exception",
        "error_type": "CredentialLoadError",
        "error_message": "Failed to load",
    }
    assert RunComplete.from_wire(value.to_wire()) == value


def test_oversized_step_output_has_an_error_and_no_dataclip() -> None:
    value = StepComplete(
        "s", "j", ExitReason(Reason.SUCCESS), output_dataclip_error="DATACLIP_TOO_LARGE"
    )
    wire = value.to_wire()
    assert "output_dataclip" not in wire and "output_dataclip_id" not in wire
    assert wire["output_dataclip_error"] == "DATACLIP_TOO_LARGE"
    assert StepComplete.from_wire(wire) == value


def test_batch_logs_hold_log_lines_without_run_id() -> None:
    line = LogLine(("hi", {"n": 1}), "JOB", LogLevel.INFO, "1795358228296163", "s")
    batch = RunBatchLogs("r", (line, line))
    assert batch.to_wire()["logs"] == [line.to_wire()] * 2
    assert "run_id" not in line.to_wire()
    assert RunBatchLogs.from_wire(batch.to_wire()) == batch


def test_vocabularies_match_the_spec() -> None:
    assert {r.value for r in WIRE_REASONS} == {
        "success",
        "fail",
        "crash",
        "kill",
        "exception",
        "cancel",
    }
    assert {level.value for level in LogLevel} == {
        "debug",
        "info",
        "warn",
        "error",
        "success",
        "always",
    }
    assert Event("run:batch_logs") is Event.RUN_BATCH_LOGS


def test_topics() -> None:
    assert run_topic("r-1") == "run:r-1"
    assert run_id_of("run:r-1") == "r-1"
    for topic in ("worker:queue", "run:", "runs:x"):
        with pytest.raises(ContractError) as info:
            run_id_of(topic)
        assert info.value.code == "bad_topic"


def test_timestamps() -> None:
    assert parse_timestamp("1795358228306496") == 1795358228306496
    assert parse_timestamp("1795358228306") == 1795358228306000
    assert format_timestamp(1795358228306496) == "1795358228306496"
    line: dict[str, JSON] = {"run_id": "r", "message": ["x"], "source": "JOB", "level": "info"}
    assert RunLog.from_wire({**line, "timestamp": 1795358228306}).line.timestamp == "1795358228306"
    for bad in ("179535822830649", "1795358228306496x", 1.5, True):
        with pytest.raises(ContractFieldError) as info:
            RunLog.from_wire({**line, "timestamp": bad})
        assert info.value.field == "timestamp"


# -- refusals name the field ---------------------------------------------------------------------

LOG = {"run_id": "r", "message": ["x"], "source": "JOB", "level": "info", "timestamp": "1" * 16}
STEP = {
    "step_id": "s",
    "job_id": "j",
    "reason": "success",
    "error_type": None,
    "error_message": None,
}


@pytest.mark.parametrize(
    ("kind", "payload", "field", "code"),
    [
        (ClaimRequest, {}, "demand", "missing_field"),
        (ClaimRequest, {"demand": "1"}, "demand", "wrong_type"),
        (ClaimRequest, {"demand": True}, "demand", "wrong_type"),
        (ClaimRequest, {"demand": 0}, "demand", "bad_value"),
        (ClaimRequest, {"demand": 1, "queues": ["manual", 1]}, "queues[1]", "wrong_type"),
        (ClaimRequest, {"demand": 1, "worker_name": 7}, "worker_name", "wrong_type"),
        (ClaimReply, {"attempts": []}, "runs", "missing_field"),
        (ClaimReply, {"runs": [{"id": "r"}]}, "runs[0].token", "missing_field"),
        (QueueJoin, {"queues": {"manual>*": "5"}}, "queues.manual>*", "wrong_type"),
        (RunJoin, {"token": 5}, "token", "wrong_type"),
        (RunJoin, "{}", "", "wrong_type"),
        (FetchCredential, {}, "id", "missing_field"),
        (RunLog, {**LOG, "message": []}, "message", "bad_value"),
        (RunLog, {**LOG, "message": "x"}, "message", "wrong_type"),
        (RunLog, {**LOG, "source": "TOOLONGSRC"}, "source", "bad_value"),
        (RunLog, {**LOG, "level": "trace"}, "level", "bad_value"),
        (RunLog, {k: v for k, v in LOG.items() if k != "timestamp"}, "timestamp", "missing_field"),
        (
            RunBatchLogs,
            {"run_id": "r", "logs": [LOG, {**LOG, "level": 1}]},
            "logs[1].level",
            "wrong_type",
        ),
        (StepStart, {"step_id": "s"}, "job_id", "missing_field"),
        (StepComplete, {**STEP, "reason": "ok"}, "reason", "bad_value"),
        (StepComplete, {**STEP, "mem": {"job": "x", "system": 1}}, "mem.job", "wrong_type"),
        (StepComplete, {**STEP, "duration": "5"}, "duration", "wrong_type"),
        (StepComplete, {**STEP, "webhook_response": []}, "webhook_response", "wrong_type"),
        (RunStart, {"versions": {"worker": 1}}, "versions.worker", "wrong_type"),
        (RunStart, {"versions": {"@openfn/x": ["1", 2]}}, "versions.@openfn/x[1]", "wrong_type"),
        (RunComplete, {"reason": "lost"}, "reason", "bad_value"),
        (DataclipReply, "{}", "", "wrong_type"),
        (DataclipReply, [1, 256], "[1]", "bad_value"),
    ],
)
def test_bad_payloads_are_refused_naming_the_field(
    kind: Any, payload: JSON, field: str, code: str
) -> None:
    with pytest.raises(ContractFieldError) as info:
        kind.from_wire(payload)
    assert (info.value.field, info.value.code) == (field, code)
    assert (field or "payload") in info.value.message


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        (ClaimRequest, {}, "demand is missing"),
        (ClaimRequest, {"demand": None}, "demand is missing"),
        (ClaimRequest, {"demand": True}, "demand must be an integer, not bool"),
        (ClaimRequest, {"demand": 0}, "demand must be at least 1"),
        (ClaimRequest, {"demand": 1, "queues": "*"}, "queues must be an array, not str"),
        (ClaimReply, {"runs": [None]}, "runs[0] must be a JSON object, not null"),
        (ClaimReply, {"runs": [{"id": "r"}]}, "runs[0].token is missing"),
        (QueueJoin, {"queues": []}, "queues must be a JSON object, not list"),
        (QueueJoin, {"queues": {"m": True}}, "queues.m must be an integer, not bool"),
        (RunJoin, [], "the payload must be a JSON object, not list"),
        (RunLog, {**LOG, "message": []}, "message must not be empty"),
        (RunLog, {**LOG, "source": "TOOLONGSRC"}, "source must be at most 8 characters"),
        (
            RunLog,
            {**LOG, "level": "trace"},
            "level must be one of debug, info, warn, error, success, always, not 'trace'",
        ),
        (RunLog, {**LOG, "run_id": 1}, "run_id must be a string, not int"),
        (
            RunLog,
            {**LOG, "timestamp": 1.5},
            "timestamp must be a string of 13 (ms) or 16 (µs) digits",
        ),
        (
            RunBatchLogs,
            {"run_id": "r", "logs": [LOG, {**LOG, "timestamp": "1"}]},
            "logs[1].timestamp must be a string of 13 (ms) or 16 (µs) digits",
        ),
        (StepComplete, {**STEP, "duration": "5"}, "duration must be a number, not str"),
        (StepComplete, {**STEP, "mem": {"job": 1}}, "mem.system is missing"),
        (
            StepComplete,
            {**STEP, "reason": "lost"},
            "reason must be one of success, fail, crash, kill, exception, cancel, not 'lost'",
        ),
        (RunStart, {"versions": {"x": None}}, "versions.x must be a string, not null"),
    ],
)
def test_refusals_say_what_is_wrong_in_the_contracts_words(
    kind: Any, payload: JSON, message: str
) -> None:
    with pytest.raises(ContractFieldError) as info:
        kind.from_wire(payload)
    assert info.value.message == message


def test_integer_timestamps_are_milliseconds_wherever_they_are() -> None:
    batch = RunBatchLogs.from_wire({"run_id": "r", "logs": [LOG, {**LOG, "timestamp": 17}]})
    assert [line.timestamp for line in batch.logs] == ["1" * 16, "0000000000017"]
    start = StepStart.from_wire({"step_id": "s", "job_id": "j", "timestamp": 1795358228306})
    assert start.timestamp == "1795358228306"
    with pytest.raises(ContractFieldError) as info:
        StepStart.from_wire({"step_id": "s", "job_id": "j", "timestamp": 10**13})
    assert (info.value.field, info.value.code) == ("timestamp", "bad_value")


def test_a_payload_wrong_in_several_fields_is_refused_for_one_of_them() -> None:
    with pytest.raises(ContractFieldError) as info:
        StepStart.from_wire({"step_id": 1, "job_id": 2})
    assert info.value.field in ("step_id", "job_id")


def test_unknown_run_events_are_refused() -> None:
    with pytest.raises(ContractError) as info:
        decode_run_request("claim", {})
    assert info.value.code == "unknown_event"


# -- error replies -------------------------------------------------------------------------------


def test_error_reply_shapes() -> None:
    assert ErrorReply.because("unauthorized").to_wire() == {"reason": "unauthorized"}
    assert ErrorReply.because("not_found").reason == "not_found"
    wrapped = ErrorReply.fields({"id": "Credential not found!"}, wrapped=True)
    assert wrapped.to_wire() == {"errors": {"id": ["Credential not found!"]}}
    assert wrapped.describe() == "id: Credential not found!"
    changeset = ErrorReply.from_wire({"state": ["already in completed state"]})
    assert changeset.field_errors == {"state": ("already in completed state",)}
    mock = ErrorReply.from_wire("There are no listeners on channel run:x")
    assert mock.describe() == "There are no listeners on channel run:x"
    assert mock.reason is None and mock.field_errors == {}
    assert ErrorReply.from_wire([1]).describe() == "[1]"


def test_error_reply_from_a_refused_payload() -> None:
    with pytest.raises(ContractFieldError) as info:
        StepStart.from_wire({"step_id": "s"})
    assert ErrorReply.from_error(info.value).to_wire() == {"job_id": ["job_id is missing"]}
    assert ErrorReply.from_error(ContractError("nope")).to_wire() == "nope"


# -- properties ------------------------------------------------------------------------------

json_values: st.SearchStrategy[JSON] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["demand", "worker_name", "queues", "runs", "id", "token", "message", "source", "level",
     "timestamp", "step_id", "job_id", "reason", "mem", "logs", "run_id", "versions"]
)  # fmt: skip
near_payloads = st.dictionaries(field_names, json_values, max_size=6)
DECODERS = [
    QueueJoin, ClaimRequest, ClaimReply, RunJoin, FetchPlan, FetchDataclip, FetchCredential,
    CredentialReply, RunStart, StepStart, StepComplete, RunLog, RunBatchLogs, RunComplete,
    StepReply, LogReply, ErrorReply, DataclipReply,
]  # fmt: skip


@given(st.sampled_from(DECODERS), json_values | near_payloads)
def test_any_json_decodes_or_raises_contract_error(kind: Any, payload: JSON) -> None:
    try:
        value = kind.from_wire(payload)
    except ContractError:
        return
    kind.from_wire(value.to_wire())  # what decodes, encodes to something that decodes


@given(st.text(max_size=20), json_values | near_payloads)
def test_any_run_event_decodes_or_raises_contract_error(event: str, payload: JSON) -> None:
    with contextlib.suppress(ContractError):
        decode_run_request(event, payload)


timestamps = st.integers(min_value=10**15, max_value=10**16 - 1).map(str)
log_lines = st.builds(
    LogLine,
    st.lists(json_values, min_size=1, max_size=3).map(tuple),
    st.text(min_size=1, max_size=8),
    st.sampled_from(LogLevel),
    timestamps,
    st.none() | st.text(max_size=8),
)
exits = st.builds(
    ExitReason, st.sampled_from(WIRE_REASONS), st.none() | st.text(), st.none() | st.text()
)


@given(st.text(), log_lines)
def test_log_round_trip(run_id: str, line: LogLine) -> None:
    value = RunLog(run_id, line)
    assert RunLog.from_wire(value.to_wire()) == value


@given(
    st.builds(
        StepComplete,
        step_id=st.text(),
        job_id=st.none() | st.text(),
        exit=exits,
        mem=st.none() | st.builds(Mem, st.integers(), st.integers()),
        duration=st.none() | st.integers(),
        thread_id=st.none() | st.integers(),
        timestamp=st.none() | timestamps,
        output_dataclip_id=st.none() | st.text(),
        output_dataclip=st.none() | st.text(),
        output_dataclip_error=st.none() | st.just("DATACLIP_TOO_LARGE"),
        webhook_response=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=2),
    )
)
def test_step_complete_round_trip(value: StepComplete) -> None:
    assert StepComplete.from_wire(value.to_wire()) == value


@given(st.integers(min_value=1), st.none() | st.text(), st.none() | st.lists(st.text()).map(tuple))
def test_claim_round_trip(
    demand: int, worker_name: str | None, queues: tuple[str, ...] | None
) -> None:
    value = ClaimRequest(demand, worker_name, queues)
    assert ClaimRequest.from_wire(value.to_wire()) == value


def test_the_queue_join_reply_says_what_a_fulmen_coordinator_accepts() -> None:
    joined = QueueJoined(accepts=frozenset({"run:batch_logs"}))
    assert joined.to_wire() == {"accepts": ["run:batch_logs"]}
    assert QueueJoined.from_wire(joined.to_wire()) == joined
    assert QueueJoined().to_wire() == {}  # what Lightning sends


@pytest.mark.parametrize("reply", [{}, None, "{}", {"accepts": "run:batch_logs"}, []])
def test_a_join_reply_without_a_list_of_accepts_offers_nothing(reply: JSON) -> None:
    assert QueueJoined.from_wire(reply).accepts == frozenset()


@given(
    st.lists(
        st.one_of(
            st.builds(lambda line: (Event.RUN_BATCH_LOGS, RunBatchLogs("r", (line,))), log_lines),
            st.builds(lambda s, t: (Event.STEP_START, StepStart(s, "j", t)), st.text(), timestamps),
            st.builds(lambda e: (Event.RUN_COMPLETE, RunComplete(e)), exits),
        ),
        min_size=1,
        max_size=MAX_REPORTS,
    )
)
def test_reports_round_trip(reports: list[tuple[Event, Any]]) -> None:
    value = RunReports(tuple(reports))
    assert RunReports.from_wire(value.to_wire()) == value


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"replies": [{"status": "ok", "response": {}}, {"status": "error"}]}, [True, False]),
        ({"replies": [{"status": "ok"}]}, [True, False]),  # too few: the rest refused
        ({"replies": "no"}, [False, False]),
        (None, [False, False]),
        ({"replies": [1, {"status": "ok"}, {"status": "ok"}]}, [False, True]),
    ],
)
def test_the_replies_to_reports_are_read_leniently(reply: JSON, expected: list[bool]) -> None:
    assert [r.ok for r in ReportReply.many_from_wire(reply, 2)] == expected


def test_a_run_join_asks_for_fetches_only_when_told() -> None:
    assert RunJoin("t").to_wire() == {"token": "t"}  # what ws-worker sends, byte for byte
    asking = RunJoin("t", ("plan", "dataclip"))
    assert asking.to_wire() == {"token": "t", "fetch": ["plan", "dataclip"]}
    assert RunJoin.from_wire(asking.to_wire()) == asking


@pytest.mark.parametrize(
    ("answer", "plan", "has_dataclip", "dataclip"),
    [
        ({}, None, False, None),  # Lightning's answer: fetch everything
        (None, None, False, None),
        ({"plan": {"id": "r"}, "dataclip": {"data": 1}}, {"id": "r"}, True, {"data": 1}),
        ({"plan": "not a plan", "dataclip": None}, None, True, None),  # wiped input: null
    ],
)
def test_a_join_answer_is_read_leniently(
    answer: JSON, plan: JSON, has_dataclip: bool, dataclip: JSON
) -> None:
    joined = RunJoined.from_wire(answer)
    assert (joined.plan, joined.has_dataclip, joined.dataclip) == (plan, has_dataclip, dataclip)
