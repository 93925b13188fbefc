"""Which project a thing belongs to (issue 18): what the coordinator asks before it lets a
caller read or change the thing by its id (coordinator/guard.py), one small query per kind.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from fulmen.errors import NotFoundError
from fulmen.store.db import Tx

__all__ = ["KINDS", "ThingKind", "project_of"]

#: What is found by an id of its own outside its project's path (``/api/runs/{id}``...).
ThingKind = Literal[
    "workflow",
    "trigger",
    "snapshot",
    "run",
    "step",
    "work_order",
    "dataclip",
    "credential",
    "keychain",
    "webhook_auth_method",
]
KINDS: Final[tuple[ThingKind, ...]] = get_args(ThingKind)


async def project_of(tx: Tx, kind: ThingKind, thing_id: str) -> str:
    """The id of the project the ``kind`` with id ``thing_id`` belongs to.

    Raises:
        NotFoundError: there is no such thing (``field`` is ``id``).
    """
    if kind not in KINDS:
        raise ValueError(f"not a kind of thing: {kind!r}")
    row = await tx.fetchone(f"project_of_{kind}", {"id": thing_id})
    if row is None:
        words = kind.replace("_", " ")
        raise NotFoundError(f"{words} {thing_id} does not exist", field="id")
    project_id: str = row["project_id"]
    return project_id
