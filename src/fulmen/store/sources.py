"""What a workflow's jobs and edges must hold to be saved, in the language each is written in.

Issue 15: a job is Python or JavaScript (``Job.runs_in``), and an edge's condition is in the
language the worker evaluates it in (``Plan.condition_language``): its source job's, or, for a
trigger's edge, the language of the job it leads to. A body or condition that does
not parse is refused when the workflow is saved, naming the job or edge and the line and
column, so that no run of it crashes with a CompileError later. A JavaScript job's adaptor is
saved only as an exact version (the coordinator resolves ``@latest``, ranges and the short
names before it saves, fulmen.coordinator.resolution), so that no run ever waits on the npm
registry.

Issue 16: a Python job names its packages (its adaptor, when it is a package, and its
``requirements``), read by fulmen.python_requirements alone; each is saved at one exact version
(fulmen.coordinator.python_packages resolves them), so that every run of a version installs
the same thing and a plan never reaches a worker unresolved. A workflow's Python jobs share
one environment, so two of them may not pin one package at two versions. Only Python jobs have
requirements: a JavaScript job's one package is its adaptor.

Pure: the coordinator's API calls :func:`check_sources` and :func:`check_packages` before it
asks a registry anything, and the store calls every check again on every save.
"""

from __future__ import annotations

from collections.abc import Sequence

from fulmen import python_requirements
from fulmen.adaptor_versions import is_resolved
from fulmen.errors import InputError
from fulmen.plan import JAVASCRIPT, LANGUAGE_NAMES, LANGUAGES, PYTHON, Edge, Job, Plan
from fulmen.store.models.catalog import Workflow
from fulmen.syntax import body_problem, condition_problem

__all__ = ["check_adaptors", "check_packages", "check_sources"]


def check_sources(workflow: Workflow) -> None:
    """Refuse a job whose language is not one Fulmen knows, whose body does not parse in it,
    or an edge whose condition does not parse in the language it is evaluated in.

    Raises:
        InputError: ``bad_language`` or ``syntax_error``, naming the job or the edge, with
        the value's path in ``field`` (``jobs[1].body``) and a body's faulty ``line``.
    """
    for index, job in enumerate(workflow.jobs):
        if job.runs_in not in LANGUAGES:
            raise InputError(
                f"job {_job(job)}: language is one of {', '.join(LANGUAGES)}, not {job.runs_in!r}",
                code="bad_language",
                field=f"jobs[{index}].language",
            )
        problem = body_problem(job.body, job.runs_in)
        if problem is not None:
            language = LANGUAGE_NAMES[job.runs_in]
            raise InputError(
                f"job {_job(job)}: the body does not parse as {language}: {problem}",
                code="syntax_error",
                field=f"jobs[{index}].body",
                line=problem.line,
            )
    jobs = {job.id: job for job in workflow.jobs}
    plan = Plan(id=workflow.id, jobs=workflow.jobs, edges=workflow.edges)
    for index, edge in enumerate(workflow.edges):
        language = plan.condition_language(edge)
        problem = condition_problem(edge.condition, language)
        if problem is not None:
            raise InputError(
                f"edge {_edge(edge, jobs)}: the condition does not parse as "
                f"{LANGUAGE_NAMES[language]}: {problem}",
                code="syntax_error",
                field=f"edges[{index}].condition",
            )


def check_packages(jobs: Sequence[Job]) -> None:
    """Refuse a Python job whose adaptor or a requirement cannot be read, a JavaScript job
    with requirements, and two Python jobs pinning one package at two versions.

    Raises:
        InputError: ``bad_adaptor`` or ``bad_requirement`` (``field``: the value's path,
        ``jobs[1].requirements[0]``), or ``conflicting_requirements``; each naming the job.
    """
    for index, job in enumerate(jobs):
        where = f"jobs[{index}]"
        if job.runs_in != PYTHON:
            if job.requirements:
                raise InputError(
                    f"job {_job(job)}: requirements are for Python jobs; a JavaScript job's "
                    "package is its adaptor",
                    code="bad_requirement",
                    field=f"{where}.requirements",
                )
            continue
        try:
            python_requirements.read_adaptor(job.adaptor)
        except InputError as error:
            raise _at(job, f"{where}.adaptor", error) from None
        for number, text in enumerate(job.requirements):
            try:
                python_requirements.read_requirement(text)
            except InputError as error:
                raise _at(job, f"{where}.requirements[{number}]", error) from None
    problems = python_requirements.conflicts(Plan(id="", jobs=tuple(jobs)))
    if problems:
        raise InputError(problems[0], code="conflicting_requirements")


def check_adaptors(workflow: Workflow) -> None:
    """Refuse a JavaScript job whose adaptor is not an exact version, and a Python job whose
    package adaptor or a requirement is not (the store's last word: the coordinator resolves
    them before it saves). Call :func:`check_packages` first: this one reads what it read.

    Raises:
        InputError: ``unresolved_adaptor`` or ``unresolved_requirement``, naming the job.
    """
    for index, job in enumerate(workflow.jobs):
        if job.runs_in == JAVASCRIPT and not is_resolved(job.adaptor):
            raise InputError(
                f"job {_job(job)}: a JavaScript job's adaptor is saved as an exact version of "
                f"an @openfn/language-* package (@openfn/language-common@3.3.4), not "
                f"{job.adaptor!r}",
                code="unresolved_adaptor",
                field=f"jobs[{index}].adaptor",
            )
        if job.runs_in == PYTHON and not python_requirements.is_resolved(job):
            _refuse_unpinned(job, f"jobs[{index}]")


def _refuse_unpinned(job: Job, where: str) -> None:
    """Raise for the first of a Python job's packages that is not pinned to one version."""
    package = python_requirements.read_adaptor(job.adaptor).requirement
    if package is not None and python_requirements.exact_version(package) is None:
        raise InputError(
            f"job {_job(job)}: a Python job's package adaptor is saved at one exact version "
            f"(pandas@2.2.3), not {job.adaptor!r}",
            code="unresolved_adaptor",
            field=f"{where}.adaptor",
        )
    for number, text in enumerate(job.requirements):
        if python_requirements.exact_version(python_requirements.read_requirement(text)) is None:
            raise InputError(
                f"job {_job(job)}: a Python job's requirements are saved at exact versions "
                f"(httpx==0.28.1), not {text!r}",
                code="unresolved_requirement",
                field=f"{where}.requirements[{number}]",
            )


def _at(job: Job, field: str, error: InputError) -> InputError:
    """``error`` again, naming the job and the value's path."""
    return InputError(f"job {_job(job)}: {error.message}", code=error.code, field=field)


def _job(job: Job) -> str:
    return f"{job.name!r} ({job.id})" if job.name else job.id


def _edge(edge: Edge, jobs: dict[str, Job]) -> str:
    def end(node: str) -> str:
        job = jobs.get(node)
        return job.name if job is not None and job.name else node

    return f"{edge.id} ({end(edge.source_id)} -> {end(edge.target_job_id)})"
