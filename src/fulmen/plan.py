"""The workflow plan: Lightning's plan shape as typed values, and the rules that make it runnable.

A plan is what ``fetch:plan`` returns (worker-protocol.md §6.1) and what ``fulmen run`` reads
from a workflow JSON file. It is decoded once, here, into frozen values; nothing downstream
handles the raw dict. ``validate`` is the runtime's validation of §6.3 (start is a node, every
edge lands on a node, no cycles), kept apart from decoding so that a plan that is well-formed
but unrunnable can still be reported as a run that crashed with ``ValidationError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fulmen.errors import ContractError, PlanError
from fulmen.validation import Reader, join

__all__ = [
    "ALWAYS",
    "COLLECTIONS_MARK",
    "JAVASCRIPT",
    "LANGUAGES",
    "LANGUAGE_BITS",
    "LANGUAGE_NAMES",
    "NAMED_CONDITIONS",
    "ON_JOB_FAILURE",
    "ON_JOB_SUCCESS",
    "OPENFN_PREFIX",
    "PYTHON",
    "Edge",
    "Job",
    "Options",
    "Plan",
    "Trigger",
    "find_cycle",
    "is_named_condition",
    "language_mask",
    "language_of",
    "languages_in",
    "runnable_masks",
    "validate",
]

ALWAYS = "always"
ON_JOB_SUCCESS = "on_job_success"
ON_JOB_FAILURE = "on_job_failure"

PYTHON = "python"
JAVASCRIPT = "javascript"
#: The languages a job's body may be written in.
LANGUAGES = (PYTHON, JAVASCRIPT)
#: Each language as people write it, in messages and pages.
LANGUAGE_NAMES = {PYTHON: "Python", JAVASCRIPT: "JavaScript"}
#: What OpenFn's adaptor packages are named: a job that names one and no language is
#: JavaScript, as every job Lightning hands out is.
OPENFN_PREFIX = "@openfn/language-"

#: What a job's body says to use collections (ws-worker's own test, a plain substring).
COLLECTIONS_MARK = "collections."

#: Conditions Lightning names rather than writes (with their aliases and the empty one, which
#: means always): the same in every language, evaluated by the engine itself.
NAMED_CONDITIONS = frozenset(
    ("", ALWAYS, "true", ON_JOB_SUCCESS, "on_upstream_success", ON_JOB_FAILURE, "on_upstream_fail")
)

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
    #: A keychain of the project that picks the credential by the run's input (issue 19):
    #: a saved workflow's job names it instead of ``credential_id``; the plan a worker gets
    #: names the credential it chose instead (store/keychains.py), never the keychain.
    keychain_id: str | None = None
    #: Inline credential body (dev/mock only on the wire; the local CLI uses it).
    credential: Mapping[str, Any] | None = None
    #: The job's default state, overlaid by its input (§6.4 step 1).
    state: Mapping[str, Any] | None = None
    #: ``python`` or ``javascript`` as the plan says; ``None`` when it does not (Lightning's
    #: plans never do): :attr:`runs_in` then tells by the adaptor.
    language: str | None = None
    #: Packages a Python job's code imports besides its adaptor (``httpx==0.28.1``), exact
    #: versions once the workflow is saved (``fulmen.python_requirements``).
    requirements: tuple[str, ...] = ()

    @property
    def runs_in(self) -> str:
        """The language the body is run in."""
        return language_of(self.adaptor, self.language)

    @property
    def uses_collections(self) -> bool:
        """Whether the body names ``collections.``: ws-worker's test for giving a job the
        collections adaptor and its run the collections endpoint and token (issue 19)."""
        return COLLECTIONS_MARK in self.body


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

    def to_wire(self) -> dict[str, Any]:
        """The options as a plan carries them: those set, by name."""
        return _drop_none(_options_wire(self))


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

    def condition_language(self, edge: Edge) -> str:
        """The language ``edge``'s condition is written in: its source job's, or, for a
        trigger's edge, the language of the job it leads to."""
        job = self.job(edge.source_job_id or edge.target_job_id)
        return job.runs_in if job is not None else PYTHON

    @classmethod
    def from_wire(cls, obj: object) -> Plan:
        """Decode a plan document.

        Raises:
            ContractError: every problem found, each at the path of its key, in the words
                of fulmen.validation (``jobs[1].id: is required``).
        """
        reader = _PlanReader()
        plan = reader.plan(obj)
        if reader.problems or plan is None:
            raise ContractError("; ".join(reader.lines()) or "plan: not a plan")
        return plan

    def to_wire(self) -> dict[str, Any]:
        """The plan as the JSON object ``fetch:plan`` carries (and ``from_wire`` reads)."""
        doc: dict[str, Any] = {
            "id": self.id,
            "jobs": [_drop_none(_job_wire(j)) for j in self.jobs],
            "triggers": [_drop_none({"id": t.id, "type": t.type}) for t in self.triggers],
            "edges": [_drop_none(e.to_wire()) for e in self.edges],
            "options": self.options.to_wire(),
        }
        for key in ("name", "starting_node_id", "dataclip_id", "project_id"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc


#: Each language as a bit of a set of languages (the store keeps a run's as a number, which
#: the claim matches against the languages a worker runs).
LANGUAGE_BITS = {PYTHON: 1, JAVASCRIPT: 2}


def language_mask(languages: Iterable[str]) -> int:
    """The set of ``languages`` as a number; unknown names are left out."""
    mask = 0
    for name in languages:
        mask |= LANGUAGE_BITS.get(name, 0)
    return mask


def languages_in(mask: int) -> list[str]:
    """The languages of a mask, in ``LANGUAGES`` order."""
    return [name for name in LANGUAGES if mask & LANGUAGE_BITS[name]]


def runnable_masks(languages: Iterable[str]) -> list[int]:
    """Every non-empty set of languages a worker that runs ``languages`` can run all of: the
    masks a claim may take runs with (one index seek each)."""
    worker = language_mask(languages)
    return [m for m in range(1, 1 << len(LANGUAGES)) if m & ~worker == 0]


def is_named_condition(condition: str) -> bool:
    """Whether ``condition`` is one of :data:`NAMED_CONDITIONS` rather than an expression."""
    return condition.strip() in NAMED_CONDITIONS


def language_of(adaptor: str, language: str | None = None) -> str:
    """The language of a job with ``adaptor`` whose language is ``language`` if said: when it
    is not, JavaScript for an OpenFn adaptor package (``@openfn/language-common@3.3.4``),
    Python for anything else (``common``, ``pandas@2.2.3``)."""
    if language is not None:
        return language
    return JAVASCRIPT if adaptor.startswith(OPENFN_PREFIX) else PYTHON


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
    cycle = find_cycle((edge.source_id, edge.target_job_id) for edge in plan.edges)
    if cycle:
        raise PlanError("the workflow has a cycle: " + " -> ".join(cycle))


def find_cycle(edges: Iterable[tuple[str, str]]) -> list[str]:
    """A cycle of the graph of ``(source, target)`` edges as a list of nodes (the first
    repeated at the end), or [] when there is none. A project file's edges, by name, are
    checked with it too (fulmen.project), so ``fulmen deploy`` refuses a cycle before it
    sends anything."""
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
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


# -- decoding --------------------------------------------------------------------------------


class _PlanReader(Reader):
    """Reads a plan document; a faulty value is read as absent and the walk goes on."""

    def plan(self, obj: object) -> Plan | None:
        doc = self.mapping(obj, "plan")
        if doc is None:
            return None
        jobs = [
            self.job(item, join("jobs", i)) for i, item in enumerate(self.items(doc, "jobs", ""))
        ]
        triggers = [
            self.trigger(item, join("triggers", i))
            for i, item in enumerate(self.items(doc, "triggers", ""))
        ]
        edges = [
            self.edge(item, join("edges", i)) for i, item in enumerate(self.items(doc, "edges", ""))
        ]
        options = self.options(doc.get("options"))
        fields = {
            key: self.text(doc, key, "", empty=True)
            for key in ("id", "name", "starting_node_id", "dataclip_id", "project_id")
        }
        if self.problems or options is None:
            return None
        return Plan(
            id=fields["id"] or "local",
            name=fields["name"],
            jobs=tuple(job for job in jobs if job is not None),
            triggers=tuple(trigger for trigger in triggers if trigger is not None),
            edges=tuple(edge for edge in edges if edge is not None),
            starting_node_id=fields["starting_node_id"],
            dataclip_id=fields["dataclip_id"],
            project_id=fields["project_id"],
            options=options,
        )

    def job(self, obj: object, path: str) -> Job | None:
        doc = self.mapping(obj, path)
        if doc is None:
            return None
        job_id = self.text(doc, "id", path, required=True, empty=True)
        name = self.text(doc, "name", path, empty=True)
        body = self.text(doc, "body", path, empty=True)
        adaptor = self.text(doc, "adaptor", path, empty=True)
        credential_id = self.text(doc, "credential_id", path, empty=True)
        keychain_id = self.text(doc, "keychain_id", path, empty=True)
        credential = self.nested(doc, "credential", path)
        state = self.nested(doc, "state", path)
        language = self.choice(doc, "language", path, LANGUAGES)
        requirements = self.texts(doc, "requirements", path)
        if job_id is None:
            return None
        return Job(
            id=job_id,
            name=name,
            body=body or "",
            adaptor=adaptor or "common",
            credential_id=credential_id,
            keychain_id=keychain_id,
            credential=credential,
            state=state,
            language=language,
            requirements=tuple(requirements),
        )

    def trigger(self, obj: object, path: str) -> Trigger | None:
        doc = self.mapping(obj, path)
        if doc is None:
            return None
        trigger_id = self.text(doc, "id", path, required=True, empty=True)
        kind = self.text(doc, "type", path, empty=True)
        return None if trigger_id is None else Trigger(id=trigger_id, type=kind)

    def edge(self, obj: object, path: str) -> Edge | None:
        doc = self.mapping(obj, path)
        if doc is None:
            return None
        source_trigger = self.text(doc, "source_trigger_id", path, empty=True)
        source_job = self.text(doc, "source_job_id", path, empty=True)
        if (source_trigger is None) == (source_job is None):
            self.problem(path, "exactly one of source_trigger_id and source_job_id is needed")
        target = self.text(doc, "target_job_id", path, required=True, empty=True)
        condition = self.text(doc, "condition", path, empty=True)
        enabled = self.flag(doc, "enabled", path)
        edge_id = self.text(doc, "id", path, empty=True)
        if target is None or (source_trigger is None) == (source_job is None):
            return None
        return Edge(
            id=edge_id or f"{source_trigger or source_job}->{target}",
            target_job_id=target,
            source_trigger_id=source_trigger,
            source_job_id=source_job,
            condition=condition or ALWAYS,
            enabled=enabled,
        )

    def nested(self, doc: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        value = doc.get(key)
        return None if value is None else self.mapping(value, join(path, key))

    def options(self, obj: object) -> Options | None:
        if obj is None:
            return Options()
        doc = self.mapping(obj, "options")
        if doc is None:
            return None
        timeout = self.positive_number(doc, "run_timeout_ms", "options")
        memory = self.positive_number(doc, "run_memory_limit_mb", "options")
        return Options(
            run_timeout_ms=int(timeout) if timeout is not None else None,
            run_memory_limit_mb=int(memory) if memory is not None else None,
            output_dataclips=self.flag(doc, "output_dataclips", "options"),
            payload_limit_mb=self.positive_number(doc, "payload_limit_mb", "options"),
            log_payload_limit_mb=self.positive_number(doc, "log_payload_limit_mb", "options"),
            job_log_level=self.choice(doc, "job_log_level", "options", JOB_LOG_LEVELS) or "info",
            sanitize=self.text(doc, "sanitize", "options", empty=True),
        )


def _drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def _job_wire(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "body": job.body,
        "adaptor": job.adaptor,
        "credential_id": job.credential_id,
        "keychain_id": job.keychain_id,
        "credential": dict(job.credential) if job.credential is not None else None,
        "state": dict(job.state) if job.state is not None else None,
        "language": job.language,
        "requirements": list(job.requirements) if job.requirements else None,
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
