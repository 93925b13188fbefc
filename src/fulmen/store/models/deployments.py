"""A project's whole desired state, written at once (issue 21), and what was written:
deployments.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from fulmen.store.models.catalog import Project, StoredWorkflow, Workflow
from fulmen.store.models.credentials import CredentialInfo, NewCredential

__all__ = ["Change", "Deployed", "Deployment", "WorkflowSave"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkflowSave:
    """One workflow of a deployment, as it is to be stored (checked and resolved)."""

    workflow: Workflow
    #: Created (a new id), else the stored one of its id is replaced.
    new: bool
    #: For a replace: the version the caller read (ConflictError ``stale_version`` if
    #: another save came first); ``None`` skips the check.
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    """What one deploy writes, each thing checked and resolved beforehand: written in one
    transaction, in this order (project, credentials, workflows, deletions), or not at all.
    Only what changes is here: a thing already as wanted is left out."""

    #: The project's settings: created when ``create``, else replacing the stored ones;
    #: ``None``: the project is kept as it is.
    project: Project | None = None
    create: bool = False
    #: A user made the new project's owner (with ``create``).
    owner_id: str | None = None
    #: Credentials to create (an id already stored is refused, never overwritten).
    credentials: tuple[NewCredential, ...] = ()
    workflows: tuple[WorkflowSave, ...] = ()
    #: Ids of workflows to delete.
    deletions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """One thing a deployment wrote: as it was (``None``: created) and as it is (``None``:
    deleted)."""

    before: T | None
    after: T | None


@dataclass(frozen=True, slots=True)
class Deployed:
    """What a deployment wrote, in the order it was written; ``before`` read in the same
    transaction."""

    #: ``None``: the project was kept as it was.
    project: Change[Project] | None
    credentials: tuple[Change[CredentialInfo], ...]
    #: The saves in the deployment's order, then the deletions.
    workflows: tuple[Change[StoredWorkflow], ...]
