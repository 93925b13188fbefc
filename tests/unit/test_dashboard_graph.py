"""A workflow laid out as a graph, without a browser: every node placed, none overlapping,
edges going down the layers, conditions in words, and a run's outcome on each job."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import combinations, pairwise

import pytest

from fulmen.coordinator.dashboard.graph import (
    Graph,
    NodeKind,
    NodeSpec,
    Outcome,
    clip,
    condition_label,
    layout,
    node_runs,
    workflow_graph,
)
from fulmen.lifecycle import StepState
from fulmen.plan import Edge, Job
from fulmen.store import Step, TriggerType, Workflow, WorkflowTrigger

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(job_id: str, name: str | None = None, adaptor: str = "common") -> Job:
    return Job(id=job_id, body="fn(lambda s: s)", adaptor=adaptor, name=name or job_id)


def after(source: str, target: str, condition: str = "always", enabled: bool = True) -> Edge:
    return Edge(
        f"{source}->{target}", target, source_job_id=source, condition=condition, enabled=enabled
    )


def failure_and_join() -> Workflow:
    """webhook → fetch; fetch → load on success, fetch → alert on failure; both → report."""
    return Workflow(
        id="w",
        project_id="p",
        name="sync",
        jobs=(
            job("fetch"),
            job("load"),
            job("alert", adaptor="@openfn/language-http@6"),
            job("report"),
        ),
        triggers=(WorkflowTrigger("hook"),),
        edges=(
            Edge("e0", "fetch", source_trigger_id="hook"),
            after("fetch", "load", "on_job_success"),
            after("fetch", "alert", "on_job_failure"),
            after("load", "report"),
            after("alert", "report", "state.data['n'] > 3", enabled=False),
        ),
    )


def assert_well_formed(graph: Graph, ids: set[str]) -> None:
    assert {n.id for n in graph.nodes} == ids
    for a, b in combinations(graph.nodes, 2):
        apart = (
            a.x + a.width <= b.x
            or b.x + b.width <= a.x
            or a.y + a.height <= b.y
            or b.y + b.height <= a.y
        )
        assert apart, f"{a.id} and {b.id} overlap"
    for n in graph.nodes:
        assert n.x >= 0 and n.x + n.width <= graph.width
        assert n.y >= 0 and n.y + n.height <= graph.height
    for route in graph.routes:
        source, target = graph.node(route.source), graph.node(route.target)
        assert source is not None and target is not None
        assert source.layer < target.layer, f"{route.id} does not go down"
        assert route.points[0] == (source.centre, source.y + source.height)
        assert route.points[-1] == (target.centre, target.y)
        ys = [y for _, y in route.points]
        assert ys == sorted(ys), f"{route.id} goes back up"


def test_a_workflow_with_a_failure_edge_and_a_join_lays_out() -> None:
    graph = workflow_graph(failure_and_join())
    assert_well_formed(graph, {"hook", "fetch", "load", "alert", "report"})
    layers = {n.id: n.layer for n in graph.nodes}
    assert layers == {"hook": 0, "fetch": 1, "load": 2, "alert": 2, "report": 3}
    assert len(graph.routes) == 5


def test_nodes_say_what_they_are() -> None:
    graph = workflow_graph(failure_and_join())
    hook, alert = graph.node("hook"), graph.node("alert")
    assert hook is not None and alert is not None
    assert (hook.kind, hook.name) == (NodeKind.TRIGGER, "Webhook")
    assert (alert.kind, alert.name, alert.detail) == (NodeKind.JOB, "alert", "JavaScript")
    assert graph.node("fetch").detail == "Python"  # type: ignore[union-attr]


def test_a_cron_trigger_shows_its_schedule_and_a_disabled_one_says_so() -> None:
    workflow = Workflow(
        id="w",
        project_id="p",
        name="nightly",
        jobs=(job("a"),),
        triggers=(
            WorkflowTrigger(
                "c", TriggerType.CRON, cron_expression="0 3 * * *", timezone="Europe/Paris"
            ),
            WorkflowTrigger("h", enabled=False),
        ),
        edges=(Edge("1", "a", source_trigger_id="c"), Edge("2", "a", source_trigger_id="h")),
    )
    graph = workflow_graph(workflow)
    cron, hook = graph.node("c"), graph.node("h")
    assert cron is not None and hook is not None
    assert (cron.name, cron.detail) == ("Cron", "0 3 * * * Europe/Paris")
    assert hook.detail == "disabled"


def test_edges_are_labelled_with_their_conditions() -> None:
    routes = {r.id: r for r in workflow_graph(failure_and_join()).routes}
    assert (routes["e0"].label, routes["e0"].code) == ("always", False)
    assert routes["fetch->load"].label == "on success"
    assert routes["fetch->alert"].label == "on failure"
    expression = routes["alert->report"]
    assert (expression.label, expression.code, expression.enabled) == (
        "state.data['n'] > 3",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("condition", "label"),
    [
        ("", ("always", False)),
        ("true", ("always", False)),
        ("on_upstream_success", ("on success", False)),
        ("on_upstream_fail", ("on failure", False)),
        ("  state['ok']  ", ("state['ok']", True)),
    ],
)
def test_named_conditions_read_as_words(condition: str, label: tuple[str, bool]) -> None:
    assert condition_label(condition) == label


def test_long_names_and_expressions_are_clipped_whole_text_kept() -> None:
    long = "import the whole customer list from the CRM"
    graph = layout(
        [NodeSpec("a", NodeKind.JOB, long), NodeSpec("b", NodeKind.JOB, "b")],
        [after("a", "b", "state.data.get('customers') and len(state.data['customers']) > 0")],
    )
    node, route = graph.nodes[0], graph.routes[0]
    assert node.name == long
    assert node.short_name == "import the whole cus…" and len(node.short_name) <= 21
    assert route.short_label.endswith("…") and len(route.short_label) <= 22
    assert route.label.startswith("state.data.get(") and route.label.endswith("> 0")
    assert clip("short", 10) == "short"


def test_nodes_joined_by_nothing_stand_side_by_side() -> None:
    specs = [NodeSpec(i, NodeKind.JOB, i) for i in ("a", "b", "c", "d")]
    graph = layout(specs, [after("a", "b")])
    assert_well_formed(graph, {"a", "b", "c", "d"})
    assert [n.layer for n in graph.nodes] == [0, 1, 0, 0]
    assert workflow_graph(Workflow("w", "p", "empty")).nodes == ()


def test_an_edge_that_skips_layers_bends_around_the_nodes_between() -> None:
    specs = [NodeSpec(i, NodeKind.JOB, i) for i in ("a", "b", "c", "d")]
    graph = layout(specs, [after("a", "b"), after("b", "c"), after("c", "d"), after("a", "d")])
    assert_well_formed(graph, {"a", "b", "c", "d"})
    long = next(r for r in graph.routes if r.id == "a->d")
    assert len(long.points) == 4  # out of a, one point on each of b's and c's layers, into d
    assert long.path.startswith("M") and long.path.count("C") == 3


def test_a_30_job_workflow_lays_out_fast() -> None:
    ids = [f"job{i:02}" for i in range(30)]
    edges = [after(a, b) for a, b in pairwise(ids)]
    edges += [after(ids[i], ids[i + 3], "on_job_failure") for i in range(0, 27, 2)]
    edges += [after(ids[i], ids[i + 7]) for i in range(0, 23, 5)]
    specs = [NodeSpec(i, NodeKind.JOB, i) for i in ids]
    began = time.perf_counter()
    graph = layout(specs, edges)
    assert time.perf_counter() - began < 0.5
    assert_well_formed(graph, set(ids))


def step(job_id: str, state: StepState, minute: int) -> Step:
    started = T0 + timedelta(minutes=minute)
    return Step(f"s-{job_id}-{minute}", "r", job_id, None, None, state, None, None, started, None)


def test_a_run_colours_each_job_by_its_latest_step() -> None:
    runs = node_runs(
        [
            step("report", StepState.SUCCESS, 3),
            step("fetch", StepState.FAIL, 0),
            step("alert", StepState.CRASH, 1),
            step("report", StepState.RUNNING, 4),
            step("load", StepState.KILL, 2),
        ]
    )
    assert {job: r.outcome for job, r in runs.items()} == {
        "fetch": Outcome.FAIL,
        "alert": Outcome.CRASH,
        "load": Outcome.CRASH,
        "report": Outcome.RUNNING,
    }
    assert (runs["report"].step_id, runs["load"].state) == ("s-report-4", "kill")
