"""``/ui/account``: your own account: who you are, your role in each project, and changing
your password.

A new password needs the current one (checked as a sign-in is, sign_in.py: a stolen session
cannot guess it faster than the sign-in page could) and is typed twice. Changing it ends
every other session of yours, in any browser (store.set_password): this one stays signed in.
The change is in the audit trail (``user.password_changed``). Before any user exists the
dashboard is signed in with an API token, which has no account:
the page says how to make the first user.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit, passwords
from fulmen.coordinator.access import Principal
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, cookie_digest
from fulmen.coordinator.sign_in import check_password
from fulmen.errors import FulmenError, InputError, NotFoundError, SignInError
from fulmen.store import Project, Role, Target

__all__ = ["router"]

router = APIRouter(route_class=Guarded)
#: The password form's fields, as problems name them.
FIELDS: Final = ("current", "password", "repeat")
DONE: Final = {"password": "Password changed: your other sessions are signed out."}

Field = Annotated[str, Form()]


async def _page(request: Request, me: Principal, problem: Problem | None = None) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    user = await c.store.get_user(me.id) if me.kind == "user" else None
    return page(
        "account.html",
        problem.status if problem else 200,
        section="account",
        status=await status(c),
        me=me,
        user=user,
        roles=await _roles(c, me) if user else [],
        problem=problem,
        notice=DONE.get(request.query_params.get("done", "")),
    )


async def _roles(c: Coordinator, me: Principal) -> list[tuple[Project, Role]]:
    """Your projects with your role in each (an instance admin is every project's owner)."""
    out = []
    for project_id, role in sorted(me.roles.items()):
        try:
            out.append((await c.store.get_project(project_id), role))
        except NotFoundError:  # deleted since the request began
            continue
    return out


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, me: Signed) -> Response:
    return await _page(request, me)


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(
    request: Request, me: Signed, current: Field = "", password: Field = "", repeat: Field = ""
) -> Response:
    """Nothing typed is shown again when the form is refused."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    address = audit.address_of(request)
    try:
        if me.kind != "user":
            raise InputError("an API token has no password: sign in as a user", field="current")
        if password != repeat:
            raise InputError(
                "the two new passwords differ", code="passwords_differ", field="repeat"
            )
        hashed = await passwords.hash_password(password)
        user = await c.store.get_user(me.id)
        try:
            await check_password(c, user.email, current, address, method="current password")
        except SignInError as refused:
            if refused.code != "bad_credentials":
                raise
            raise SignInError("that is not your current password") from None
        async with c.store.together():
            await c.store.set_password(user.id, hashed, keep_session=cookie_digest(request))
            target = Target("user", user.id, user.email)
            await audit.record(c.store, audit.actor(request, me), "user.password_changed", target)
    except SignInError as refused:  # a wrong current password, or too many: by its field
        problem = problem_of("password", refused)
        return await _page(request, me, replace(problem, fields={"current": refused.message}))
    except FulmenError as error:
        return await _page(request, me, problem_of("password", error, FIELDS))
    return RedirectResponse(f"{PREFIX}/account?done=password", 303)
