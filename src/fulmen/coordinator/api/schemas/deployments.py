"""A project's whole desired state, and what deploying it did: the documents of
api/deployments.py."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.catalog import WorkflowIn
from fulmen.coordinator.api.schemas.common import MAX_INT32, InputDoc

__all__ = [
    "MAX_PARTS",
    "Change",
    "DeployedCredential",
    "DeployedProject",
    "DeployedWorkflow",
    "DeploymentCredentialIn",
    "DeploymentDoc",
    "DeploymentIn",
    "DeploymentProjectIn",
    "DeploymentWorkflowIn",
]

#: Credentials, workflows or deletions one deployment may hold (its body is at most the API's
#: 1 MiB besides): far more than a project has.
MAX_PARTS: Final = 1000
#: An id given in a body: as a path would carry it (no ``/``).
Id = Annotated[str, Field(min_length=1, pattern="^[^/]+$")]


class DeploymentProjectIn(InputDoc):
    id: Id | None = Field(
        default=None,
        description="The project's id: the project to update, or the id a new one gets. "
        "Absent: the caller's project of this name (422, ambiguous, if several are), else a "
        "new project with a new id",
    )
    name: str = Field(min_length=1)
    #: Runs of the project in flight at once (claimed or started); ``null``: no limit.
    concurrency: int | None = Field(default=None, gt=0, le=MAX_INT32)


class DeploymentCredentialIn(InputDoc):
    """A credential the project must have, by name: one it has is kept as it is (value
    included); a new one is created empty (set its value with ``PUT
    /api/projects/{project_id}/credentials/{credential_id}``)."""

    name: str = Field(min_length=1)
    id: Id | None = Field(
        default=None,
        description="The id a new one gets (absent: a new id), as the workflows' jobs name "
        "it; if the project has one of this name, its id (409 if it is another)",
    )


class DeploymentWorkflowIn(WorkflowIn):
    """A whole workflow: it replaces the stored one of its id, or is created."""

    expected_version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="The version of the stored workflow you read: 409 (stale_version) if "
        "another save came first, or it was deleted since. Absent: replaced whatever its "
        "version, or created",
    )


class DeploymentIn(InputDoc):
    """A project's desired state, deployed all at once: every part is checked and resolved
    before anything is written, then everything is written in one transaction, or nothing."""

    project: DeploymentProjectIn
    credentials: list[DeploymentCredentialIn] = Field(default=[], max_length=MAX_PARTS)
    workflows: list[DeploymentWorkflowIn] = Field(default=[], max_length=MAX_PARTS)
    deletions: list[Id] = Field(
        default=[],
        max_length=MAX_PARTS,
        description="Ids of the project's workflows to delete (with their runs)",
    )


Change = Literal["created", "updated", "unchanged", "deleted"]


class DeployedProject(BaseModel):
    id: str
    name: str
    change: Literal["created", "updated", "unchanged"]


class DeployedCredential(BaseModel):
    id: str
    name: str
    change: Literal["created", "unchanged"]


class DeployedWorkflow(BaseModel):
    id: str
    name: str
    change: Change
    #: Its version now; ``null`` once deleted.
    version: int | None
    webhooks: list[str] = Field(
        description="The ids of the webhook triggers the deployment made: each takes "
        "requests at /i/{id}"
    )


class DeploymentDoc(BaseModel):
    """What a deployment did to each part, in the order asked: the workflows asked for,
    then the ones deleted."""

    project: DeployedProject
    credentials: list[DeployedCredential]
    workflows: list[DeployedWorkflow]
