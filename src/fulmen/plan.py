"""The workflow plan: Lightning's plan shape as typed values, and the rules that make it runnable.

A plan is what ``fetch:plan`` returns (worker-protocol.md §6.1) and what ``fulmen run`` reads
from a workflow JSON file. It is decoded once, here, into frozen values; nothing downstream
handles the raw dict. ``validate`` is the runtime's validation of §6.3 (start is a node, every
edge lands on a node, no cycles), kept apart from decoding so that a plan that is well-formed
but unrunnable can still be reported as a run that crashed with ``ValidationError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fulmen.errors import ContractError, PlanError

__all__ = [
    "ALWAYS",
    "ON_JOB_FAILURE",
    "ON_JOB_SUCCESS",
    "Edge",
    "Job",
    "Options",
    "Plan",
    "Trigger",
    "validate",
]

ALWAYS = "always"
ON_JOB_SUCCESS = "on_job_success"
ON_JOB_FAILURE = "on_job_failure"

#: Levels accepted for ``job_log_level`` (§6.1); ``default`` lets warnings and errors through.
JOB_LOG_LEVELS = ("debug", "info", "default", "none", "none-really")


@dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    type: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    body: str
    adaptor: str
    name: str | None = None
    credential_id: str | None = None
    #: Inline credential body (dev/mock only on the wire; the local CLI uses it).
    credential: Mapping[str, Any] | None = None
    #: The job's default state, overlaid by its input (§6.4 step 1).
    state: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    id: str
    target_job_id: str
    source_trigger_id: str | None = None
    source_job_id: str | None = None
    #: ``always``, ``on_job_success``, ``on_job_failure`` or a Python expression over ``state``.
    condition: str = ALWAYS
    enabled: bool = True

    @property
    def source_id(self) -> str:
        # Decoding guarantees exactly one source is set.
        return self.source_trigger_id or self.source_job_id or ""

    def to_wire(self) -> dict[str, Any]:
        """The edge as a plan carries it (both sources present, one of them null)."""
        return {
            "id": self.id,
            "source_trigger_id": self.source_trigger_id,
            "source_job_id": self.source_job_id,
            "target_job_id": self.target_job_id,
            "condition": self.condition,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class Options:
    """Per-run options (§6.1). ``None`` means "the worker's default applies"."""

    run_timeout_ms: int | None = None
    run_memory_limit_mb: int | None = None
    output_dataclips: bool = True
    payload_limit_mb: float | None = None
    log_payload_limit_mb: float | None = None
    job_log_level: str = "info"
    sanitize: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    jobs: tuple[Job, ...]
    triggers: tuple[Trigger, ...] = ()
    edges: tuple[Edge, ...] = ()
    starting_node_id: str | None = None
    dataclip_id: str | None = None
    project_id: str | None = None
    name: str | None = None
    options: Options = field(default_factory=Options)

    @property
    def start(self) -> str:
        """The node the run starts from: the given one, else the first trigger, else job."""
        if self.starting_node_id:
            return self.starting_node_id
        if self.triggers:
            return self.triggers[0].id
        return self.jobs[0].id if self.jobs else ""

    def job(self, job_id: str) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def edges_from(self, node_id: str) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if e.source_id == node_id)

    @classmethod
    def from_wire(cls, obj: object) -> Plan:
        """Decode a plan document; a ContractError names the offending field."""
        doc = _mapping(obj, "plan")
        jobs = tuple(_job(j, f"jobs[{i}]") for i, j in enumerate(_list(doc, "jobs")))
        return cls(
            id=_str(doc, "id", "plan", required=False) or "local",
            name=_str(doc, "name", "plan", required=False),
            jobs=jobs,
            triggers=tuple(
                _trigger(t, f"triggers[{i}]") for i, t in enumerate(_list(doc, "triggers"))
            ),
            edges=tuple(_edge(e, f"edges[{i}]") for i, e in enumerate(_list(doc, "edges"))),
            starting_node_id=_str(doc, "starting_node_id", "plan", required=False),
            dataclip_id=_str(doc, "dataclip_id", "plan", required=False),
            project_id=_str(doc, "project_id", "plan", required=False),
            options=_options(doc.get("options"), "options"),
        )

    def to_wire(self) -> dict[str, Any]:
        """The plan as the JSON object ``fetch:plan`` carries (and ``from_wire`` reads)."""
        doc: dict[str, Any] = {
            "id": self.id,
            "jobs": [_drop_none(_job_wire(j)) for j in self.jobs],
            "triggers": [_drop_none({"id": t.id, "type": t.type}) for t in self.triggers],
            "edges": [_drop_none(e.to_wire()) for e in self.edges],
            "options": _drop_none(_options_wire(self.options)),
        }
        for key in ("name", "starting_node_id", "dataclip_id", "project_id"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc


def validate(plan: Plan) -> None:
    """Raise PlanError unless the plan can run (§6.3): the errors a user can fix, in words."""
    if not plan.jobs:
        raise PlanError("the workflow has no jobs")
    nodes: dict[str, str] = {}
    for kind, node_id in [("trigger", t.id) for t in plan.triggers] + [
        ("job", j.id) for j in plan.jobs
    ]:
        if node_id in nodes:
            raise PlanError(f"two nodes share the id {node_id!r}")
        nodes[node_id] = kind
    if plan.start not in nodes:
        raise PlanError(f"the starting node {plan.start!r} is not a trigger or job of this plan")
    for edge in plan.edges:
        if edge.source_id not in nodes:
            raise PlanError(f"edge {edge.id!r} starts at {edge.source_id!r}, which is not a node")
        if nodes.get(edge.target_job_id) != "job":
            raise PlanError(
                f"edge {edge.id!r} points to {edge.target_job_id!r}, which is not a job"
            )
    cycle = _find_cycle(plan)
    if cycle:
        raise PlanError("the workflow has a cycle: " + " -> ".join(cycle))


def _find_cycle(plan: Plan) -> list[str]:
    """A cycle as a list of node ids (first repeated at the end), or [] when there is none."""
    graph: dict[str, list[str]] = {}
    for edge in plan.edges:
        graph.setdefault(edge.source_id, []).append(edge.target_job_id)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for nxt in graph.get(node, []):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return []

    for start in list(graph):
        found = visit(start, [])
        if found:
            return found
    return []


# -- decoding helpers: each names the field it rejects ---------------------------------------


def _mapping(obj: object, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ContractError(f"{where}: expected a JSON object, got {_kind(obj)}")
    return obj


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ContractError(f"{key}: expected a list, got {_kind(value)}")
    return value


def _str(doc: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise ContractError(f"{where}.{key}: required")
        return None
    if not isinstance(value, str):
        raise ContractError(f"{where}.{key}: expected a string, got {_kind(value)}")
    return value


def _req(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = _str(doc, key, where)
    assert value is not None  # _str raised otherwise
    return value


def _opt_mapping(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    return _mapping(value, f"{where}.{key}")


def _job(obj: object, where: str) -> Job:
    doc = _mapping(obj, where)
    return Job(
        id=_req(doc, "id", where),
        name=_str(doc, "name", where, required=False),
        body=_str(doc, "body", where, required=False) or "",
        adaptor=_str(doc, "adaptor", where, required=False) or "common",
        credential_id=_str(doc, "credential_id", where, required=False),
        credential=_opt_mapping(doc, "credential", where),
        state=_opt_mapping(doc, "state", where),
    )


def _trigger(obj: object, where: str) -> Trigger:
    doc = _mapping(obj, where)
    return Trigger(id=_req(doc, "id", where), type=_str(doc, "type", where, required=False))


def _edge(obj: object, where: str) -> Edge:
    doc = _mapping(obj, where)
    source_trigger = _str(doc, "source_trigger_id", where, required=False)
    source_job = _str(doc, "source_job_id", where, required=False)
    if (source_trigger is None) == (source_job is None):
        raise ContractError(
            f"{where}: exactly one of source_trigger_id and source_job_id is needed"
        )
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ContractError(f"{where}.enabled: expected true or false, got {_kind(enabled)}")
    condition = _str(doc, "condition", where, required=False) or ALWAYS
    return Edge(
        id=_str(doc, "id", where, required=False)
        or f"{source_trigger or source_job}->{_req(doc, 'target_job_id', where)}",
        target_job_id=_req(doc, "target_job_id", where),
        source_trigger_id=source_trigger,
        source_job_id=source_job,
        condition=condition,
        enabled=enabled,
    )


def _number(doc: Mapping[str, Any], key: str, where: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ContractError(f"{where}.{key}: expected a positive number, got {value!r}")
    return value


def _options(obj: object, where: str) -> Options:
    if obj is None:
        return Options()
    doc = _mapping(obj, where)
    output_dataclips = doc.get("output_dataclips", True)
    if not isinstance(output_dataclips, bool):
        raise ContractError(f"{where}.output_dataclips: expected true or false")
    level = _str(doc, "job_log_level", where, required=False) or "info"
    if level not in JOB_LOG_LEVELS:
        raise ContractError(f"{where}.job_log_level: expected one of {', '.join(JOB_LOG_LEVELS)}")
    timeout = _number(doc, "run_timeout_ms", where)
    memory = _number(doc, "run_memory_limit_mb", where)
    return Options(
        run_timeout_ms=int(timeout) if timeout is not None else None,
        run_memory_limit_mb=int(memory) if memory is not None else None,
        output_dataclips=output_dataclips,
        payload_limit_mb=_number(doc, "payload_limit_mb", where),
        log_payload_limit_mb=_number(doc, "log_payload_limit_mb", where),
        job_log_level=level,
        sanitize=_str(doc, "sanitize", where, required=False),
    )


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def _job_wire(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "body": job.body,
        "adaptor": job.adaptor,
        "credential_id": job.credential_id,
        "credential": dict(job.credential) if job.credential is not None else None,
        "state": dict(job.state) if job.state is not None else None,
    }


def _options_wire(options: Options) -> dict[str, Any]:
    return {
        "run_timeout_ms": options.run_timeout_ms,
        "run_memory_limit_mb": options.run_memory_limit_mb,
        "output_dataclips": options.output_dataclips,
        "payload_limit_mb": options.payload_limit_mb,
        "log_payload_limit_mb": options.log_payload_limit_mb,
        "job_log_level": options.job_log_level,
        "sanitize": options.sanitize,
    }
