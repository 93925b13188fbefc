"""What a workflow's jobs and edges must hold to be saved, in the language each is written in.

Issue 15: a job is Python or JavaScript (``Job.runs_in``), and an edge's condition is in the
language the worker evaluates it in (``Plan.condition_language``): its source job's, or, for a
trigger's edge, the language of the job it leads to. A body or condition that does
not parse is refused when the workflow is saved, naming the job or edge and the line and
column, so that no run of it crashes with a CompileError later. A JavaScript job's adaptor is
saved only as an exact version (the coordinator resolves ``@latest``, ranges and the short
names before it saves, fulmen.coordinator.resolution), so that no run ever waits on the npm
registry. Pure: the coordinator's API calls :func:`check_sources` before it asks the registry
anything, and the store calls both checks again on every save.
"""

from __future__ import annotations

from fulmen.adaptor_versions import is_resolved
from fulmen.errors import InputError
from fulmen.plan import JAVASCRIPT, LANGUAGE_NAMES, LANGUAGES, Edge, Job, Plan
from fulmen.store.models.catalog import Workflow
from fulmen.syntax import body_problem, condition_problem

__all__ = ["check_adaptors", "check_sources"]


def check_sources(workflow: Workflow) -> None:
    """Refuse a job whose language is not one Fulmen knows, whose body does not parse in it,
    or an edge whose condition does not parse in the language it is evaluated in.

    Raises:
        InputError: ``bad_language`` or ``syntax_error``, naming the job or the edge.
    """
    for job in workflow.jobs:
        if job.runs_in not in LANGUAGES:
            raise InputError(
                f"job {_job(job)}: language is one of {', '.join(LANGUAGES)}, not {job.runs_in!r}",
                code="bad_language",
            )
        problem = body_problem(job.body, job.runs_in)
        if problem is not None:
            language = LANGUAGE_NAMES[job.runs_in]
            raise InputError(
                f"job {_job(job)}: the body does not parse as {language}: {problem}",
                code="syntax_error",
            )
    jobs = {job.id: job for job in workflow.jobs}
    plan = Plan(id=workflow.id, jobs=workflow.jobs, edges=workflow.edges)
    for edge in workflow.edges:
        language = plan.condition_language(edge)
        problem = condition_problem(edge.condition, language)
        if problem is not None:
            raise InputError(
                f"edge {_edge(edge, jobs)}: the condition does not parse as "
                f"{LANGUAGE_NAMES[language]}: {problem}",
                code="syntax_error",
            )


def check_adaptors(workflow: Workflow) -> None:
    """Refuse a JavaScript job whose adaptor is not an exact version.

    Raises:
        InputError: ``unresolved_adaptor``, naming the job.
    """
    for job in workflow.jobs:
        if job.runs_in == JAVASCRIPT and not is_resolved(job.adaptor):
            raise InputError(
                f"job {_job(job)}: a JavaScript job's adaptor is saved as an exact version of "
                f"an @openfn/language-* package (@openfn/language-common@3.3.4), not "
                f"{job.adaptor!r}",
                code="unresolved_adaptor",
            )


def _job(job: Job) -> str:
    return f"{job.name!r} ({job.id})" if job.name else job.id


def _edge(edge: Edge, jobs: dict[str, Job]) -> str:
    def end(node: str) -> str:
        job = jobs.get(node)
        return job.name if job is not None and job.name else node

    return f"{edge.id} ({end(edge.source_id)} -> {end(edge.target_job_id)})"
