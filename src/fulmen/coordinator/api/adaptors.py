"""What jobs' packages resolve to now, saving nothing (issues 15 and 16).

A workflow saves each JavaScript job's adaptor as the exact version the npm registry offers at
the save (fulmen.coordinator.resolution), and each Python job's packages as the exact versions
the Python package index offers (fulmen.coordinator.python_packages). ``fulmen deploy`` asks
here first, for every adaptor of its file and the Python packages of each of its workflows,
so that a file naming a package or version that does not exist (or a registry that cannot be
reached) changes nothing at all, not even its first workflows; and so that it compares what it
would save with what is deployed version for version.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request

from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.adaptors import (
    PackagesDoc,
    PackagesIn,
    PackagesJob,
    ResolvedAdaptor,
    ResolvedDoc,
)
from fulmen.coordinator.api.schemas.common import ErrorDoc
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on
from fulmen.coordinator.python_packages import checked_pins, resolve_jobs
from fulmen.coordinator.resolution import resolve_adaptors
from fulmen.plan import Job, language_of

__all__ = ["MAX_ASKED", "router"]

router = APIRouter()

#: Adaptors one request may ask about: a project file's distinct ones fit many times over.
MAX_ASKED: Final = 100

_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    502: {"model": ErrorDoc, "description": "The npm registry could not be asked"},
}
_PYTHON_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    502: {"model": ErrorDoc, "description": "The Python package index could not be asked"},
    503: {"model": ErrorDoc, "description": "uv, which resolves Python packages, is missing"},
}

Adaptors = Annotated[
    list[str],
    Query(
        min_length=1,
        max_length=MAX_ASKED,
        description="An adaptor as a JavaScript job names it: common, http, or an "
        "@openfn/language-* package with an optional version, npm range or tag",
    ),
]


@router.get("/adaptors/resolved", tags=["adaptors"], responses=_ANSWERS)
async def resolved(request: Request, adaptor: Adaptors) -> ResolvedDoc:
    """Each adaptor asked about, with the exact version a save would give it now."""
    c: Coordinator = request.app.state.coordinator
    exact = await resolve_adaptors(adaptor, c.registry)
    return ResolvedDoc(items=[ResolvedAdaptor(adaptor=a, resolved=r) for a, r in exact.items()])


@router.post("/python-packages/resolved", tags=["adaptors"], responses=_PYTHON_ANSWERS)
async def python_packages(request: Request, me: Caller, asked: PackagesIn) -> PackagesDoc:
    """The jobs of one workflow with their Python packages as a save would keep them now:
    every package adaptor and requirement at its exact version, or the 422 or 502 the save
    would answer (naming the job by its name, and the value's path in ``field``)."""
    c: Coordinator = request.app.state.coordinator
    checked: frozenset[str] = frozenset()
    if asked.workflow_id is not None:
        await require_on(c.store, me, Permission.READ, "workflow", asked.workflow_id)
        checked = checked_pins((await c.store.get_workflow(asked.workflow_id)).workflow)
    jobs = [
        Job(
            id=job.name,
            body="",
            adaptor=job.adaptor,
            language=language_of(job.adaptor, job.language),
            requirements=tuple(job.requirements),
        )
        for job in asked.jobs
    ]
    resolved = await resolve_jobs(jobs, c.python_repo, checked=checked)
    return PackagesDoc(
        jobs=[
            PackagesJob(name=job.id, adaptor=job.adaptor, requirements=list(job.requirements))
            for job in resolved
        ]
    )
