"""A workflow as a picture: its triggers, jobs and edges placed as a layered directed graph,
top to bottom, ready for a template to draw as SVG. Pure: no I/O, no markup.

The layering itself (ranks, crossing reduction, horizontal placement, dummy points that carry
an edge across the layers it skips) is fast-sugiyama's, a Rust implementation of Sugiyama's
method; this module turns a workflow into its edge list and the answer into pixels. Nodes are
all one size, so the picture needs no text measuring: names longer than a node holds are cut
here (``clip``) and the template gives the whole name in a ``<title>``.

Top to bottom rather than left to right because workflows are deeper than they are wide, and
a page (a phone's above all) is taller than it is wide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fast_sugiyama import from_edges

from fulmen.lifecycle import StepState
from fulmen.plan import ALWAYS, LANGUAGE_NAMES, ON_JOB_FAILURE, ON_JOB_SUCCESS, Edge
from fulmen.store import Step, TriggerType, Workflow, WorkflowTrigger

__all__ = [
    "NODE_HEIGHT",
    "NODE_WIDTH",
    "Graph",
    "Node",
    "NodeKind",
    "NodeRun",
    "NodeSpec",
    "Outcome",
    "Route",
    "clip",
    "condition_label",
    "layout",
    "node_runs",
    "workflow_graph",
]

NODE_WIDTH: Final = 184
NODE_HEIGHT: Final = 52
#: Centre to centre, across a layer and down from one layer to the next (room for a label).
_COLUMN: Final = NODE_WIDTH + 40
_ROW: Final = NODE_HEIGHT + 64
_MARGIN: Final = 12
#: The most characters of a name a node shows, and of an expression an edge's label shows.
NAME_CHARS: Final = 21
CONDITION_CHARS: Final = 22
DETAIL_CHARS: Final = 26

#: Lightning's named conditions, and their aliases, in words.
_CONDITION_WORDS: Final = {
    "": "always",
    ALWAYS: "always",
    "true": "always",
    ON_JOB_SUCCESS: "on success",
    "on_upstream_success": "on success",
    ON_JOB_FAILURE: "on failure",
    "on_upstream_fail": "on failure",
}


class NodeKind(StrEnum):
    TRIGGER = "trigger"
    JOB = "job"


@dataclass(frozen=True, slots=True)
class Node:
    """A trigger or a job, placed: ``x`` and ``y`` are its top left corner, in pixels."""

    id: str
    kind: NodeKind
    #: The job's name, or the trigger's type in words (``Webhook``); whole, not clipped.
    name: str
    #: The second line: a job's language, a cron trigger's schedule.
    detail: str
    layer: int
    x: float
    y: float
    width: int = NODE_WIDTH
    height: int = NODE_HEIGHT

    @property
    def centre(self) -> float:
        return self.x + self.width / 2

    @property
    def short_name(self) -> str:
        return clip(self.name, NAME_CHARS)

    @property
    def short_detail(self) -> str:
        return clip(self.detail, DETAIL_CHARS)


@dataclass(frozen=True, slots=True)
class Route:
    """An edge, routed: ``points`` go from the bottom of its source to the top of its
    target, through a point on each layer it crosses."""

    id: str
    source: str
    target: str
    #: ``on success``, ``on failure``, ``always``, or the expression as written.
    label: str
    #: Whether ``label`` is an expression (shown as code) rather than words.
    code: bool
    enabled: bool
    points: tuple[tuple[float, float], ...]

    @property
    def short_label(self) -> str:
        return clip(self.label, CONDITION_CHARS) if self.code else self.label

    @property
    def path(self) -> str:
        """The SVG path: an S-curve down each leg, leaving and entering vertically."""
        (x, y), *rest = self.points
        d = [f"M{x:g},{y:g}"]
        for nx, ny in rest:
            middle = (y + ny) / 2
            d.append(f"C{x:g},{middle:g} {nx:g},{middle:g} {nx:g},{ny:g}")
            x, y = nx, ny
        return " ".join(d)

    @property
    def label_at(self) -> tuple[float, float]:
        """Where the label goes: the middle of the first leg (on the curve, which is
        symmetric about it), where edges leaving one node have spread apart."""
        (x1, y1), (x2, y2) = self.points[0], self.points[1]
        return (x1 + x2) / 2, (y1 + y2) / 2


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]
    routes: tuple[Route, ...]
    width: float
    height: float

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What ``layout`` places: a node before it has a position."""

    id: str
    kind: NodeKind
    name: str
    detail: str = ""


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def condition_label(condition: str) -> tuple[str, bool]:
    """An edge condition for people: a named one in words (``on failure``) and ``False``; an
    expression as written and ``True`` (it is code)."""
    words = _CONDITION_WORDS.get(condition.strip())
    if words is not None:
        return words, False
    return condition.strip(), True


def workflow_graph(workflow: Workflow) -> Graph:
    """``workflow``'s triggers, jobs and edges, laid out (``layout``)."""
    nodes = [
        NodeSpec(t.id, NodeKind.TRIGGER, _trigger_name(t.type), _trigger_detail(t))
        for t in workflow.triggers
    ]
    nodes += [
        NodeSpec(j.id, NodeKind.JOB, j.name or j.id[:8], LANGUAGE_NAMES.get(j.runs_in, j.runs_in))
        for j in workflow.jobs
    ]
    return layout(nodes, workflow.edges)


def _trigger_name(kind: TriggerType) -> str:
    return {TriggerType.WEBHOOK: "Webhook", TriggerType.CRON: "Cron"}.get(kind, kind.value.title())


def _trigger_detail(trigger: WorkflowTrigger) -> str:
    """A cron trigger's schedule (and zone); ``disabled`` for a trigger that is."""
    if not trigger.enabled:
        return "disabled"
    if trigger.cron_expression:
        return " ".join(filter(None, (trigger.cron_expression, trigger.timezone)))
    return "trigger"


def layout(nodes: Sequence[NodeSpec], edges: Iterable[Edge]) -> Graph:
    """Place ``nodes`` in layers, each edge going down from its source's layer to a later
    one, and route ``edges`` through the layers between.

    Nodes joined by no edge, and separate parts of the graph, stand side by side, in the
    order of ``nodes``. Edges whose source or target is not among ``nodes`` are left out (a
    saved workflow has none: the API refuses them). The workflow is a DAG (``plan.validate``
    holds it to that); given a cycle, the layering still places every node, but some edge
    then goes up.
    """
    index = {spec.id: i for i, spec in enumerate(nodes)}
    kept = [e for e in edges if e.source_id in index and e.target_job_id in index]
    pairs = sorted({(index[e.source_id], index[e.target_job_id]) for e in kept})
    centres: dict[int, tuple[float, float]] = {}
    chains: dict[int, list[int]] = {}
    offset = 0.0
    parts = from_edges(pairs, vertex_spacing=1, dummy_vertices=True) if pairs else []
    for positions, width, height, routed in parts:
        shift = offset - min(float(x) for _, (x, _) in positions)
        for vertex, (x, y) in positions:
            # fast-sugiyama's y grows upwards: the first layer is the highest.
            centres[int(vertex)] = (float(x) + shift, float(height) - float(y))
        for source, target in routed or []:
            chains.setdefault(int(source), []).append(int(target))
        offset += float(width) + 1
    for i in range(len(nodes)):
        if i not in centres:  # alone: no edge to or from it
            centres[i] = (offset, 0.0)
            offset += 1
    placed = tuple(_place(spec, *centres[i]) for i, spec in enumerate(nodes))
    routes = tuple(_route(e, index, placed, centres, chains, len(nodes)) for e in kept)
    width = max((n.x + n.width for n in placed), default=0) + _MARGIN
    height = max((n.y + n.height for n in placed), default=0) + _MARGIN
    return Graph(placed, routes, width, height)


def _place(spec: NodeSpec, column: float, layer: float) -> Node:
    return Node(
        id=spec.id,
        kind=spec.kind,
        name=spec.name,
        detail=spec.detail,
        layer=round(layer),
        x=_MARGIN + column * _COLUMN,
        y=_MARGIN + layer * _ROW,
    )


def _route(
    edge: Edge,
    index: dict[str, int],
    placed: tuple[Node, ...],
    centres: dict[int, tuple[float, float]],
    chains: dict[int, list[int]],
    real: int,
) -> Route:
    """The edge's points: out of its source's bottom, through the dummy vertex fast-sugiyama
    put on each layer it crosses, into its target's top."""
    source, target = index[edge.source_id], index[edge.target_job_id]
    start, end = placed[source], placed[target]
    points = [(start.centre, start.y + start.height)]
    vertex = _first_hop(source, target, chains, real)
    while vertex >= real:  # a dummy: ids past the real vertices
        column, layer = centres[vertex]
        x, y = _MARGIN + column * _COLUMN + NODE_WIDTH / 2, _MARGIN + layer * _ROW
        points.append((x, y + NODE_HEIGHT / 2))
        vertex = chains[vertex][0]
    points.append((end.centre, end.y))
    label, code = condition_label(edge.condition)
    return Route(
        id=edge.id,
        source=edge.source_id,
        target=edge.target_job_id,
        label=label,
        code=code,
        enabled=edge.enabled,
        points=tuple(points),
    )


def _first_hop(source: int, target: int, chains: dict[int, list[int]], real: int) -> int:
    """The vertex after ``source`` on its way to ``target``: ``target`` itself, or the first
    dummy of the chain that ends there."""
    for hop in chains.get(source, []):
        if hop == target:
            return hop
        vertex = hop
        while vertex >= real:
            vertex = chains[vertex][0]
        if vertex == target and hop >= real:
            return hop
    return target


# -- a run on the graph -------------------------------------------------------------------------


class Outcome(StrEnum):
    """What became of a job in one run, as its node is coloured (the state's word is always
    shown too: colour is never the only sign)."""

    SUCCESS = "success"
    FAIL = "fail"
    #: Crashed, killed, lost or cancelled: stopped from outside the job's own code.
    CRASH = "crash"
    RUNNING = "running"
    NOT_RUN = "not-run"


_OUTCOMES: Final = {
    StepState.SUCCESS: Outcome.SUCCESS,
    StepState.FAIL: Outcome.FAIL,
    StepState.EXCEPTION: Outcome.FAIL,
    StepState.CRASH: Outcome.CRASH,
    StepState.KILL: Outcome.CRASH,
    StepState.LOST: Outcome.CRASH,
    StepState.CANCEL: Outcome.CRASH,
    StepState.RUNNING: Outcome.RUNNING,
}


@dataclass(frozen=True, slots=True)
class NodeRun:
    """A job's step in a run, for its node: the colour, the state in words, the step."""

    outcome: Outcome
    state: str
    step_id: str


def node_runs(steps: Iterable[Step]) -> dict[str, NodeRun]:
    """Each job's step in the run, by job id; a job without one did not run. A job reached
    by two paths runs twice: its node shows the later step."""
    out: dict[str, NodeRun] = {}
    for step in sorted(steps, key=lambda s: s.started_at):
        outcome = _OUTCOMES.get(step.state, Outcome.RUNNING)
        out[step.job_id] = NodeRun(outcome, step.state.value, step.id)
    return out
