"""What JavaScript jobs' adaptors resolve to now, saving nothing (issue 15).

A workflow saves each JavaScript job's adaptor as the exact version the npm registry offers at
the save (fulmen.coordinator.resolution). ``fulmen deploy`` asks here first, for every adaptor
of its file, so that a file naming a package or version that does not exist (or a registry
that cannot be reached) changes nothing at all, not even its first workflows; and so that it
compares what it would save with what is deployed version for version.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request

from fulmen.coordinator.api.schemas.adaptors import ResolvedAdaptor, ResolvedDoc
from fulmen.coordinator.api.schemas.common import ErrorDoc
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.resolution import resolve_adaptors

__all__ = ["MAX_ASKED", "router"]

router = APIRouter()

#: Adaptors one request may ask about: a project file's distinct ones fit many times over.
MAX_ASKED: Final = 100

_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    502: {"model": ErrorDoc, "description": "The npm registry could not be asked"},
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
