"""Running whole workflows: state, order, edges, errors and exit reasons (§6.4, §7.1)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from fulmen.runtime.events import (
    LogLine,
    StepComplete,
    StepStart,
    WorkflowComplete,
    WorkflowStart,
)

if TYPE_CHECKING:
    from conftest import Events, RunFn

NOOP = "fn(lambda s: s)"


def job(job_id: str, body: str = NOOP, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "body": body, "adaptor": "common", **extra}


def edge(source: str, target: str, condition: str | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"source_job_id": source, "target_job_id": target, **extra}
    if condition is not None:
        doc["condition"] = condition
    return doc


def workflow(
    *jobs: dict[str, Any], edges: list[dict[str, Any]] | None = None, **options: Any
) -> dict[str, Any]:
    return {"id": "run-1", "jobs": list(jobs), "edges": edges or [], "options": options}


def set_data(**values: Any) -> str:
    return f"fn(lambda s: {{**s, 'data': {values!r}}})"


def assert_crash(events: Events, error_type: str, message: str | None = None) -> None:
    complete = events.complete
    assert (complete.reason, complete.error_type) == ("crash", error_type), complete
    if message is not None:
        assert re.search(message, complete.error_message or ""), complete.error_message
    assert complete.final_state is None


# -- state through one job ------------------------------------------------------------------


def test_state_threads_through_operations_in_order(run: RunFn) -> None:
    events = run(
        """
fn(lambda s: {**s, "data": {"n": s["data"]["n"] + 1}})
fn(lambda s: {**s, "data": {"n": s["data"]["n"] * 10}})

@fn
def last(state):
    state["data"]["n"] += 3
    return state
""",
        input={"data": {"n": 1}},
    )
    assert events.complete.reason == "success"
    assert events.final_state == {"data": {"n": 23}}


def test_async_operations_are_awaited(run: RunFn) -> None:
    events = run(
        """
import asyncio

@fn
async def first(state):
    await asyncio.sleep(0)
    return {**state, "data": {"steps": ["async"]}}

async def helper(state):
    state["data"]["steps"].append("async lambda")
    return state

fn(lambda s: helper(s))
"""
    )
    assert events.final_state == {"data": {"steps": ["async", "async lambda"]}}


def test_plain_operations_run_without_an_event_loop(run: RunFn) -> None:
    """A job that names neither asyncio nor anyio and whose operations are plain functions
    makes no event loop at all: it would cost more than the step (``Engine._run_operation``).
    """
    events = run(
        """
import sys

fn(lambda s: {**s, "data": {"loop": sys.modules["asyncio"]._get_running_loop() is not None}})
"""
    )
    assert events.final_state == {"data": {"loop": False}}


@pytest.mark.parametrize(
    "call",
    [
        "asyncio.ensure_future(same(s))",
        "asyncio.get_event_loop().create_task(same(s))",
        "asyncio.get_event_loop().run_in_executor(None, lambda: s)",
        "asyncio.get_running_loop().run_in_executor(None, lambda: s)",
    ],
)
def test_a_plain_function_of_a_job_naming_asyncio_runs_in_the_loop(run: RunFn, call: str) -> None:
    events = run(
        f"""
import asyncio

async def same(state):
    return state

fn(lambda s: {call})
fn(lambda s: {{**s, "data": {{"loop": asyncio.get_running_loop() is not None}}}})
"""
    )
    assert events.complete.reason == "success", events.complete
    assert events.final_state == {"data": {"loop": True}}


def test_async_operations_of_a_run_share_one_loop(run: RunFn) -> None:
    body = """
import asyncio

@fn
async def mark(state):
    loops = state["data"].get("loops", [])
    return {**state, "data": {"loops": [*loops, id(asyncio.get_running_loop())]}}

fn(lambda s: s)

@fn
async def again(state):
    state["data"]["loops"].append(id(asyncio.get_running_loop()))
    return state
"""
    events = run(workflow(job("a", body), job("b", body), edges=[edge("a", "b")]))

    assert events.complete.reason == "success"
    loops = events.final_state["data"]["loops"]
    assert len(loops) == 4 and len(set(loops)) == 1


def test_an_operation_returning_none_keeps_the_state(run: RunFn) -> None:
    events = run(
        """
@fn
def mutate(state):
    state["data"]["touched"] = True

fn(lambda s: None)
""",
        input={"data": {"x": 1}},
    )
    assert events.complete.reason == "success"
    assert events.final_state == {"data": {"x": 1, "touched": True}}


@pytest.mark.parametrize("returned", ["3", "[1]", "'state'", "(1, 2)"])
def test_returning_a_non_dict_fails_the_step_with_type_error(run: RunFn, returned: str) -> None:
    events = run(f"fn(lambda s: {returned})")

    step = events.step("job")
    assert (step.reason, step.error_type) == ("fail", "TypeError")
    assert "must return the state dict" in (step.error_message or "")
    assert events.complete.reason == "fail"


def test_input_is_assembled_with_data_and_without_configuration(run: RunFn) -> None:
    events = run(NOOP, input={"references": [1], "data": [1, 2], "other": "kept"})
    assert events.final_state == {"references": [1], "data": [1, 2], "other": "kept"}

    events = run(NOOP)
    assert events.final_state == {"data": {}}


# -- order and leaves -------------------------------------------------------------------------


def trail(name: str) -> str:
    return f"fn(lambda s: {{**s, 'data': {{'trail': [*s['data'].get('trail', []), {name!r}]}}}})"


def test_steps_run_breadth_first(run: RunFn) -> None:
    # a -> b -> d, a -> c -> e: breadth-first is a, b, c, d, e (depth-first would be a, b, d, ...)
    events = run(
        workflow(
            *(job(n, trail(n)) for n in "abcde"),
            edges=[edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "e")],
        )
    )
    assert events.ran == ["a", "b", "c", "d", "e"]
    assert events.final_state == {
        "d": {"data": {"trail": ["a", "b", "d"]}},
        "e": {"data": {"trail": ["a", "c", "e"]}},
    }


def test_a_trigger_passes_its_input_to_the_jobs_it_chooses(run: RunFn) -> None:
    plan = {
        "triggers": [{"id": "t"}],
        "jobs": [job("a", trail("a")), job("b", trail("b")), job("c", trail("c"))],
        "edges": [
            {"source_trigger_id": "t", "target_job_id": "a"},
            {"source_trigger_id": "t", "target_job_id": "b", "condition": "state.data.go"},
            {"source_trigger_id": "t", "target_job_id": "c", "condition": "not state.data.go"},
        ],
    }
    events = run(plan, input={"data": {"go": True, "trail": ["input"]}})

    assert events.ran == ["a", "b"]
    assert events.final_state == {
        "a": {"data": {"trail": ["input", "a"]}},
        "b": {"data": {"trail": ["input", "b"]}},
    }


def test_a_node_reached_twice_runs_twice_with_numbered_leaf_keys(run: RunFn) -> None:
    events = run(
        workflow(
            *(job(n, trail(n)) for n in "abcd"),
            edges=[edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")],
        )
    )
    assert events.ran == ["a", "b", "c", "d", "d"]
    assert events.final_state == {
        "d": {"data": {"trail": ["a", "b", "d"]}},
        "d-1": {"data": {"trail": ["a", "c", "d"]}},
    }
    d_steps = [s.step_id for s in events.steps if s.job_id == "d"]
    assert events.complete.leaves == d_steps


def test_a_single_leaf_is_the_final_state(run: RunFn) -> None:
    events = run(workflow(job("a", set_data(x=1)), job("b"), edges=[edge("a", "b")]))
    assert events.complete.final_state == events.step("b").output
    assert events.final_state == {"data": {"x": 1}}
    assert events.complete.leaves == [events.step("b").step_id]


def test_a_single_empty_leaf_is_kept(run: RunFn) -> None:
    events = run(workflow(job("a")))
    assert events.complete.final_state == '{"data":{}}'


def test_empty_leaves_are_dropped_from_a_multi_leaf_final_state(run: RunFn) -> None:
    events = run(
        workflow(
            job("a"),
            job("empty", "fn(lambda s: {})"),
            job("empty_data", "fn(lambda s: {'data': {}})"),
            job("full", set_data(x=1)),
            job("other_key", "fn(lambda s: {'data': {}, 'references': []})"),
            edges=[edge("a", t) for t in ("empty", "empty_data", "full", "other_key")],
        )
    )
    assert len(events.complete.leaves) == 4
    assert events.final_state == {
        "full": {"data": {"x": 1}},
        "other_key": {"data": {}, "references": []},
    }


# -- edges ------------------------------------------------------------------------------------


FAILING = "@fn\ndef boom(state):\n    raise ValueError('bad input')\n"


@pytest.mark.parametrize(
    ("upstream_body", "condition", "followed"),
    [
        (NOOP, "always", True),
        (FAILING, "always", True),
        (NOOP, None, True),
        (NOOP, "on_job_success", True),
        (FAILING, "on_job_success", False),
        (NOOP, "on_job_failure", False),
        (FAILING, "on_job_failure", True),
        (set_data(x=2), "state.data.x > 1", True),
        (set_data(x=1), "state.data.x > 1", False),
        (set_data(x=2), 'state["data"]["x"] == 2', True),
        (set_data(x=1), 'state["data"]["x"] == 2', False),
        (NOOP, "true", True),
        (NOOP, "false", False),
        (NOOP, "state.data.missing == null", True),
        (set_data(x=1), "state.data.x == null", False),
    ],
)
def test_edge_conditions(
    run: RunFn, upstream_body: str, condition: str | None, followed: bool
) -> None:
    events = run(workflow(job("a", upstream_body), job("b"), edges=[edge("a", "b", condition)]))
    assert events.ran == (["a", "b"] if followed else ["a"])
    assert events.step("a").next == (["b"] if followed else [])


def test_a_condition_sees_the_output_without_configuration(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", credential={"password": "s3cret-pw"}),
            job("b"),
            edges=[edge("a", "b", "state.configuration == null")],
        )
    )
    assert events.ran == ["a", "b"]


def test_disabled_edges_are_never_followed(run: RunFn) -> None:
    events = run(
        workflow(
            job("a"),
            job("b"),
            job("c"),
            edges=[
                edge("a", "b", "always", enabled=False),
                # Not even compiled: a disabled edge's broken condition cannot crash the run.
                edge("a", "c", "state.data.x >", enabled=False),
            ],
        )
    )
    assert events.complete.reason == "success"
    assert events.ran == ["a"]
    assert events.step("a").next == []


def test_a_disabled_trigger_edge_is_not_followed(run: RunFn) -> None:
    plan = {
        "triggers": [{"id": "t"}],
        "jobs": [job("a"), job("b")],
        "edges": [
            {"source_trigger_id": "t", "target_job_id": "a", "enabled": False},
            {"source_trigger_id": "t", "target_job_id": "b"},
        ],
    }
    assert run(plan).ran == ["b"]


def test_a_condition_that_raises_crashes_the_run(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", set_data(x="text")),
            job("b"),
            job("c"),
            edges=[edge("a", "b", "state.data.x > 1"), edge("a", "c")],
        )
    )
    assert_crash(events, "EdgeConditionError", r"raised TypeError")
    assert events.ran == ["a"]
    step = events.step("a")
    assert (step.reason, step.error_type) == ("crash", "EdgeConditionError")


def test_a_trigger_condition_that_raises_crashes_the_run(run: RunFn) -> None:
    plan = {
        "triggers": [{"id": "t"}],
        "jobs": [job("a")],
        "edges": [{"source_trigger_id": "t", "target_job_id": "a", "condition": "1 / 0 > 1"}],
    }
    events = run(plan)
    assert_crash(events, "EdgeConditionError", "ZeroDivisionError")
    assert events.ran == []


def test_a_condition_that_does_not_compile_crashes_before_any_step(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", "print('ran')"),
            job("b"),
            edges=[edge("a", "b", "state.data.x > 1 && true")],
        )
    )
    assert_crash(events, "EdgeConditionError", r"edge a->b: .* is not a Python expression")
    assert events.started == []
    assert "ran" not in events.messages()


def test_edges_with_the_same_id_keep_their_own_conditions(run: RunFn) -> None:
    events = run(
        workflow(
            job("a"),
            job("b"),
            job("c"),
            edges=[edge("a", "b", "on_job_success", id="e"), edge("a", "c", "false", id="e")],
        )
    )
    assert events.ran == ["a", "b"]


# -- failures, crashes and exit reasons -------------------------------------------------------


def test_a_failed_step_records_its_error_and_the_failure_path_runs(run: RunFn) -> None:
    body = """
fn(lambda s: {**s, "data": {"before": True}})

@fn
def boom(state):
    raise ValueError("bad input")

fn(lambda s: {**s, "data": {"never": True}})
"""
    events = run(
        workflow(
            job("a", body),
            job("on_fail", "fn(lambda s: {**s, 'data': {**s['data'], 'handled': True}})"),
            job("on_ok"),
            edges=[edge("a", "on_fail", "on_job_failure"), edge("a", "on_ok", "on_job_success")],
        )
    )
    failed = events.step("a")
    assert (failed.reason, failed.error_type, failed.error_message) == (
        "fail",
        "ValueError",
        "bad input",
    )
    error = {"a": {"name": "ValueError", "message": "bad input"}}
    # The output is the state as it stood when the error happened.
    assert events.output("a") == {"data": {"before": True}, "errors": error}
    assert failed.next == ["on_fail"]
    assert events.ran == ["a", "on_fail"]
    assert events.output("on_fail") == {"data": {"before": True, "handled": True}, "errors": error}
    # Handled downstream: the run succeeds.
    assert events.complete.exit.to_wire() == {
        "reason": "success",
        "error_type": None,
        "error_message": None,
    }


def test_errors_of_earlier_jobs_are_kept(run: RunFn) -> None:
    raise_key = "fn(lambda s: {}['missing'])"
    events = run(
        workflow(
            job("a", raise_key),
            job("b", raise_key),
            edges=[edge("a", "b", "on_job_failure")],
        )
    )
    assert events.output("b")["errors"] == {
        "a": {"name": "KeyError", "message": "'missing'"},
        "b": {"name": "KeyError", "message": "'missing'"},
    }


def test_a_failed_leaf_fails_the_run_with_its_error(run: RunFn) -> None:
    events = run(
        workflow(
            job("a"),
            job("ok"),
            job("bad", "fn(lambda s: int('x'))"),
            edges=[edge("a", "ok"), edge("a", "bad")],
        )
    )
    assert events.complete.exit.to_wire() == {
        "reason": "fail",
        "error_type": "ValueError",
        "error_message": "invalid literal for int() with base 10: 'x'",
    }
    assert events.final_state["bad"]["errors"]["bad"]["name"] == "ValueError"


def test_a_name_error_at_run_time_crashes_the_run(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", "fn(lambda s: no_such_name)"),
            job("b"),
            edges=[edge("a", "b", "on_job_failure")],
        )
    )
    assert_crash(events, "NameError", "name 'no_such_name' is not defined")
    assert events.ran == ["a"]
    assert events.step("a").reason == "crash"


def test_an_import_error_at_run_time_crashes_the_run(run: RunFn) -> None:
    events = run("@fn\ndef f(state):\n    import no_such_module_here\n")
    assert_crash(events, "ModuleNotFoundError", "no_such_module_here")


def test_sys_exit_in_a_job_crashes_the_run(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", "import sys\n\n@fn\ndef leave(state):\n    sys.exit(3)\n"),
            job("b"),
            edges=[edge("a", "b")],
        )
    )
    assert_crash(events, "ExitError", "3")
    assert events.ran == ["a"]


def test_an_unknown_adaptor_crashes_before_any_step(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", "print('ran')"),
            job("b", adaptor="nothing_like_this@1.0.0"),
            edges=[edge("a", "b")],
        )
    )
    assert_crash(events, "AdaptorError", "nothing_like_this")
    assert events.started == []


def test_a_javascript_job_where_node_is_not_given_crashes_before_any_step(run: RunFn) -> None:
    """As on a worker whose host has no Node.js: never run as Python, never half the run."""
    events = run(
        workflow(
            job("a", "print('ran')"),
            job("b", "log('hello');", adaptor="@openfn/language-common@3.3.4"),
            edges=[edge("a", "b")],
        )
    )
    assert_crash(events, "LanguageError", "does not run JavaScript jobs")
    assert events.started == []


def test_a_syntax_error_in_a_later_job_crashes_before_the_first_runs(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", "print('ran')"),
            job("b", "fn(lambda s: s)\nfn(lambda s:\n"),
            edges=[edge("a", "b")],
        )
    )
    assert_crash(events, "CompileError", "SyntaxError at line 2")
    assert events.started == []
    assert "ran" not in events.messages()


def test_a_top_level_name_error_crashes_and_the_log_names_the_line(run: RunFn) -> None:
    events = run("fn(lambda s: s)\nprint('built')\nmissing_helper()\n")
    assert_crash(events, "NameError", r"^name 'missing_helper' is not defined")
    step = events.step("job")
    assert (step.reason, step.error_type) == ("crash", "NameError")
    assert (
        "Traceback (the job's code):\n  line 3, at top level\n    missing_helper()\n"
        "NameError: name 'missing_helper' is not defined"
    ) in events.messages("R/T")


def test_a_runtime_error_shows_the_job_s_own_lines_and_nothing_of_fulmen_s(run: RunFn) -> None:
    body = (
        "def pick(items, key):\n"
        "    return items[key]\n"
        "\n"
        "@fn\n"
        "def count(state):\n"
        "    return {'n': pick(state['data'], 'b')}\n"
    )
    events = run(body, input={"data": {"a": 1}})
    step = events.step("job")
    assert (step.reason, step.error_type, step.error_message) == ("fail", "KeyError", "'b'")
    (where,) = [m for m in events.messages("R/T") if m.startswith("Traceback")]
    assert where == (
        "Traceback (the job's code):\n"
        "  line 6, in count\n"
        "    return {'n': pick(state['data'], 'b')}\n"
        "  line 2, in pick\n"
        "    return items[key]\n"
        "KeyError: 'b'"
    )
    assert "fulmen" not in where and ".py" not in where


def test_a_lambda_called_by_an_adaptor_is_traced_to_its_line_without_the_adaptor(
    run: RunFn,
) -> None:
    body = "fn(lambda s: s)\neach('$.data.items[*]', fn(lambda s: 1 / 0))\n"
    events = run(body, input={"data": {"items": [1]}})
    assert events.step("job").error_type == "ZeroDivisionError"
    (where,) = [m for m in events.messages("R/T") if m.startswith("Traceback")]
    assert where == (
        "Traceback (the job's code):\n  line 2, in <lambda>\n"
        "    each('$.data.items[*]', fn(lambda s: 1 / 0))\nZeroDivisionError: division by zero"
    )


def test_an_error_raised_by_an_adaptor_alone_has_no_job_traceback(run: RunFn) -> None:
    events = run("each('not a path ((', fn(lambda s: s))\n", input={"data": {}})
    assert events.step("job").reason == "fail"
    assert not [m for m in events.messages("R/T") if m.startswith("Traceback")]


def test_an_invalid_plan_crashes_with_validation_error(run: RunFn) -> None:
    events = run(workflow(job("a"), job("b"), edges=[edge("a", "b"), edge("b", "a")]))
    assert_crash(events, "ValidationError", "cycle: a -> b -> a")
    assert events.started == []

    events = run({"jobs": [{"body": "x"}]})
    assert_crash(events, "ValidationError", r"jobs\[0\]\.id: is required")


def test_a_malformed_payload_crashes_with_validation_error(run: RunFn) -> None:
    events = run(NOOP, input=None, credentials=None)
    assert events.complete.reason == "success"
    assert_crash(run({"jobs": "nope"}), "ValidationError", "jobs: must be a list")


# -- default state and credentials ------------------------------------------------------------


def test_job_default_state_is_merged_under_the_input(run: RunFn) -> None:
    default = {"data": {"a": 1, "b": 1}, "references": ["default"], "extra": "default"}
    events = run(
        workflow(job("a", state=default)),
        input={"data": {"b": 2, "c": 2}, "references": ["input"]},
    )
    assert events.final_state == {
        "data": {"a": 1, "b": 2, "c": 2},
        "references": ["input"],
        "extra": "default",
    }


def test_default_data_is_replaced_when_the_input_data_is_not_an_object(run: RunFn) -> None:
    events = run(workflow(job("a", state={"data": {"a": 1}})), input={"data": [1]})
    assert events.final_state == {"data": [1]}
    events = run(workflow(job("a", state={"data": {"a": 1}})))
    assert events.final_state == {"data": {"a": 1}}


CREDENTIAL = {"username": "admin-user", "password": "correct-horse-battery", "pin": 987654}


def test_a_credential_is_the_configuration_and_is_stripped_from_every_output(
    run: RunFn,
) -> None:
    body = """
@fn
def use(state):
    conf = state["configuration"]
    state["data"] = {"user_len": len(conf["username"]), "copy": conf["password"]}
    state["response"] = {"status": 200}
    return state
"""
    events = run(
        workflow(job("a", body, credential_id="c-1"), job("b"), edges=[edge("a", "b")]),
        input={"configuration": {"base_url": "http://example.test", "username": "other"}},
        credentials={"c-1": CREDENTIAL},
    )
    assert events.complete.reason == "success"
    for step in events.steps:
        output = json.loads(step.output)
        assert "configuration" not in output
        assert "response" not in output
    assert events.output("a")["data"] == {"user_len": 10, "copy": "***"}
    assert "correct-horse-battery" not in events.everything()


def test_the_credential_wins_over_input_configuration(run: RunFn) -> None:
    body = "fn(lambda s: {**s, 'data': dict(s['configuration'])})"
    events = run(
        workflow(job("a", body, credential_id="c-1")),
        input={"configuration": {"base_url": "http://in.test", "username": "in-user"}},
        credentials={"c-1": {"username": "cred-user"}},
    )
    assert events.final_state["data"] == {"base_url": "http://in.test", "username": "cred-user"}


def test_an_inline_credential_is_used_and_masked(run: RunFn) -> None:
    body = "fn(lambda s: {**s, 'data': {'token': s['configuration']['token']}})"
    events = run(workflow(job("a", body, credential={"token": "tok-123456"})))
    assert events.final_state == {"data": {"token": "***"}}


def test_a_missing_credential_leaves_configuration_empty(run: RunFn) -> None:
    body = "fn(lambda s: {**s, 'data': {'conf': s['configuration']}})"
    events = run(workflow(job("a", body, credential_id="c-404")), credentials={"c-1": CREDENTIAL})
    assert events.final_state == {"data": {"conf": {}}}


def test_a_credential_in_an_error_message_is_masked(run: RunFn) -> None:
    body = "@fn\ndef f(state):\n    raise ValueError('no ' + state['configuration']['password'])\n"
    events = run(workflow(job("a", body, credential_id="c-1")), credentials={"c-1": CREDENTIAL})
    assert events.step("a").error_message == "no ***"
    assert events.complete.error_message == "no ***"
    assert "correct-horse-battery" not in events.everything()


# -- limits and serialisation -----------------------------------------------------------------


def test_state_over_a_quarter_of_the_memory_limit_is_killed(run: RunFn) -> None:
    big = "fn(lambda s: {**s, 'data': {'blob': 'x' * 300_000}})"
    events = run(workflow(job("a", big), job("b"), edges=[edge("a", "b")], run_memory_limit_mb=1))
    assert events.complete.exit.to_wire() == {
        "reason": "kill",
        "error_type": "StateTooLargeError",
        "error_message": "State exceeds the limit of 0.25mb",
    }
    assert events.step("a").output == "{}"
    assert events.ran == ["a"]


def test_state_under_the_limit_passes(run: RunFn) -> None:
    fits = "fn(lambda s: {**s, 'data': {'blob': 'x' * 200_000}})"
    events = run(workflow(job("a", fits), run_memory_limit_mb=1))
    assert events.complete.reason == "success"


def test_non_json_values_are_converted(run: RunFn) -> None:
    body = """
import datetime, decimal, uuid

@fn
def odd(state):
    state["data"] = {
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2026, 1, 2),
        "time": datetime.time(3, 4),
        "bytes": b"\\x00\\xffA",
        "set": {7},
        "frozen": frozenset(),
        "tuple": (1, 2),
        "whole": decimal.Decimal("12"),
        "fraction": decimal.Decimal("1.5"),
        "id": uuid.UUID(int=1),
        "other": object.__new__(type("Thing", (), {"__repr__": lambda self: "<thing>"})),
    }
    return state
"""
    events = run(body)
    assert events.complete.reason == "success"
    assert events.final_state["data"] == {
        "when": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "time": "03:04:00",
        "bytes": [0, 255, 65],
        "set": [7],
        "frozen": [],
        "tuple": [1, 2],
        "whole": 12,
        "fraction": 1.5,
        "id": "00000000-0000-0000-0000-000000000001",
        "other": "<thing>",
    }


@pytest.mark.parametrize(
    "body",
    [
        "@fn\ndef f(state):\n    state['data']['me'] = state['data']\n",
        "fn(lambda s: {**s, 'data': {(1, 2): 'tuple key'}})",
    ],
    ids=["circular", "tuple-key"],
)
def test_state_that_cannot_be_serialised_ends_the_run_cleanly(run: RunFn, body: str) -> None:
    events = run(body)
    assert events.complete.reason != "success"
    assert events.step("job").reason == events.complete.reason
    assert events.step("job").output == "{}"


# -- events -----------------------------------------------------------------------------------


def test_event_order(run: RunFn) -> None:
    events = run(
        workflow(
            job("a", "print('from a')"),
            job("b", "print('from b')"),
            edges=[edge("a", "b")],
        )
    )
    kinds = [type(e) for e in events]
    assert kinds[0] is WorkflowStart
    assert kinds[-1] is WorkflowComplete
    steps: list[list[Any]] = []
    for event in events[1:-1]:
        if isinstance(event, StepStart):
            steps.append([event])
        else:
            assert steps, f"{event} came before any step started"
            steps[-1].append(event)
    assert [s[0].job_id for s in steps] == ["a", "b"]
    for step in steps:
        start, *logs, complete = step
        assert isinstance(complete, StepComplete)
        assert complete.step_id == start.step_id
        assert logs and all(isinstance(line, LogLine) for line in logs)
        assert {line.step_id for line in logs} == {start.step_id}
    assert [line.message for line in steps[0][1:-1] if line.source == "JOB"] == [["from a"]]


def test_step_complete_lists_followed_targets(run: RunFn) -> None:
    events = run(
        workflow(
            job("a"),
            job("b"),
            job("c"),
            job("d"),
            edges=[edge("a", "b"), edge("a", "c", "on_job_failure"), edge("a", "d")],
        )
    )
    assert events.step("a").next == ["b", "d"]
    assert events.step("b").next == []


def test_step_ids_are_unique_and_complete_carries_figures(run: RunFn) -> None:
    events = run(workflow(job("a"), job("b"), edges=[edge("a", "b")]))
    ids = [s.step_id for s in events.started]
    assert len(set(ids)) == 2
    for step in events.steps:
        assert step.duration_ms is not None and step.duration_ms >= 0
        assert step.mem_bytes is not None and step.mem_bytes > 0


def test_every_event_has_a_sixteen_digit_microsecond_timestamp(run: RunFn) -> None:
    events = run(workflow(job("a", "print('x')"), job("b"), edges=[edge("a", "b")]))
    stamps = [e.timestamp for e in events]
    assert len(stamps) >= 8
    for stamp in stamps:
        assert isinstance(stamp, str) and re.fullmatch(r"\d{16}", stamp), stamp
    assert stamps == sorted(stamps)
