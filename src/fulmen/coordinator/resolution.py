"""A workflow's JavaScript adaptors at exact versions, before it is saved (issue 15).

Lightning saves ``@openfn/language-common@latest`` as the version ``latest`` is on the day of
the save, and so does Fulmen: each JavaScript job's adaptor (a short name, a tag, a range, or
an exact version, which must exist) becomes the exact version the npm registry offers now
(fulmen.adaptor_versions decides which; fulmen.coordinator.registry asks). A workflow is never
stored with an unresolved JavaScript adaptor (the store refuses one), so a plan sent to a
worker names only exact versions and no run waits on the registry. Python jobs' adaptors are
left as written.

Everything is asked before anything is saved: a package or version that does not exist, or a
registry that cannot be reached, refuses the whole save, naming the job. An exact adaptor
that the workflow already had when it was last saved is not asked about again, so that
editing a job's body does not depend on the registry being up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Iterable
from dataclasses import replace
from typing import TypeVar

from fulmen.adaptor_versions import parse_request, pick
from fulmen.coordinator.registry import NpmRegistry, RegistrySession
from fulmen.errors import InputError, RegistryError
from fulmen.plan import JAVASCRIPT, Job
from fulmen.store import Workflow

__all__ = ["checked_adaptors", "resolve_adaptors", "resolve_workflow"]

T = TypeVar("T")


async def resolve_workflow(
    workflow: Workflow, registry: NpmRegistry, *, checked: Collection[str] = ()
) -> Workflow:
    """``workflow`` with each JavaScript job's adaptor exact, and its language said.

    Args:
        checked: exact adaptors known to exist (those of the version being replaced).

    Raises:
        InputError: ``bad_adaptor``, ``unknown_adaptor`` or ``unknown_adaptor_version``;
        RegistryError: ``registry_unreachable`` or ``registry_error``; each naming the job.
    """
    todo = [job for job in workflow.jobs if job.runs_in == JAVASCRIPT]
    if all(job.adaptor in checked for job in todo):
        return workflow
    exact: dict[str, str] = {}
    async with registry.session() as session:
        for job in todo:
            if job.adaptor not in checked and job.adaptor not in exact:
                exact[job.adaptor] = await _for_job(job, _exact(job.adaptor, session))
    return replace(
        workflow,
        jobs=tuple(
            replace(job, adaptor=exact.get(job.adaptor, job.adaptor), language=JAVASCRIPT)
            if job.runs_in == JAVASCRIPT
            else job
            for job in workflow.jobs
        ),
    )


async def resolve_adaptors(adaptors: Iterable[str], registry: NpmRegistry) -> dict[str, str]:
    """Each of ``adaptors`` (as a JavaScript job would name it) with the exact adaptor it
    means now: what ``fulmen deploy`` asks before it saves anything.

    Raises:
        InputError, RegistryError: as :func:`resolve_workflow`, naming the adaptor.
    """
    wanted = list(dict.fromkeys(adaptors))
    if not wanted:
        return {}
    async with registry.session() as session:
        return {adaptor: await _exact(adaptor, session) for adaptor in wanted}


def checked_adaptors(workflow: Workflow) -> frozenset[str]:
    """The exact adaptors of a saved workflow's JavaScript jobs: they existed when saved."""
    return frozenset(job.adaptor for job in workflow.jobs if job.runs_in == JAVASCRIPT)


async def _exact(adaptor: str, session: RegistrySession) -> str:
    request = parse_request(adaptor)
    return pick(request, await session.packument(request.package))


async def _for_job(job: Job, pending: Awaitable[T]) -> T:
    """``pending``'s result; its error, if any, again with the job's name in front."""
    try:
        return await pending
    except InputError as error:
        raise InputError(f"job {_name(job)}: {error.message}", code=error.code) from None
    except RegistryError as error:
        raise RegistryError(f"job {_name(job)}: {error.message}", code=error.code) from None


def _name(job: Job) -> str:
    return f"{job.name!r} ({job.id})" if job.name else job.id
