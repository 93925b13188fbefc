"""``/ui/invitations/<secret>``: the page an invitation link opens (coordinator/
invitations.py), for someone not signed in yet.

Someone new chooses a password (typed twice) and a name; accepting makes their account, gives
what the invitation gives, and signs them in. Someone who has an account already proves it
with their password (a sign-in, rate-limited as any: sign_in.py) unless this browser is
signed in as them, and is given the role; with a second factor, they finish signing in at
``/ui/login/mfa``. An invitation is never a way into an existing account: it was made by
someone who may give a role, not by the account's owner.

Accepting is recorded in the audit trail (``invitation.accepted``, by the one invited, with
what it gave). A link that is unknown, used or expired gets one page that says which, and what to do
(404), never a traceback; so does a link used by another tab meanwhile.
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit, passwords
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, signed_in, start
from fulmen.coordinator.invitations import digest_of
from fulmen.coordinator.sign_in import check_password
from fulmen.errors import FulmenError, InputError, NotFoundError
from fulmen.store import Actor, Invitation, Target, User

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

Field = Annotated[str, Form()]
FIELDS: Final = ("name", "password", "repeat")
#: Where someone lands once in.
LANDING: Final = PREFIX


def gone(error: NotFoundError) -> HTMLResponse:
    """The one page of a link that opens nothing (unknown, used, expired)."""
    return page("invitation_gone.html", 404, message=error.message, code=error.code)


async def _page(
    request: Request,
    invitation: Invitation,
    problem: Problem | None = None,
    name: str = "",
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    existing = await c.store.find_user(invitation.email)
    me = await signed_in(request)
    project = None
    if invitation.project_id is not None:
        try:
            project = await c.store.get_project(invitation.project_id)
        except NotFoundError:
            project = None
    return page(
        "invitation.html",
        problem.status if problem else 200,
        invitation=invitation,
        existing=existing,
        signed_in_as_them=existing is not None and me is not None and me.id == existing.id,
        project=project,
        problem=problem,
        typed_name=name,
    )


@router.get("/invitations/{secret}", response_class=HTMLResponse)
async def invitation(request: Request, secret: str) -> Response:
    c: Coordinator = request.app.state.coordinator
    try:
        found = await c.store.get_invitation(digest_of(secret))
    except NotFoundError as error:
        return gone(error)
    return await _page(request, found)


@router.post("/invitations/{secret}", response_class=HTMLResponse)
async def accept(
    request: Request, secret: str, name: Field = "", password: Field = "", repeat: Field = ""
) -> Response:
    """Nothing typed is shown again when the form is refused, but the name."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    digest = digest_of(secret)
    try:
        found = await c.store.get_invitation(digest)
    except NotFoundError as error:
        return gone(error)
    try:
        user, stage = await _accept(request, found, name, password, repeat)
    except NotFoundError as error:  # used by another tab meanwhile
        return gone(error)
    except FulmenError as error:
        return await _page(request, found, problem_of("accept", error, FIELDS), name)
    if stage == "already":
        return RedirectResponse(LANDING, 303)
    if stage == "mfa":
        response = RedirectResponse(f"{PREFIX}/login/mfa?next={quote(LANDING)}", 303)
    else:
        response = RedirectResponse(LANDING, 303)
    await start(response, request, user_id=user.id, stage="mfa" if stage == "mfa" else "full")
    return response


async def _accept(
    request: Request, invitation: Invitation, name: str, password: str, repeat: str
) -> tuple[User, str]:
    """Accept as the one invited: the user, and how their session goes on (``full``,
    ``mfa``, or ``already``: this browser is signed in as them)."""
    c: Coordinator = request.app.state.coordinator
    address = audit.address_of(request)
    existing = await c.store.find_user(invitation.email)
    hashed: str | None = None
    stage = "full"
    if existing is None:
        if password != repeat:
            raise InputError("the two passwords differ", code="passwords_differ", field="repeat")
        hashed = await passwords.hash_password(password)
    elif (me := await signed_in(request)) is not None and me.id == existing.id:
        stage = "already"
    else:
        checked = await check_password(c, invitation.email, password, address, method="invitation")
        stage = "mfa" if checked.totp_enabled else "full"
    async with c.store.together():
        user, used = await c.store.accept_invitation(
            invitation.digest, password_hash=hashed, name=name
        )
        await audit.record(
            c.store,
            Actor("user", user.id, user.email, address),
            "invitation.accepted",
            Target("invitation", used.digest, used.email),
            project_id=used.project_id,
            after=audit.invitation_document(used),
            detail={"new_account": existing is None},
        )
    return user, stage
