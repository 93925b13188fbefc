"""A deployment (issue 21): a project, its credentials and workflows written in one
transaction, with the audit records of what changed, or nothing at all.

``Store.together()`` would not do: a refused write in a block is rolled back alone and its
siblings stand. Here every write is a statement of one transaction, so the first refusal
(a stale version, an id taken meanwhile) takes back everything written before it, records
included. The functions composed are the ones each single change uses (catalog.py,
credentials.py, members.py, audit.py), so a deployment checks what they check.

A refusal names the part of the deployment at fault (:func:`blame`): the workflow by its
name in front of the message, and its place in ``field`` (``workflows[1].lock_version``),
as the REST API's deployment document has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from fulmen.errors import ConflictError, FulmenError, InputError, PlanError, StoreError
from fulmen.store import audit, catalog, credentials, members
from fulmen.store.cipher import CredentialCipher
from fulmen.store.db import Tx
from fulmen.store.models.audit import NewAuditRecord
from fulmen.store.models.catalog import Project, StoredWorkflow
from fulmen.store.models.credentials import CredentialInfo
from fulmen.store.models.deployments import Change, Deployed, Deployment, WorkflowSave
from fulmen.store.models.users import Role

__all__ = ["blame", "deploy"]


async def deploy(
    tx: Tx,
    cipher: CredentialCipher | None,
    deployment: Deployment,
    record: Callable[[Deployed], Sequence[NewAuditRecord]],
    now: datetime,
) -> Deployed:
    """Write ``deployment``, then append the records ``record`` makes of what was written;
    what was written.

    Raises:
        what catalog, credentials and members raise, naming the part at fault (:func:`blame`);
        ConflictError: a new credential's id is taken.
    """
    project = await _project(tx, deployment, now)
    made: list[Change[CredentialInfo]] = []
    for index, new in enumerate(deployment.credentials):
        try:
            if await tx.fetchone("get_credential", {"id": new.id}) is not None:
                raise ConflictError(f"credential {new.id} already exists", field="id")
            made.append(Change(None, await credentials.put_credential(tx, cipher, new, now)))
        except FulmenError as error:
            raise blame(error, f"credential {new.name!r}", f"credentials[{index}]") from None
    saved: list[Change[StoredWorkflow]] = []
    for index, save in enumerate(deployment.workflows):
        try:
            saved.append(await _save(tx, save, now))
        except FulmenError as error:
            name = save.workflow.name
            raise blame(error, f"workflow {name!r}", f"workflows[{index}]") from None
    for index, workflow_id in enumerate(deployment.deletions):
        try:
            gone = await catalog.get_workflow(tx, workflow_id)
            await catalog.delete_workflow(tx, workflow_id)
        except FulmenError as error:
            raise blame(error, None, f"deletions[{index}]") from None  # names the id
        saved.append(Change(gone, None))
    done = Deployed(project, tuple(made), tuple(saved))
    for each in record(done):
        await audit.append(tx, each, now)
    return done


async def _project(tx: Tx, deployment: Deployment, now: datetime) -> Change[Project] | None:
    wanted = deployment.project
    if wanted is None:
        return None
    try:
        if deployment.create:
            made = await catalog.create_project(tx, wanted, now)
            if deployment.owner_id is not None:
                await members.put_member(tx, made.id, deployment.owner_id, Role.OWNER, now)
            return Change(None, made)
        before = await catalog.get_project(tx, wanted.id)
        return Change(before, await catalog.replace_project(tx, wanted, now))
    except FulmenError as error:
        raise blame(error, f"project {wanted.name!r}", "project") from None


async def _save(tx: Tx, save: WorkflowSave, now: datetime) -> Change[StoredWorkflow]:
    if save.new:
        return Change(None, await catalog.create_workflow(tx, save.workflow, now))
    before = await catalog.get_workflow(tx, save.workflow.id)
    after = await catalog.replace_workflow(tx, save.workflow, save.expected_version, now)
    return Change(before, after)


def blame(error: FulmenError, what: str | None, where: str) -> FulmenError:
    """``error`` naming the part of a deployment at fault: ``what`` in front of its message
    (``workflow 'sync'``; ``None``: the message names it already), ``where`` in front of its
    ``field`` (``workflows[1]``: the part's place in the deployment). A PlanError becomes the
    InputError it is answered as (422, its code kept), so that it too can say where."""
    message = error.message if what is None else f"{what}: {error.message}"
    if isinstance(error, PlanError):
        return InputError(message, code=error.code, field=where)
    error.message = message
    error.args = (message,)
    if isinstance(error, InputError | StoreError):
        error.field = f"{where}.{error.field}" if error.field else where
    return error
