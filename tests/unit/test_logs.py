"""Log capture: print, stderr, logging and adaptor logs as log events (§8), scrubbed."""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from fulmen.runtime import logs
from fulmen.runtime.events import LogLine, StepComplete
from fulmen.runtime.logs import LogSink
from fulmen.scrub import Scrubber

if TYPE_CHECKING:
    from conftest import RunFn

ALL_LEVELS = """
import logging
print("printed")
print("to stderr", file=sys.stderr)
logging.debug("logged debug")
logging.info("logged info")
logging.warning("logged warning")
logging.error("logged error")
""".replace("import logging", "import logging, sys")


def plan(body: str, adaptor: str = "common", **options: Any) -> dict[str, Any]:
    return {
        "jobs": [{"id": "job", "body": body, "adaptor": adaptor, "credential_id": "c"}],
        "options": options,
    }


def job_lines(events: Any) -> list[tuple[str, str]]:
    return [(line.level, " ".join(line.message)) for line in events.logs("JOB")]


def test_print_stderr_and_logging_become_job_lines(run: RunFn) -> None:
    events = run(plan(ALL_LEVELS, job_log_level="debug"))
    assert job_lines(events) == [
        ("info", "printed"),
        ("error", "to stderr"),
        ("debug", "logged debug"),
        ("info", "logged info"),
        ("warn", "logged warning"),
        ("error", "logged error"),
    ]


def test_every_line_of_a_print_is_its_own_event(run: RunFn) -> None:
    events = run("print('one\\ntwo')\nprint('three', 'four', sep='-')\n")
    assert job_lines(events) == [("info", "one"), ("info", "two"), ("info", "three-four")]


def test_a_logged_exception_carries_its_traceback(run: RunFn) -> None:
    body = """
import logging
try:
    1 / 0
except ZeroDivisionError:
    logging.exception("it broke")
"""
    (line,) = events_lines = run(body).logs("JOB")
    assert events_lines
    assert line.level == "error"
    assert line.message[0].startswith("it broke\nTraceback")
    assert "ZeroDivisionError: division by zero" in line.message[0]


def test_adaptor_loggers_are_ada(run: RunFn) -> None:
    body = """
import logging
logging.getLogger("fulmen.adaptors.custom").warning("from an adaptor")
log("via common.log", data_value("x"))
"""
    events = run(body, input={"data": {"x": 42}})
    assert [(line.level, line.message) for line in events.logs("ADA")] == [
        ("warn", ["from an adaptor"]),
        ("info", ["via common.log 42"]),
    ]
    assert events.logs("JOB") == []


def test_runtime_lines_are_rt(run: RunFn) -> None:
    events = run("fn(lambda s: s)")
    messages = events.messages("R/T")
    assert messages[0] == "Starting step job"
    assert messages[1].startswith("Step job finished in ")
    assert messages[1].endswith("ms: success")


def test_a_failed_step_is_logged_as_an_error(run: RunFn) -> None:
    events = run("fn(lambda s: int('x'))")
    last = events.logs("R/T")[-1]
    assert last.level == "error"
    assert last.message[0].endswith("fail: ValueError: invalid literal for int() with base 10: 'x'")


def test_a_partial_line_is_emitted_inside_its_step(run: RunFn) -> None:
    events = run(
        {
            "jobs": [
                {"id": "a", "body": "print('no newline', end='')"},
                {"id": "b", "body": "import sys\nsys.stderr.write('half')"},
            ],
            "edges": [{"source_job_id": "a", "target_job_id": "b"}],
        }
    )
    a, b = events.started
    lines = {line.message[0]: line for line in events.logs("JOB")}
    assert (lines["no newline"].step_id, lines["no newline"].level) == (a.step_id, "info")
    assert (lines["half"].step_id, lines["half"].level) == (b.step_id, "error")
    # ...and before the step completes.
    order = [e for e in events if isinstance(e, LogLine | StepComplete)]
    first_complete = next(i for i, e in enumerate(order) if isinstance(e, StepComplete))
    assert order.index(lines["no newline"]) < first_complete


LEVEL_CASES = {
    # job_log_level: the JOB levels that get through
    "debug": ["debug", "info", "info", "warn", "error", "error"],
    "info": ["info", "info", "warn", "error", "error"],
    "default": ["warn", "error", "error"],
    "none": ["error", "error"],
    "none-really": [],
}


@pytest.mark.parametrize("level", list(LEVEL_CASES))
def test_job_log_level_filters_job_output_only(run: RunFn, level: str) -> None:
    body = ALL_LEVELS + 'logging.getLogger("fulmen.adaptors.http").debug("adaptor debug")\n'
    events = run(plan(body, job_log_level=level))

    assert sorted(line.level for line in events.logs("JOB")) == sorted(LEVEL_CASES[level])
    # Adaptor and runtime lines are not job output: never filtered.
    assert [line.message for line in events.logs("ADA")] == [["adaptor debug"]]
    assert len(events.logs("R/T")) == 2


def test_the_default_level_is_info(run: RunFn) -> None:
    events = run(ALL_LEVELS)
    assert [line.level for line in events.logs("JOB")] == ["info", "error", "info", "warn", "error"]


SECRETS = {
    "username": "service-account",
    "password": "tr0ub4dor&3",
    "access_token": "tok_9f8e7d6c5b4a",
    "pin": 73914,
    "port": 99,
    "realm": "abc",
}


def test_credential_values_are_masked_in_log_text(run: RunFn) -> None:
    body = """
import logging
conf = state_conf = None

@fn
def talk(state):
    conf = state["configuration"]
    print("password is", conf["password"])
    print(conf)
    print(json.dumps(conf))
    logging.warning("token=%s pin=%d", conf["access_token"], conf["pin"])
    logging.getLogger("fulmen.adaptors.x").info("adaptor saw %s", conf["password"])
    print("short values stay:", conf["port"], conf["realm"])
""".replace("import logging", "import logging, json")
    events = run(plan(body), credentials={"c": SECRETS})

    text = events.everything()
    for secret in ("tr0ub4dor&3", "tok_9f8e7d6c5b4a", "73914"):
        assert secret not in text
    messages = events.messages()
    assert "password is ***" in messages
    assert "token=*** pin=***" in messages
    assert "adaptor saw ***" in messages
    assert "short values stay: 99 abc" in messages
    printed_dict = next(m for m in messages if m.startswith("{'username'"))
    assert printed_dict == (
        "{'username': 'service-account', 'password': '***', 'access_token': '***', 'pin': ***, "
        "'port': 99, 'realm': 'abc'}"
    )
    assert (
        '{"username": "service-account", "password": "***", "access_token": "***", "pin": ***, '
        '"port": 99, "realm": "abc"}'
    ) in messages


def test_the_basic_auth_form_of_a_credential_is_masked(run: RunFn) -> None:
    token = base64.b64encode(b"service-account:tr0ub4dor&3").decode()
    body = f"print('Authorization: Basic {token}')"
    events = run(plan(body), credentials={"c": SECRETS})
    assert "Authorization: Basic ***" in events.messages("JOB")
    assert token not in events.everything()


def test_a_log_over_the_payload_limit_is_replaced_by_a_note(run: RunFn) -> None:
    body = "print('x' * 2_000)\nprint('short')\n"
    events = run(plan(body, log_payload_limit_mb=0.001))
    assert events.messages("JOB") == [
        "(Log message redacted: exceeds 0.001mb memory limit)",
        "short",
    ]


def test_a_log_exactly_at_the_limit_passes(run: RunFn) -> None:
    events = run(plan("print('x' * 1_000)", log_payload_limit_mb=0.001))
    assert events.messages("JOB") == ["x" * 1_000]


# -- a secret printed in two parts (issue 13) ------------------------------------------------


def test_a_secret_printed_in_two_parts_is_masked_in_both(run: RunFn) -> None:
    body = """
@fn
def leak(state):
    secret = state["configuration"]["access_token"]
    print("first half:", secret[:7])
    print(secret[7:], "was the second")
    return state
"""
    events = run(plan(body), credentials={"c": SECRETS})
    assert events.messages("JOB") == ["first half: ***", "*** was the second"]
    assert "tok_9f8" not in events.everything() and "e7d6c5b4a" not in events.everything()


def test_a_secret_split_across_print_and_logging_is_masked(run: RunFn) -> None:
    body = """
import logging
@fn
def leak(state):
    secret = state["configuration"]["password"]
    print(secret[:4])
    logging.warning(secret[4:])
    return state
"""
    events = run(plan(body), credentials={"c": SECRETS})
    assert events.messages("JOB") == ["***", "***"]


def test_a_line_held_for_the_next_is_emitted_before_its_step_completes(run: RunFn) -> None:
    body = """
@fn
def tease(state):
    print("ends like a secret begins: tr0u")
    return state
"""
    events = run(plan(body), credentials={"c": SECRETS})
    assert "ends like a secret begins: tr0u" in events.messages("JOB")
    held = next(i for i, e in enumerate(events) if isinstance(e, LogLine) and e.source == "JOB")
    completed = next(i for i, e in enumerate(events) if isinstance(e, StepComplete))
    assert held < completed
    assert events.logs("JOB")[0].step_id == events.steps[0].step_id


def test_lines_of_two_steps_are_not_joined() -> None:
    emitted: list[LogLine] = []
    sink = LogSink(emitted.append, Scrubber([{"token": "hunter22-token"}]))
    sink.step_id = "one"
    sink.log("info", "JOB", "a hunter")
    sink.step_id = "two"
    sink.log("info", "JOB", "22-token b")
    sink.flush()
    assert [(line.step_id, line.message) for line in emitted] == [
        ("one", ["a hunter"]),
        ("two", ["22-token b"]),
    ]


def test_only_a_line_that_may_begin_a_secret_waits() -> None:
    emitted: list[LogLine] = []
    sink = LogSink(emitted.append, Scrubber([{"token": "hunter22-token"}]))
    sink.log("info", "JOB", "plain line")
    assert len(emitted) == 1  # out at once
    sink.log("info", "JOB", "maybe hunter")
    assert len(emitted) == 1  # held: the next line may finish the secret
    sink.log("info", "JOB", "s were here")  # ...it did not, and this one may not begin one
    assert [line.message for line in emitted] == [["plain line"], ["maybe hunter"], ["s were here"]]
    sink.log("info", "JOB", "the end: h")
    assert len(emitted) == 3
    sink.flush()  # the step ends: nothing more can finish it
    assert emitted[-1].message == ["the end: h"]


@pytest.fixture
def unrouted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as a new zygote finds it: streams and logging not routed yet; all of it
    put back afterwards."""
    root = logging.getLogger()
    saved = (sys.stdout, sys.stderr, list(root.handlers), root.level)
    monkeypatch.setattr(logs, "_routing", None)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[2]:
            root.addHandler(handler)
        root.setLevel(saved[3])


def test_routed_streams_pass_through_until_a_run_installs_its_sink(
    unrouted: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The zygote routes its streams and logging once (a warm-up); its own output, and a
    spare's before its run arrives, still reaches where it went, and the run's goes to the
    run's sink alone."""
    logs.route()
    print("from the zygote")
    logging.getLogger("somewhere").warning("a zygote's warning")
    logging.getLogger("somewhere").info("a zygote's info")  # as logging drops it with no handler
    out, err = capsys.readouterr()
    assert out == "from the zygote\n"
    assert "a zygote's warning" in err and "info" not in err

    emitted: list[Any] = []
    logs.install(LogSink(emitted.append, Scrubber([])))
    print("from the run")
    logging.getLogger("somewhere").warning("a run's warning")
    assert capsys.readouterr() == ("", "")
    assert [(e.level, e.message) for e in emitted] == [
        ("info", ["from the run"]),
        ("warn", ["a run's warning"]),
    ]


def test_logging_configured_after_routing_does_not_double_a_runs_lines(
    unrouted: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spare's warm-up imports the run's packages after the zygote routed logging; one that
    calls ``logging.basicConfig`` (a handler writing to stderr, itself routed) must not make
    each record of the run two lines."""
    logs.route()
    logging.basicConfig(level=logging.WARNING)
    emitted: list[Any] = []
    logs.install(LogSink(emitted.append, Scrubber([])))
    logging.getLogger("job").info("once")
    assert [(e.level, e.message) for e in emitted] == [("info", ["once"])]
    assert capsys.readouterr() == ("", "")
