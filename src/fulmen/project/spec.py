"""A project file's values, and reading them from YAML.

The file, with every key it may have (``examples/project.yaml`` is a working one)::

    name: examples                  # the project (found by this name, or by ``id:``)
    concurrency: 10                 # optional: runs of the project in flight at once
    credentials: [api]              # names only: values are set through the API, never here
    workflows:
      sync:                         # the workflow's name
        concurrency: 1              # optional
        triggers:
          - type: webhook           # a trigger's name is its type unless it says otherwise
            reply: after_completion # optional: before_start (default) or after_completion
          - {type: cron, cron: "0 2 * * *", timezone: Europe/Paris, enabled: false}
        jobs:
          - name: fetch
            adaptor: http           # common (the default), http, a module, or a package
            credential: api         # one of the names under ``credentials``
            body_file: fetch.py     # beside this file; or ``body:`` with the source inline
          - name: per-site
            keychain: sites         # or a keychain of the project (``fulmen keychains set``)
            body_file: per_site.py
          - name: load
            adaptor: "pandas@2.2.3" # a package from the Python package index, at a version
            requirements: ["httpx>=0.27"]   # optional: other packages its code imports
            body_file: load.py
          - name: report
            adaptor: "@openfn/language-http@^6"   # an OpenFn adaptor: a JavaScript job
            language: javascript    # optional: javascript for @openfn/language-*, else python
            body_file: report.js
        edges:
          - {from: webhook, to: fetch}                # from a trigger: ``always`` by default
          - {from: fetch, to: report, condition: "state.data.count > 0"}  # a job: on_job_success

A job's language is ``python`` or ``javascript``; without one, a job whose adaptor is an
``@openfn/language-*`` package is JavaScript, any other Python (so a Python job that names
Lightning's ``@openfn/language-common@…`` for Fulmen's common adaptor says ``language:
python``). A JavaScript job's adaptor is any ``@openfn/language-*`` package with a version, an
npm range or a tag (``@latest`` without one), or ``common``/``http`` for OpenFn's; the
coordinator saves the exact version the npm registry offers then. A Python job's adaptor is
what fulmen.python_requirements reads (``common``, ``http``, a module installed beside the
worker, or a package at a version: ``pandas@2.2.3``, ``pandas@latest``, ``pandas@>=2,<3``),
and its ``requirements`` are PEP 508 requirements from the package index; the coordinator
saves each package at the exact version the index offers then, and a workflow's Python jobs
may not pin one package at two versions (they share one environment). Only a Python job has
requirements. A body must parse in its job's language, and an edge's condition in its source
job's (a trigger's edge: in the language of the job it leads to, as
``Plan.condition_language`` has it).

Reading reports every problem at once, each with the path of its key
(``workflows.sync.jobs[1].adaptor: unknown adaptor '...'``), and changes nothing anywhere.
PyYAML's ``safe_load`` reads the file: plain data only, no tags that construct objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from fulmen import cron, python_requirements
from fulmen.adaptor_versions import parse_request
from fulmen.errors import InputError, ProjectFileError
from fulmen.plan import LANGUAGE_NAMES, LANGUAGES, PYTHON, Job, Plan, find_cycle, language_of
from fulmen.syntax import body_problem, condition_problem
from fulmen.validation import Reader, join, kind

__all__ = [
    "CONDITIONS",
    "TRIGGER_TYPES",
    "EdgeSpec",
    "JobSpec",
    "ProjectSpec",
    "TriggerSpec",
    "WorkflowSpec",
    "adaptor_problem",
    "default_condition",
    "load",
    "parse",
]

TRIGGER_TYPES: Final = ("webhook", "cron")
CONDITIONS: Final = ("always", "on_job_success", "on_job_failure")
REPLIES: Final = ("before_start", "after_completion")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    body: str
    adaptor: str = "common"
    credential: str | None = None
    #: The file the body was read from, relative to the project file (kept by ``pull``).
    body_file: str | None = None
    #: ``python`` or ``javascript`` as the file says; ``None``: the adaptor's (:attr:`runs_in`).
    language: str | None = None
    #: A Python job's other packages, as the file writes them (``httpx>=0.27``).
    requirements: tuple[str, ...] = ()
    #: The name of a keychain of the project (made with ``fulmen keychains set``) that picks
    #: the job's credential by each run's input, instead of ``credential`` (issue 19).
    keychain: str | None = None

    @property
    def runs_in(self) -> str:
        """The job's language: the one said, else JavaScript for an OpenFn adaptor."""
        return language_of(self.adaptor, self.language)

    def as_job(self) -> Job:
        """The job as far as its language and packages go (what the rules about them read)."""
        return Job(
            id=self.name,
            name=self.name,
            body="",
            adaptor=self.adaptor,
            language=self.runs_in,
            requirements=self.requirements,
        )


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    #: What edges call it; its type unless the file names it.
    name: str
    type: str = "webhook"
    enabled: bool = True
    cron: str | None = None
    timezone: str | None = None
    #: A webhook's reply: ``before_start`` (the default, ``None``) or ``after_completion``.
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    #: A trigger's or a job's name.
    source: str
    #: A job's name.
    target: str
    condition: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    jobs: tuple[JobSpec, ...]
    triggers: tuple[TriggerSpec, ...] = ()
    edges: tuple[EdgeSpec, ...] = ()
    concurrency: int | None = None

    def trigger(self, name: str) -> TriggerSpec | None:
        return next((t for t in self.triggers if t.name == name), None)


@dataclass(frozen=True, slots=True)
class ProjectSpec:
    name: str
    workflows: tuple[WorkflowSpec, ...] = ()
    id: str | None = None
    concurrency: int | None = None
    credentials: tuple[str, ...] = ()


def default_condition(source_is_trigger: bool) -> str:
    """A trigger's edge always fires; a job's fires when the job succeeded (as Lightning's
    editor makes them)."""
    return "always" if source_is_trigger else "on_job_success"


def adaptor_problem(name: str, language: str = PYTHON) -> str | None:
    """Why ``name`` is not an adaptor of a job in ``language``, or ``None``: in the words of
    the one reader of each language's adaptors (fulmen.python_requirements for Python,
    fulmen.adaptor_versions for JavaScript). What can be checked here, away from any worker
    or registry: whether a module is installed beside the worker is the worker's business
    (a run reports it), whether a package or version exists the coordinator's (at deploy)."""
    try:
        if language == PYTHON:
            python_requirements.read_adaptor(name)
        else:
            parse_request(name)
    except InputError as error:
        return error.message
    return None


def load(path: Path) -> ProjectSpec:
    """Read the project file at ``path``; ``body_file`` paths are relative to its directory.

    Raises:
        ProjectFileError: every problem found, each with the path of its key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectFileError(str(path), [("", f"cannot read it: {exc.strerror}")]) from None
    return parse(text, base=path.parent, file=str(path))


def parse(text: str, *, base: Path, file: str = "project.yaml") -> ProjectSpec:
    """Read a project file's text; ``base`` is where ``body_file`` paths start.

    Raises:
        ProjectFileError: every problem found, each with the path of its key.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProjectFileError(file, [("", f"{where}{problem}")]) from None
    reader = _Reader(base)
    spec = reader.project(document)
    if reader.problems or spec is None:
        raise ProjectFileError(file, reader.problems or [("", "empty")])
    return spec


class _Reader(Reader):
    """Walks the parsed document (fulmen.validation says every fault the same way as for
    plans and runner specs); ``base`` is where ``body_file`` paths start."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    # -- the file ------------------------------------------------------------------------

    def project(self, document: Any) -> ProjectSpec | None:
        node = self.mapping(
            document,
            "",
            frozenset({"name", "id", "concurrency", "credentials", "workflows"}),
        )
        if node is None:
            return None
        name = self.text(node, "name", "", required=True)
        credentials = self.credentials(node)
        workflows: list[WorkflowSpec] = []
        raw = node.get("workflows") or {}
        if not isinstance(raw, dict):
            self.problem("workflows", f"must be a mapping of names to workflows, not {kind(raw)}")
            raw = {}
        for key, value in raw.items():
            workflow = self.workflow(str(key), value, f"workflows.{key}", credentials)
            if workflow is not None:
                workflows.append(workflow)
        return ProjectSpec(
            name=name or "",
            workflows=tuple(workflows),
            id=self.text(node, "id", ""),
            concurrency=self.positive(node, "concurrency", ""),
            credentials=credentials,
        )

    def credentials(self, node: Mapping[str, Any]) -> tuple[str, ...]:
        names: list[str] = []
        for index, value in enumerate(self.items(node, "credentials", "")):
            if not isinstance(value, str) or not value.strip():
                self.problem(f"credentials[{index}]", "must be a credential's name")
            elif value in names:
                self.problem(f"credentials[{index}]", f"{value!r} is listed twice")
            else:
                names.append(value)
        return tuple(names)

    def workflow(
        self, name: str, value: Any, path: str, credentials: tuple[str, ...]
    ) -> WorkflowSpec | None:
        node = self.mapping(value, path, frozenset({"concurrency", "triggers", "jobs", "edges"}))
        if node is None:
            return None
        if not node.get("jobs"):
            self.problem(join(path, "jobs"), "a workflow needs at least one job")
        jobs = [
            job
            for index, item in enumerate(self.items(node, "jobs", path))
            if (job := self.job(item, f"{path}.jobs[{index}]", credentials)) is not None
        ]
        triggers = [
            trigger
            for index, item in enumerate(self.items(node, "triggers", path))
            if (trigger := self.trigger(item, f"{path}.triggers[{index}]")) is not None
        ]
        self.unique_names(path, jobs, triggers)
        self.one_environment(path, jobs)
        job_names = {job.name: job.runs_in for job in jobs}
        trigger_names = {trigger.name for trigger in triggers}
        edges = [
            edge
            for index, item in enumerate(self.items(node, "edges", path))
            if (edge := self.edge(item, f"{path}.edges[{index}]", job_names, trigger_names))
        ]
        if cycle := find_cycle((edge.source, edge.target) for edge in edges):
            self.problem(join(path, "edges"), "the edges make a cycle: " + " -> ".join(cycle))
        return WorkflowSpec(
            name=name,
            jobs=tuple(jobs),
            triggers=tuple(triggers),
            edges=tuple(edges),
            concurrency=self.positive(node, "concurrency", path),
        )

    def unique_names(self, path: str, jobs: list[JobSpec], triggers: list[TriggerSpec]) -> None:
        """Edges name their ends, so a name may stand for one job or trigger only."""
        seen: set[str] = set()
        named = (("triggers", [t.name for t in triggers]), ("jobs", [j.name for j in jobs]))
        for group, names in named:
            for index, name in enumerate(names):
                if name in seen:
                    hint = " (a trigger is named by its type unless it has a name)"
                    message = f"{name!r} is used twice{hint if group == 'triggers' else ''}"
                    self.problem(f"{path}.{group}[{index}].name", message)
                seen.add(name)

    def one_environment(self, path: str, jobs: list[JobSpec]) -> None:
        """A workflow's Python jobs share one environment: no package pinned at two versions."""
        try:
            problems = python_requirements.conflicts(
                Plan(id="", jobs=tuple(job.as_job() for job in jobs))
            )
        except InputError:
            return  # an adaptor or requirement that does not read is said where it is
        for problem in problems:
            self.problem(join(path, "jobs"), problem)

    def job(self, value: Any, path: str, credentials: tuple[str, ...]) -> JobSpec | None:
        keys = frozenset(
            {
                "name",
                "adaptor",
                "body",
                "body_file",
                "credential",
                "keychain",
                "language",
                "requirements",
            }
        )
        node = self.mapping(value, path, keys)
        if node is None:
            return None
        name = self.text(node, "name", path, required=True)
        adaptor = self.text(node, "adaptor", path) or "common"
        language = self.choice(node, "language", path, LANGUAGES)
        runs_in = language_of(adaptor, language)
        if (problem := adaptor_problem(adaptor, runs_in)) is not None:
            self.problem(join(path, "adaptor"), problem)
        requirements = self.requirements(node, path, runs_in)
        credential = self.text(node, "credential", path)
        if credential is not None and credential not in credentials:
            self.problem(
                join(path, "credential"), f"{credential!r} is not listed under credentials"
            )
        keychain = self.text(node, "keychain", path)
        if keychain is not None and credential is not None:
            self.problem(join(path, "keychain"), "name a credential or a keychain, not both")
        body, body_file = self.body(node, path)
        if body is not None and (fault := body_problem(body, runs_in)) is not None:
            where = join(path, "body_file" if body_file else "body")
            self.problem(where, f"{body_file + ': ' if body_file else ''}{fault}")
        if name is None or body is None:
            return None
        return JobSpec(name, body, adaptor, credential, body_file, language, requirements, keychain)

    def requirements(self, node: Mapping[str, Any], path: str, language: str) -> tuple[str, ...]:
        """A Python job's requirements, each read by fulmen.python_requirements."""
        texts = self.texts(node, "requirements", path)
        if texts and language != PYTHON:
            message = "requirements are for Python jobs; a JavaScript job's package is its adaptor"
            self.problem(join(path, "requirements"), message)
        for index, text in enumerate(texts):
            try:
                python_requirements.read_requirement(text)
            except InputError as error:
                self.problem(join(join(path, "requirements"), index), error.message)
        return tuple(texts)

    def body(self, node: Mapping[str, Any], path: str) -> tuple[str | None, str | None]:
        inline = self.text(node, "body", path, empty=True)
        file = self.text(node, "body_file", path)
        if inline is not None and file is not None:
            self.problem(join(path, "body_file"), "give body or body_file, not both")
            return None, None
        if file is None:
            if inline is None:
                self.problem(join(path, "body"), "is required (or body_file)")
            return inline, None
        try:
            return (self.base / file).read_text(encoding="utf-8"), file
        except OSError as exc:
            self.problem(join(path, "body_file"), f"cannot read {file!r}: {exc.strerror}")
        except UnicodeDecodeError:
            self.problem(join(path, "body_file"), f"{file!r} is not UTF-8 text")
        return None, None

    def trigger(self, value: Any, path: str) -> TriggerSpec | None:
        keys = frozenset({"name", "type", "enabled", "cron", "timezone", "reply"})
        node = self.mapping(value, path, keys)
        if node is None:
            return None
        kind = self.choice(node, "type", path, TRIGGER_TYPES)
        if kind is None:
            if "type" not in node:
                self.problem(join(path, "type"), f"is required ({', '.join(TRIGGER_TYPES)})")
            return None
        expression = self.text(node, "cron", path)
        timezone = self.text(node, "timezone", path)
        reply = self.choice(node, "reply", path, REPLIES)
        if kind == "cron":
            self.schedule(path, expression, timezone)
        else:
            for key in ("cron", "timezone"):
                if key in node:
                    self.problem(join(path, key), "only a cron trigger has one")
        if kind != "webhook" and "reply" in node:
            self.problem(join(path, "reply"), "only a webhook trigger has one")
        return TriggerSpec(
            name=self.text(node, "name", path) or kind,
            type=kind,
            enabled=self.flag(node, "enabled", path),
            cron=expression,
            timezone=timezone,
            reply=None if reply == "before_start" else reply,
        )

    def schedule(self, path: str, expression: str | None, timezone: str | None) -> None:
        if expression is None:
            self.problem(join(path, "cron"), "is required for a cron trigger")
            return
        try:
            cron.parse(expression, timezone)
        except InputError as exc:
            key = "timezone" if exc.code == "bad_timezone" else "cron"
            self.problem(join(path, key), exc.message)

    def edge(
        self, value: Any, path: str, jobs: Mapping[str, str], triggers: set[str]
    ) -> EdgeSpec | None:
        """An edge between named ends; ``jobs`` maps each job's name to its language: the
        language of the conditions of the edges leaving it, and of a trigger's edge to it."""
        node = self.mapping(value, path, frozenset({"from", "to", "condition", "enabled"}))
        if node is None:
            return None
        source = self.text(node, "from", path, required=True)
        target = self.text(node, "to", path, required=True)
        if source is not None and source not in jobs and source not in triggers:
            self.problem(join(path, "from"), f"no trigger or job is named {source!r}")
            source = None
        if target is not None and target not in jobs:
            self.problem(join(path, "to"), f"no job is named {target!r}")
            target = None
        condition = self.text(node, "condition", path)
        language = jobs.get(source or "") or jobs.get(target or "", PYTHON)
        if condition is not None and (fault := condition_problem(condition, language)):
            message = f"{', '.join(CONDITIONS)} or a {LANGUAGE_NAMES[language]} expression; {fault}"
            self.problem(join(path, "condition"), message)
        if source is None or target is None:
            return None
        return EdgeSpec(
            source=source,
            target=target,
            condition=condition or default_condition(source in triggers),
            enabled=self.flag(node, "enabled", path),
        )
