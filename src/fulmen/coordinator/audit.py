"""The audit trail (issue 18): who changed what, when, from where; every sign-in and every
refused attempt.

A route makes the request's :class:`~fulmen.store.Actor` once, with :func:`actor` (the
:class:`~fulmen.coordinator.access.Principal` it acts as, and the address it came from), and
hands it to the shared function that makes the change (api/catalog.py's ``save_workflow``,
``put_credential``, ..., which the dashboard's forms call too), which calls :func:`record`
(or appends the record :func:`project_change`, :func:`workflow_change` or
:func:`credential_change` makes) inside ``Store.together()`` with the change: one commit
makes both durable, so a change is never kept without its record (on PostgreSQL a record that
fails takes the change back with it; on SQLite they share the commit, and a failed record is
answered as the failure it is). A deployment (api/deployments.py) changes many things at
once: :func:`deployment` makes the same records of them, which the store appends in the
deployment's own transaction (store/deployments.py).

Actions are stable codes, ``<noun>.<verb>``:

* ``project.created|updated|deleted`` (retention and the other settings are the project's);
* ``workflow.created|updated|deleted``, with the document before and after (triggers,
  jobs and edges are part of it: enabling a trigger is a ``workflow.updated``);
* ``credential.created|updated|deleted``: the name and the jobs that use it, never the
  value (``detail.value`` says ``set`` when one was given);
* ``webhook_auth_method.created|deleted`` and ``trigger.auth_methods_changed``: names and
  kinds, never a key or a password;
* ``run.started`` (by hand), ``run.cancel_requested``, ``work_order.rerun``;
* ``token.created|revoked`` (never the token or its digest);
* ``collection.created|deleted``, and a person's bulk changes of its items,
  ``collection.items_put|items_deleted`` (how many, and the key pattern; never a value:
  a job's own writes, with its run's token, are not recorded);
* ``member.added|role_changed|removed`` (:func:`member`), ``user.*`` (``user.updated``:
  disabled, enabled, made or unmade an instance admin; ``user.created`` and
  ``user.password_changed``), ``invitation.created|revoked|accepted`` and
  ``instance_settings.updated`` (:func:`record`);
* ``sign_in.succeeded|failed`` (:func:`sign_in`) and ``access.refused`` (:func:`refused`).

*From where.* A request's address is its socket's peer, unless that peer is a reverse proxy
the coordinator believes (``FULMEN_TRUSTED_PROXIES``; by default one on the same host, as
uvicorn always believed): then the client its ``X-Forwarded-For`` names. app.py installs
uvicorn's proxy-headers middleware for those addresses only (uvicorn's own is off), so every
part of the coordinator sees the same address.

*Secrets never.* The documents are built here from what the REST API shows (its documents
without values) and nothing else: a credential's value, a webhook method's key or password,
a token or its digest never reach a record.
"""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar

from fastapi import Request

from fulmen.coordinator import principals
from fulmen.coordinator.access import Principal
from fulmen.coordinator.api.schemas.catalog import ProjectDoc, WorkflowDoc
from fulmen.errors import AccessError, FulmenError
from fulmen.store import (
    Actor,
    ApiToken,
    Change,
    CredentialInfo,
    Deployed,
    Invitation,
    NewAuditRecord,
    Project,
    Role,
    Store,
    StoredWorkflow,
    Target,
    User,
    WebhookAuthMethod,
)
from fulmen.store.models.common import JSONValue

__all__ = [
    "Document",
    "actor",
    "address_of",
    "command_line",
    "credential_change",
    "credential_document",
    "credential_uses",
    "deployment",
    "invitation_document",
    "member",
    "method_document",
    "project_change",
    "project_document",
    "record",
    "refused",
    "sign_in",
    "sign_in_at",
    "token",
    "token_document",
    "user_document",
    "workflow_change",
    "workflow_document",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A record's ``before`` or ``after``: the target as the REST API shows it, without secrets.
Document = Mapping[str, JSONValue]
#: Fields of the API's documents that change with every save and say nothing of the change.
_VOLATILE: Final = frozenset({"inserted_at", "updated_at", "snapshot_id"})


def address_of(request: Request) -> str:
    """Where a request came from (see *From where* above)."""
    return request.client.host if request.client else ""


def actor(request: Request, principal: Principal) -> Actor:
    """Who a request acts as, and from where: what each of its records names."""
    return Actor(principal.kind, principal.id, principal.name, address_of(request))


def command_line() -> Actor:
    """Who acts through ``fulmen server …`` on the coordinator's host: the system user, by
    uid and name (the command has no request, so no address)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (a container's, say)
        name = f"uid {uid}"
    return Actor("cli", str(uid), name)


async def record(
    store: Store,
    by: Actor,
    action: str,
    target: Target,
    *,
    project_id: str | None = None,
    before: Document | None = None,
    after: Document | None = None,
    detail: Document | None = None,
) -> None:
    """Append a record of ``action`` by ``by`` on ``target``: inside the caller's
    ``store.together()`` block, with the change it records (see the module's docstring)."""
    await store.append_audit(NewAuditRecord(by, action, target, project_id, before, after, detail))


async def sign_in(
    request: Request,
    who: str,
    outcome: Literal["succeeded", "failed"],
    *,
    reason: str = "",
    principal: Principal | None = None,
    method: str = "token",
) -> None:
    """Record a sign-in to the dashboard: ``who`` is what was typed to sign in (an e-mail, a
    token's label: never a password or a token), ``principal`` whom it signed in as when it
    succeeded, ``method`` how (``token``, ``password``, ``oidc``, ...), ``reason`` why it failed
    (a code: ``bad_credentials``, ``cross_site``, ``rate_limited``). A record that cannot be
    written is logged, and the sign-in answered all the same."""
    await sign_in_at(
        _store(request),
        address_of(request),
        who,
        outcome,
        reason=reason,
        principal=principal,
        method=method,
    )


async def sign_in_at(
    store: Store,
    address: str,
    who: str,
    outcome: Literal["succeeded", "failed"],
    *,
    reason: str = "",
    principal: Principal | None = None,
    method: str = "token",
) -> None:
    """:func:`sign_in` where the request is known by its address only (coordinator/
    sign_in.py's password check, which the sign-in page, an invitation and the account page
    share)."""
    if principal is not None:
        by = Actor(principal.kind, principal.id, principal.name, address)
        target = Target("session", principal.id, principal.name)
    else:
        by = Actor("anonymous", "", who, address)
        target = Target("session", "", who)
    detail: dict[str, JSONValue] = {"method": method}
    if reason:
        detail["reason"] = reason
    try:
        await record(store, by, f"sign_in.{outcome}", target, detail=detail)
    except FulmenError as error:
        log.error("could not record a sign-in (%s, %s) in the audit trail: %s", who, outcome, error)


async def refused(request: Request, error: AccessError) -> None:
    """Record a request refused for a role too weak (``forbidden``: 403), naming the request
    and what it lacked. Who asked is the principal the request was checked as (the API's
    token check and the dashboard's session check keep it: principals.kept). A record that
    cannot be written is logged, and the refusal answered all the same."""
    principal = principals.kept(request.scope)
    by = (
        actor(request, principal)
        if principal is not None
        else Actor("anonymous", "", "", address_of(request))
    )
    target = Target("request", f"{request.method} {request.url.path}")
    detail: dict[str, JSONValue] = {"permission": error.permission, "message": error.message}
    try:
        await record(
            _store(request),
            by,
            "access.refused",
            target,
            project_id=error.project_id,
            detail=detail,
        )
    except FulmenError as failure:
        log.error("could not record a refusal in the audit trail: %s", failure)


async def member(
    store: Store,
    by: Actor,
    project_id: str,
    user_id: str,
    email: str,
    *,
    before: Role | None,
    after: Role | None,
) -> None:
    """Record a change of a user's role in a project (``None``: no role, not a member):
    ``member.added``, ``member.role_changed`` or ``member.removed``. Call it inside the
    ``store.together()`` block that makes the change."""
    action = (
        "member.added"
        if before is None
        else "member.removed"
        if after is None
        else "member.role_changed"
    )

    def document(role: Role | None) -> Document | None:
        return None if role is None else {"user_id": user_id, "email": email, "role": role.value}

    await record(
        store,
        by,
        action,
        Target("member", user_id, email),
        project_id=project_id,
        before=document(before),
        after=document(after),
    )


async def token(
    store: Store, by: Actor, action: Literal["created", "revoked"], made: ApiToken
) -> None:
    """Record that a token was made or revoked (its name, owner and role; never the token
    nor its digest). Call it inside the ``store.together()`` block that makes the change."""
    document = token_document(made)
    await record(
        store,
        by,
        f"token.{action}",
        Target("token", made.id, made.name),
        project_id=made.project_id,
        before=document if action == "revoked" else None,
        after=document if action == "created" else None,
    )


# -- the records of changes to a project's things --------------------------------------------


def project_change(by: Actor, before: Project | None, after: Project | None) -> NewAuditRecord:
    """``project.created``, ``project.updated`` or ``project.deleted`` (``None``: it was
    not, or is no more), with the project before and after."""
    project = _either(before, after)
    return NewAuditRecord(
        by,
        f"project.{_verb(before, after)}",
        Target("project", project.id, project.name),
        project.id,
        before=None if before is None else project_document(before),
        after=None if after is None else project_document(after),
    )


def workflow_change(
    by: Actor, before: StoredWorkflow | None, after: StoredWorkflow | None
) -> NewAuditRecord:
    """``workflow.created``, ``workflow.updated`` or ``workflow.deleted``, with the document
    before and after (its triggers, jobs and edges are part of it)."""
    workflow = _either(before, after).workflow
    return NewAuditRecord(
        by,
        f"workflow.{_verb(before, after)}",
        Target("workflow", workflow.id, workflow.name),
        workflow.project_id,
        before=None if before is None else workflow_document(before),
        after=None if after is None else workflow_document(after),
    )


def credential_change(
    by: Actor,
    before: CredentialInfo | None,
    after: CredentialInfo | None,
    uses: list[dict[str, JSONValue]],
) -> NewAuditRecord:
    """``credential.created``, ``credential.updated`` or ``credential.deleted``: its name
    and ``uses`` (:func:`credential_uses`), never its value; a value given is said so."""
    credential = _either(before, after)
    return NewAuditRecord(
        by,
        f"credential.{_verb(before, after)}",
        Target("credential", credential.id, credential.name),
        credential.project_id,
        before=None if before is None else credential_document(before, uses),
        after=None if after is None else credential_document(after, uses),
        detail=None if after is None else {"value": "set"},
    )


def deployment(by: Actor, done: Deployed) -> list[NewAuditRecord]:
    """The records of what a deployment wrote, each as the route that makes that change
    alone records it (a new credential is used by no job yet: its workflows are saved
    after it)."""
    made = [] if done.project is None else [project_change(by, *_sides(done.project))]
    made += [credential_change(by, *_sides(c), []) for c in done.credentials]
    made += [workflow_change(by, *_sides(w)) for w in done.workflows]
    return made


def _verb(before: object, after: object) -> str:
    return "created" if before is None else "deleted" if after is None else "updated"


def _either(before: T | None, after: T | None) -> T:
    either = after if after is not None else before
    assert either is not None  # a change has a side
    return either


def _sides(change: Change[T]) -> tuple[T | None, T | None]:
    return change.before, change.after


# -- documents: the targets as the REST API shows them, without secrets ----------------------


def workflow_document(stored: StoredWorkflow) -> Document:
    """The workflow as ``GET /api/workflows/<id>`` answers it, less what changes with every
    save (times, snapshot id): its diff is the change."""
    return _without_volatile(WorkflowDoc.of(stored).model_dump(mode="json"))


def project_document(project: Project) -> Document:
    return _without_volatile(ProjectDoc.of(project).model_dump(mode="json"))


def credential_document(info: CredentialInfo, uses: list[dict[str, JSONValue]]) -> Document:
    """A credential's name and the jobs that use it (:func:`credential_uses`); its value is
    not here, nor anywhere in the trail."""
    return {"id": info.id, "project_id": info.project_id, "name": info.name, "used_by": uses}


async def credential_uses(
    store: Store, project_id: str, credential_id: str
) -> list[dict[str, JSONValue]]:
    """The jobs (of the project's workflows, as they are now) that use the credential."""
    uses: list[dict[str, JSONValue]] = []
    cursor = None
    while True:
        page = await store.list_workflows(project_id, cursor=cursor, limit=100)
        for stored in page.items:
            w = stored.workflow
            for job in w.jobs:
                if job.credential_id == credential_id:
                    uses.append(
                        {"workflow_id": w.id, "workflow": w.name, "job_id": job.id, "job": job.name}
                    )
        if (cursor := page.next_cursor) is None:
            return uses


def method_document(method: WebhookAuthMethod) -> Document:
    """A webhook auth method's name and kind: never its key, username or password."""
    return {
        "id": method.id,
        "project_id": method.project_id,
        "name": method.name,
        "auth_type": method.auth_type.value,
    }


def user_document(user: User) -> Document:
    """A user as the REST API shows them: never a password's hash, nor a second factor."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "instance_admin": user.instance_admin,
        "active": user.active,
    }


def invitation_document(invitation: Invitation) -> Document:
    """For whom an invitation is and what it gives: never its link (its secret)."""
    return {
        "email": invitation.email,
        "project_id": invitation.project_id,
        "role": invitation.role.value if invitation.role else None,
        "instance_admin": invitation.instance_admin,
        "expires_at": invitation.expires_at.isoformat(),
    }


def token_document(made: ApiToken) -> Document:
    """A token's name, owner and role: never the token, nor its digest."""
    return {
        "id": made.id,
        "name": made.name,
        "user_id": made.user_id,
        "project_id": made.project_id,
        "role": made.role.value if made.role is not None else None,
    }


def _without_volatile(document: dict[str, Any]) -> Document:
    return {key: value for key, value in document.items() if key not in _VOLATILE}


def _store(request: Request) -> Store:
    store: Store = request.app.state.coordinator.store
    return store
