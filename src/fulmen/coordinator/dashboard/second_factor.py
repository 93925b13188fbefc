"""The TOTP second factor's pages (issue 18): giving it at sign-in (``/ui/login/mfa``), and
enrolling, renewing recovery codes and turning it off from the account (``/ui/account/mfa``).

Sign-in: after a right password, a user with a second factor holds a session of stage
``mfa``, which opens this page and nothing else (session.py). A current code of their app,
or an unused recovery code, moves them to a new session id of stage ``full`` (the id changes
as the privilege does, so an id seen before is worth nothing after) and on to ``next``. Wrong
codes are limited (coordinator/second_factor.py); a code is taken once; a session left at
this stage longer than :data:`MFA_STAGE_LIMIT` signs in again from the start.

Enrolment: the page keeps a new secret (sealed in the store) and shows it as a QR code and as
text; a current code made from it turns the factor on, and the ten recovery codes are shown,
once, on the page that answers. The user's other sessions end then. Turning the factor off,
and new recovery codes, take a current code, a recovery code or the password. When the
instance requires a second factor, a user without one is sent here before any other page,
and this page (and signing out) is all they can open.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit, mfa, principals, second_factor
from fulmen.coordinator.access import Principal
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import (
    ENROL,
    PREFIX,
    SignInRequired,
    cookie_digest,
    safe_next,
    same_origin,
    session_of,
    signed_in,
    start,
)
from fulmen.errors import ConfigError, ConflictError, FulmenError
from fulmen.store import Target, User

__all__ = ["MFA_STAGE_LIMIT", "router"]

router = APIRouter(route_class=Guarded)

#: How long a right password holds while the second factor is awaited.
MFA_STAGE_LIMIT: Final = timedelta(minutes=10)
DONE: Final = {"off": "Two-factor sign-in is off."}

Field = Annotated[str, Form()]


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


# -- at sign-in --------------------------------------------------------------------------------


async def _awaiting(request: Request) -> str | None:
    """The user whose session waits for the second factor; ``None`` (and the session ended
    when it waited too long) otherwise."""
    session = await session_of(request)
    if session is None or session.stage != "mfa" or session.user_id is None:
        return None
    c = _c(request)
    if c.clock.now() - session.inserted_at >= MFA_STAGE_LIMIT:
        await c.store.end_dashboard_session(cookie_digest(request))
        return None
    return session.user_id


@router.get("/login/mfa", response_class=HTMLResponse)
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    if await signed_in(request) is not None:
        return RedirectResponse(target, 303)
    if await _awaiting(request) is None:
        return RedirectResponse(f"{PREFIX}/login", 303)
    return page("mfa_sign_in.html", next=target, error=None)


@router.post("/login/mfa", response_class=HTMLResponse)
async def sign_in(request: Request, code: Field = "", next: Field = PREFIX) -> Response:
    target = safe_next(next)
    if not same_origin(request):
        return page("mfa_sign_in.html", 403, next=target, error="Sign in from this site.")
    user_id = await _awaiting(request)
    if user_id is None:
        return RedirectResponse(f"{PREFIX}/login", 303)
    c = _c(request)
    user = await c.store.get_user(user_id)
    try:
        await second_factor.check(c.store, user_id, code.strip(), c.clock.now())
    except FulmenError as error:
        await audit.sign_in(request, user.email, "failed", reason=error.code, method="totp")
        problem = problem_of("code", error)
        return page("mfa_sign_in.html", problem.status, next=target, error=problem.message)
    response = RedirectResponse(target, 303)
    await start(response, request, user_id=user_id, stage="full")
    principal = await principals.of_user(c.store, user)
    await audit.sign_in(request, user.email, "succeeded", principal=principal, method="totp")
    return response


# -- the account's second factor ------------------------------------------------------------


async def holder(request: Request) -> Principal:
    """Who is signed in, whether or not the instance still requires them to enrol: the
    dependency of this page alone (every other page's is session.viewer)."""
    principal = await signed_in(request)
    if principal is None:
        raise SignInRequired
    return principal


Holder = Annotated[Principal, Depends(holder)]


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    *,
    codes: list[str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The account's second factor: enrolling (the QR code of a pending secret), or on (with
    the recovery codes just made, shown once)."""
    c = _c(request)
    target = safe_next(request.query_params.get("next"))
    context = {
        "me": me,
        "next": target,
        "problem": problem,
        "codes": codes,
        "notice": DONE.get(request.query_params.get("done", "")),
        "required": (await c.store.get_instance_settings()).require_mfa,
        "user": None,
    }
    status = problem.status if problem else status
    if me.kind != "user":  # signed in with an operator token, before users existed
        return page("mfa_account.html", status, **context)
    user = await c.store.get_user(me.id)
    context["user"] = user
    if not user.totp_enabled:
        try:
            secret = await second_factor.pending_secret(c.store, user.id)
        except ConfigError as error:  # no credential key to seal the secret with
            refused = problem_of("", error)
            return page("mfa_account.html", refused.status, **(context | {"problem": refused}))
        context |= {"secret": secret, "qr": _qr(mfa.provisioning_uri(secret, user.email))}
    else:
        factor = await c.store.get_second_factor(user.id)
        context["left"] = factor.recovery_codes_left if factor else 0
    return page("mfa_account.html", status, **context)


def _qr(uri: str) -> str:
    """The otpauth URI as a QR code, an SVG data URI (an image: the page's policy allows
    ``data:`` images and no inline SVG styles)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


@router.get("/account/mfa", response_class=HTMLResponse)
async def account(request: Request, me: Holder) -> Response:
    return await _page(request, me)


@router.post("/account/mfa", response_class=HTMLResponse)
async def enrol(request: Request, me: Holder, code: Field = "") -> Response:
    """A current code of the pending secret turns it on; the page shows the recovery codes."""
    if cross_site(request):
        return refusal()
    c = _c(request)
    try:
        codes = await second_factor.confirm(
            c.store, me.id, code, c.clock.now(), keep_session=cookie_digest(request)
        )
    except ConflictError as error:
        if error.code == "totp_enabled":  # turned on meanwhile (a second click, another tab)
            return RedirectResponse(ENROL, 303)
        return await _page(request, me, problem_of("enrol", error, ("code",)))
    except FulmenError as error:
        return await _page(request, me, problem_of("enrol", error, ("code",)))
    await _recorded(request, me, "user.second_factor_enabled")
    return await _page(request, me, codes=codes, status=201)


async def _proven(request: Request, me: Principal, answer: str, form: str) -> Problem | User:
    c = _c(request)
    user = await c.store.get_user(me.id)
    try:
        await second_factor.prove(c.store, user, answer, c.clock.now())
    except FulmenError as error:
        return problem_of(form, error, ("answer",))
    return user


@router.post("/account/mfa/codes", response_class=HTMLResponse)
async def renew(request: Request, me: Holder, answer: Field = "") -> Response:
    if cross_site(request):
        return refusal()
    proven = await _proven(request, me, answer, "codes")
    if isinstance(proven, Problem):
        return await _page(request, me, proven)
    codes = await second_factor.renew_codes(_c(request).store, proven.id)
    await _recorded(request, me, "user.recovery_codes_renewed")
    return await _page(request, me, codes=codes, status=201)


@router.post("/account/mfa/off", response_class=HTMLResponse)
async def turn_off(request: Request, me: Holder, answer: Field = "") -> Response:
    if cross_site(request):
        return refusal()
    proven = await _proven(request, me, answer, "off")
    if isinstance(proven, Problem):
        return await _page(request, me, proven)
    await _c(request).store.disable_totp(proven.id)
    await _recorded(request, me, "user.second_factor_disabled")
    return RedirectResponse(f"{ENROL}?done=off", 303)


async def _recorded(request: Request, me: Principal, action: str) -> None:
    """The audit trail's record of a change to the caller's own second factor (never its
    secret or codes)."""
    store = _c(request).store
    await audit.record(store, audit.actor(request, me), action, Target("user", me.id, me.name))
