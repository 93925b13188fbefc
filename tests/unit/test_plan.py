"""The plan: decoding Lightning's plan document, validating it, and writing it back."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest

from fulmen.errors import ContractError, PlanError
from fulmen.plan import (
    Edge,
    Job,
    Options,
    Plan,
    Trigger,
    language_mask,
    language_of,
    languages_in,
    runnable_masks,
    validate,
)

#: worker-protocol.md §6.1, verbatim.
SPEC_EXAMPLE = json.loads(
    """
{"id":"r-1","dataclip_id":"d-1","starting_node_id":"t-1","project_id":"p-1",
 "triggers":[{"id":"t-1"}],
 "jobs":[{"id":"j-1","name":"fetch","adaptor":"@openfn/language-http@6.5.1","credential_id":"c-1","body":"get('/x')"},
         {"id":"j-2","name":"on error","adaptor":"@openfn/language-common@2.1.1","credential_id":null,"body":"fn(s => s)"}],
 "edges":[{"id":"e-1","source_trigger_id":"t-1","target_job_id":"j-1","condition":"always","enabled":true},
          {"id":"e-2","source_job_id":"j-1","target_job_id":"j-2","condition":"on_job_failure","enabled":true}],
 "options":{"run_timeout_ms":300000,"output_dataclips":true}}
"""  # noqa: E501
)


def test_spec_example_decodes_to_typed_values() -> None:
    plan = Plan.from_wire(SPEC_EXAMPLE)

    assert plan.id == "r-1"
    assert plan.dataclip_id == "d-1"
    assert plan.project_id == "p-1"
    assert plan.start == "t-1"
    assert plan.triggers == (Trigger("t-1"),)
    assert plan.jobs == (
        Job(
            id="j-1",
            name="fetch",
            adaptor="@openfn/language-http@6.5.1",
            credential_id="c-1",
            body="get('/x')",
        ),
        Job(id="j-2", name="on error", adaptor="@openfn/language-common@2.1.1", body="fn(s => s)"),
    )
    assert plan.edges == (
        Edge(id="e-1", source_trigger_id="t-1", target_job_id="j-1", condition="always"),
        Edge(id="e-2", source_job_id="j-1", target_job_id="j-2", condition="on_job_failure"),
    )
    assert plan.options == Options(run_timeout_ms=300000, output_dataclips=True)
    validate(plan)


def test_decoding_does_not_change_the_document() -> None:
    doc = copy.deepcopy(SPEC_EXAMPLE)
    Plan.from_wire(doc)
    assert doc == SPEC_EXAMPLE


def test_defaults_for_a_minimal_plan() -> None:
    plan = Plan.from_wire({"jobs": [{"id": "a"}]})

    assert plan.id == "local"
    assert plan.jobs == (Job(id="a", body="", adaptor="common"),)
    assert plan.start == "a"
    assert plan.options == Options()
    assert plan.options.job_log_level == "info"


def test_start_is_the_first_trigger_when_not_given() -> None:
    plan = Plan.from_wire({"triggers": [{"id": "t"}], "jobs": [{"id": "a"}]})
    assert plan.start == "t"


def test_edge_without_id_or_condition_gets_defaults() -> None:
    edges = [{"source_job_id": "a", "target_job_id": "b"}]
    plan = Plan.from_wire({"jobs": [{"id": "a"}, {"id": "b"}], "edges": edges})
    assert plan.edges == (
        Edge(id="a->b", source_job_id="a", target_job_id="b", condition="always", enabled=True),
    )


def test_disabled_edge_is_kept_disabled() -> None:
    plan = Plan.from_wire(
        {
            "jobs": [{"id": "a"}, {"id": "b"}],
            "edges": [{"source_job_id": "a", "target_job_id": "b", "enabled": False}],
        }
    )
    assert plan.edges[0].enabled is False


@pytest.mark.parametrize(
    ("adaptor", "language", "runs_in"),
    [
        ("@openfn/language-common@3.3.4", None, "javascript"),  # every job Lightning sends
        ("@openfn/language-http@latest", None, "javascript"),
        ("common", None, "python"),
        ("pandas@2.2.3", None, "python"),
        ("@openfn/language-common@3.3.4", "python", "python"),  # said outright, it holds
        ("common", "javascript", "javascript"),
    ],
)
def test_a_job_runs_in_its_language_or_its_adaptor_s(
    adaptor: str, language: str | None, runs_in: str
) -> None:
    job = {"id": "j", "adaptor": adaptor, **({"language": language} if language else {})}
    plan = Plan.from_wire({"jobs": [job]})

    assert plan.jobs[0].language == language
    assert plan.jobs[0].runs_in == runs_in == language_of(adaptor, language)


def test_a_language_that_is_not_one_is_a_contract_error() -> None:
    with pytest.raises(
        ContractError, match=r"jobs\[0\]\.language: must be one of python, javascript, not 'ruby'"
    ):
        Plan.from_wire({"jobs": [{"id": "j", "language": "ruby"}]})


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    """The spec example with one field replaced (or removed, for ``...``)."""
    doc = copy.deepcopy(SPEC_EXAMPLE)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param([], "plan: must be an object, not a list", id="plan-not-object"),
        pytest.param(None, "plan: must be an object, not nothing", id="plan-null"),
        pytest.param(_with(["id"], 7), "id: must be text, not a number", id="id"),
        pytest.param(
            _with(["starting_node_id"], ["t-1"]),
            "starting_node_id: must be text, not a list",
            id="starting-node",
        ),
        pytest.param(_with(["jobs"], {}), "jobs: must be a list, not an object", id="jobs"),
        pytest.param(_with(["jobs", 1], "j-2"), "jobs[1]: must be an object, not text", id="job"),
        pytest.param(_with(["jobs", 1, "id"], ...), "jobs[1].id: is required", id="job-id"),
        pytest.param(
            _with(["jobs", 0, "body"], 1), "jobs[0].body: must be text, not a number", id="job-body"
        ),
        pytest.param(
            _with(["jobs", 0, "adaptor"], True),
            "jobs[0].adaptor: must be text, not true/false",
            id="job-adaptor",
        ),
        pytest.param(
            _with(["jobs", 1, "credential_id"], 3),
            "jobs[1].credential_id: must be text",
            id="job-credential-id",
        ),
        pytest.param(
            _with(["jobs", 0, "credential"], "secret"),
            "jobs[0].credential: must be an object, not text",
            id="job-credential",
        ),
        pytest.param(
            _with(["jobs", 0, "state"], [1]),
            "jobs[0].state: must be an object, not a list",
            id="state",
        ),
        pytest.param(
            _with(["triggers"], "t-1"), "triggers: must be a list, not text", id="triggers"
        ),
        pytest.param(
            _with(["triggers", 0, "id"], ...), "triggers[0].id: is required", id="trig-id"
        ),
        pytest.param(_with(["edges"], {}), "edges: must be a list, not an object", id="edges"),
        pytest.param(
            _with(["edges", 1], 5), "edges[1]: must be an object, not a number", id="edge"
        ),
        pytest.param(
            _with(["edges", 1, "target_job_id"], ...),
            "edges[1].target_job_id: is required",
            id="tgt",
        ),
        pytest.param(
            _with(["edges", 1, "source_job_id"], ...),
            "edges[1]: exactly one of source_trigger_id and source_job_id",
            id="no-source",
        ),
        pytest.param(
            _with(["edges", 0, "source_job_id"], "j-2"),
            "edges[0]: exactly one of source_trigger_id and source_job_id",
            id="two-sources",
        ),
        pytest.param(
            _with(["edges", 1, "condition"], False),
            "edges[1].condition: must be text, not true/false",
            id="condition",
        ),
        pytest.param(
            _with(["edges", 0, "enabled"], "yes"),
            "edges[0].enabled: must be true or false, not text",
            id="enabled",
        ),
        pytest.param(
            _with(["options"], []), "options: must be an object, not a list", id="options"
        ),
        pytest.param(
            _with(["options", "run_timeout_ms"], -1),
            "options.run_timeout_ms: must be more than 0",
            id="timeout-negative",
        ),
        pytest.param(
            _with(["options", "run_timeout_ms"], "300000"),
            "options.run_timeout_ms: must be a number, not text",
            id="timeout-string",
        ),
        pytest.param(
            _with(["options", "run_memory_limit_mb"], True),
            "options.run_memory_limit_mb: must be a number, not true/false",
            id="memory-bool",
        ),
        pytest.param(
            _with(["options", "payload_limit_mb"], 0),
            "options.payload_limit_mb: must be more than 0",
            id="payload",
        ),
        pytest.param(
            _with(["options", "log_payload_limit_mb"], "1"),
            "options.log_payload_limit_mb: must be a number, not text",
            id="log-payload",
        ),
        pytest.param(
            _with(["options", "output_dataclips"], "no"),
            "options.output_dataclips: must be true or false, not text",
            id="output-dataclips",
        ),
        pytest.param(
            _with(["options", "job_log_level"], "loud"),
            "options.job_log_level: must be one of debug, info, default, none, none-really, "
            "not 'loud'",
            id="log-level",
        ),
        pytest.param(
            _with(["options", "sanitize"], 1),
            "options.sanitize: must be text, not a number",
            id="sanitize",
        ),
    ],
)
def test_malformed_field_is_a_contract_error_naming_it(doc: Any, message: str) -> None:
    with pytest.raises(ContractError) as caught:
        Plan.from_wire(doc)
    assert str(caught.value).startswith(message)


def _plan(
    jobs: Sequence[str],
    edges: Sequence[tuple[str, str]] = (),
    triggers: Sequence[str] = (),
    start: str | None = None,
) -> Plan:
    trigger_ids = set(triggers)
    return Plan(
        id="p",
        jobs=tuple(Job(id=j, body="", adaptor="common") for j in jobs),
        triggers=tuple(Trigger(t) for t in triggers),
        edges=tuple(
            Edge(
                id=f"{s}->{t}",
                target_job_id=t,
                source_trigger_id=s if s in trigger_ids else None,
                source_job_id=None if s in trigger_ids else s,
            )
            for s, t in edges
        ),
        starting_node_id=start,
    )


def test_a_diamond_is_valid() -> None:
    validate(_plan(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]))


def test_a_trigger_fanning_out_is_valid() -> None:
    validate(_plan(["a", "b"], [("t", "a"), ("t", "b")], triggers=["t"]))


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        pytest.param(_plan([]), "the workflow has no jobs", id="no-jobs"),
        pytest.param(
            _plan(["a"], start="nope"),
            "the starting node 'nope' is not a trigger or job of this plan",
            id="unknown-start",
        ),
        pytest.param(
            _plan(["a"], [("a", "ghost")]),
            "edge 'a->ghost' points to 'ghost', which is not a job",
            id="edge-to-nowhere",
        ),
        pytest.param(
            _plan(["a"], [("ghost", "a")]),
            "edge 'ghost->a' starts at 'ghost', which is not a node",
            id="edge-from-nowhere",
        ),
        pytest.param(
            _plan(["a"], [("t", "t")], triggers=["t"]),
            "edge 't->t' points to 't', which is not a job",
            id="edge-to-a-trigger",
        ),
        pytest.param(_plan(["a", "a"]), "two nodes share the id 'a'", id="duplicate-job"),
        pytest.param(
            _plan(["a"], triggers=["a"]), "two nodes share the id 'a'", id="job-and-trigger"
        ),
    ],
)
def test_unrunnable_plan_is_a_plan_error(plan: Plan, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        validate(plan)
    assert str(caught.value) == message
    assert caught.value.code == "ValidationError"


def test_a_cycle_is_shown_in_the_message() -> None:
    edges = [("t", "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("c", "a")]
    plan = _plan(["a", "b", "c", "d"], edges, triggers=["t"])
    with pytest.raises(PlanError) as caught:
        validate(plan)
    assert str(caught.value) == "the workflow has a cycle: a -> b -> c -> a"


def test_a_self_loop_is_a_cycle() -> None:
    with pytest.raises(PlanError, match=r"cycle: b -> b$"):
        validate(_plan(["a", "b"], [("a", "b"), ("b", "b")]))


def test_a_cycle_through_a_disabled_edge_is_still_a_cycle() -> None:
    plan = Plan.from_wire(
        {
            "jobs": [{"id": "a"}, {"id": "b"}],
            "edges": [
                {"source_job_id": "a", "target_job_id": "b"},
                {"source_job_id": "b", "target_job_id": "a", "enabled": False},
            ],
        }
    )
    with pytest.raises(PlanError, match="cycle"):
        validate(plan)


def test_to_wire_round_trips() -> None:
    plan = Plan.from_wire(
        {
            **SPEC_EXAMPLE,
            "name": "wf",
            "jobs": [
                *SPEC_EXAMPLE["jobs"],
                {
                    "id": "j-3",
                    "body": "",
                    "adaptor": "common",
                    "credential": {"password": "pw"},
                    "state": {"data": {"x": 1}},
                    "language": "python",
                },
            ],
            "edges": [
                *SPEC_EXAMPLE["edges"],
                {"source_job_id": "j-1", "target_job_id": "j-3", "condition": "state.data.x > 1"},
                {"id": "e-4", "source_job_id": "j-2", "target_job_id": "j-3", "enabled": False},
            ],
            "options": {
                "run_timeout_ms": 1000,
                "run_memory_limit_mb": 256,
                "output_dataclips": False,
                "payload_limit_mb": 2.5,
                "log_payload_limit_mb": 1,
                "job_log_level": "none-really",
                "sanitize": "obfuscate",
            },
        }
    )
    wire = plan.to_wire()

    assert Plan.from_wire(wire) == plan
    assert Plan.from_wire(json.loads(json.dumps(wire))) == plan
    assert "credential_id" not in wire["jobs"][1]  # None is left out, not sent as null


def test_every_problem_is_reported_at_once() -> None:
    doc = _with(["jobs", 1, "id"], ...)
    doc["edges"][0]["enabled"] = "yes"
    doc["options"] = {"run_timeout_ms": 0}
    with pytest.raises(ContractError) as caught:
        Plan.from_wire(doc)
    assert str(caught.value).split("; ") == [
        "jobs[1].id: is required",
        "edges[0].enabled: must be true or false, not text",
        "options.run_timeout_ms: must be more than 0",
    ]


def test_a_condition_is_in_its_source_job_s_language_or_for_a_trigger_its_target_s() -> None:
    plan = Plan.from_wire(
        {
            "triggers": [{"id": "t"}],
            "jobs": [
                {"id": "js", "adaptor": "@openfn/language-common@3.3.4"},
                {"id": "py", "adaptor": "common"},
            ],
            "edges": [
                {"source_trigger_id": "t", "target_job_id": "js"},
                {"source_job_id": "js", "target_job_id": "py"},
                {"source_job_id": "py", "target_job_id": "js"},
            ],
        }
    )

    assert [plan.condition_language(e) for e in plan.edges] == [
        "javascript",
        "javascript",
        "python",
    ]


def test_language_sets_are_masks_a_claim_matches_runs_against() -> None:
    assert language_mask(["python"]) == 1 and language_mask(["javascript", "python"]) == 3
    assert languages_in(3) == ["python", "javascript"] and languages_in(2) == ["javascript"]
    # A worker takes runs whose every language it runs, and only those.
    assert runnable_masks(["python"]) == [1]
    assert runnable_masks(["javascript"]) == [2]
    assert runnable_masks(["python", "javascript"]) == [1, 2, 3]
    assert runnable_masks([]) == []
