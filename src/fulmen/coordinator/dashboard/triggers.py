"""``/ui/triggers/<id>``: one trigger, to manage. Enable or disable it; for a webhook, its URL
to copy and the auth methods it takes (attach, detach, create); for a cron trigger, its
expression, time zone, the expression in words and the next five times it fires, in its zone
and in UTC.

Enabling and disabling saves the workflow through ``api.catalog.save_workflow`` with the
version the page showed, so that a save made meanwhile (by the API, a deploy, another tab) is
refused as a conflict rather than overwritten. Auth methods are made and attached by the REST
API's own functions (api/webhook_auth.py: the same checks and audit records); a made API key
is shown once, on the page that answers the form, and never again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from fulmen import cron
from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.catalog import save_workflow
from fulmen.coordinator.api.schemas.webhook_auth import WebhookAuthMethodIn
from fulmen.coordinator.api.webhook_auth import add_method, set_methods
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import (
    Guarded,
    Problem,
    blank_to_none,
    cross_site,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.guard import require_on
from fulmen.errors import FulmenError, InputError, NotFoundError
from fulmen.store import TriggerType, WebhookAuthMethod

__all__ = ["UPCOMING", "router"]

router = APIRouter(route_class=Guarded)
#: How many of a cron trigger's next fire times the page lists.
UPCOMING: Final = 5
#: The fields of the auth method form, as problems name them.
METHOD_FIELDS: Final = ("name", "auth_type", "api_key", "username", "password")
_method_in: Final[TypeAdapter[Any]] = TypeAdapter(WebhookAuthMethodIn)
DONE: Final = {
    "enabled": "Trigger enabled: it starts runs again.",
    "disabled": "Trigger disabled: it starts no runs until enabled.",
    "attached": "Auth method attached: requests must now carry one of the trigger's methods.",
    "detached": "Auth method detached.",
}


async def _context(request: Request, me: Principal, trigger_id: str) -> dict[str, Any]:
    """What the page shows (NotFoundError for an unknown trigger)."""
    c: Coordinator = request.app.state.coordinator
    await require_on(c.store, me, Permission.READ, "trigger", trigger_id)
    info = await c.store.get_trigger(trigger_id)
    stored = await c.store.get_workflow(info.workflow_id)
    trigger = next(t for t in stored.workflow.triggers if t.id == trigger_id)
    project = await c.store.get_project(info.project_id)
    context: dict[str, Any] = {
        "trigger": trigger,
        "stored": stored,
        "project": project,
        "status": await status(c),
        "me": me,
    }
    if trigger.type == TriggerType.WEBHOOK:
        attached = await c.store.list_trigger_auth_methods(trigger_id)
        ids = {m.id for m in attached}
        methods = await c.store.list_webhook_auth_methods(info.project_id)
        context["url"] = str(request.base_url).rstrip("/") + f"/i/{trigger_id}"
        context["attached"] = attached
        context["available"] = [m for m in methods if m.id not in ids]
    elif trigger.type == TriggerType.CRON:
        context["schedule"] = _schedule(c, trigger.cron_expression or "", trigger.timezone)
    return context


def _schedule(c: Coordinator, expression: str, timezone: str | None) -> dict[str, Any]:
    """The expression in words and its next fire times, each in the trigger's zone and UTC."""
    try:
        spec = cron.parse(expression, timezone)
        fires = cron.next_fires(spec, c.clock.now(), UPCOMING)
    except FulmenError as error:
        return {"error": error.message, "words": None, "fires": [], "zone": timezone or "UTC"}
    return {
        "error": None,
        "words": cron.describe(spec),
        "zone": spec.timezone,
        "fires": [(moment.astimezone(spec.zone), moment) for moment in fires],
    }


async def _page(
    request: Request,
    me: Principal,
    trigger_id: str,
    problem: Problem | None = None,
    *,
    made: WebhookAuthMethod | None = None,
) -> HTMLResponse:
    """Its forms only for those whose role allows them: enabling and disabling for editors,
    auth methods for admins."""
    c: Coordinator = request.app.state.coordinator
    try:
        context = await _context(request, me, trigger_id)
    except NotFoundError:
        what = f"trigger {trigger_id}"
        return page("missing.html", 404, what=what, status=await status(c), me=me)
    done = request.query_params.get("done", "")
    return page(
        "trigger.html",
        problem.status if problem else 201 if made else 200,
        section="workflows",
        problem=problem,
        notice=DONE.get(done),
        made=made,
        **context,
    )


def _done(trigger_id: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/triggers/{trigger_id}?done={what}", 303)


@router.get("/triggers/{trigger_id}", response_class=HTMLResponse)
async def trigger_page(request: Request, trigger_id: str, me: Signed) -> Response:
    return await _page(request, me, trigger_id)


@router.post("/triggers/{trigger_id}/enabled", response_class=HTMLResponse)
async def set_enabled(
    request: Request,
    trigger_id: str,
    me: Signed,
    enabled: Annotated[str, Form()] = "",
    version: Annotated[str, Form()] = "",
) -> Response:
    """Enable (``enabled=true``) or disable (``false``) the trigger, as a save of the
    workflow's version ``version`` (409 if it is no longer the current one)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await _require(c, me, Permission.EDIT, trigger_id)
    form = "enabled"
    try:
        on = _flag(enabled, "enabled")
        expected = _version(version)
        info = await c.store.get_trigger(trigger_id)
        current = (await c.store.get_workflow(info.workflow_id)).workflow
        triggers = tuple(
            replace(t, enabled=on) if t.id == trigger_id else t for t in current.triggers
        )
        changed = replace(current, triggers=triggers)
        await save_workflow(c, audit.actor(request, me), changed, expected_version=expected)
    except FulmenError as error:
        problem = problem_of(form, error, ("enabled", "version"))
        return await _page(request, me, trigger_id, problem)
    return _done(trigger_id, "enabled" if on else "disabled")


def _flag(value: str, name: str) -> bool:
    if value not in ("true", "false"):
        raise _bad(f"{name} is true or false, not {value!r}", name)
    return value == "true"


def _version(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise _bad("version is the workflow version the page showed (a number)", "version")
    return int(value)


def _bad(message: str, field: str) -> FulmenError:
    return InputError(message, code="invalid_form", field=field)


@router.post("/triggers/{trigger_id}/auth", response_class=HTMLResponse)
async def attach(
    request: Request, trigger_id: str, me: Signed, method_id: Annotated[str, Form()] = ""
) -> Response:
    """Add an existing method of the project to those the trigger takes."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await _require(c, me, Permission.MANAGE, trigger_id)
    try:
        if not method_id:
            raise _bad("choose a method to attach", "method_id")
        ids = [m.id for m in await c.store.list_trigger_auth_methods(trigger_id)]
        await set_methods(c.store, audit.actor(request, me), trigger_id, [*ids, method_id])
    except FulmenError as error:
        return await _page(request, me, trigger_id, problem_of("attach", error, ("method_id",)))
    return _done(trigger_id, "attached")


@router.post("/triggers/{trigger_id}/auth/{method_id}/detach", response_class=HTMLResponse)
async def detach(request: Request, trigger_id: str, method_id: str, me: Signed) -> Response:
    """Stop taking a method (the method itself stays, for the project's other triggers)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await _require(c, me, Permission.MANAGE, trigger_id)
    try:
        ids = [m.id for m in await c.store.list_trigger_auth_methods(trigger_id)]
        kept = [i for i in ids if i != method_id]
        await set_methods(c.store, audit.actor(request, me), trigger_id, kept)
    except FulmenError as error:
        return await _page(request, me, trigger_id, problem_of(f"detach:{method_id}", error))
    return _done(trigger_id, "detached")


@router.post("/triggers/{trigger_id}/auth/new", response_class=HTMLResponse)
async def create_method(
    request: Request,
    trigger_id: str,
    me: Signed,
    name: Annotated[str, Form()] = "",
    auth_type: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """A new method of the trigger's project, attached to the trigger. An ``api`` method's
    key is made by the store and shown on the page this answers with, once."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await _require(c, me, Permission.MANAGE, trigger_id)
    given = {"name": name.strip(), "auth_type": auth_type}
    if auth_type == "basic":
        given |= {"username": username, "password": password}
    try:
        if auth_type not in ("api", "basic"):
            raise _bad("choose the kind of method: an API key or a Basic login", "auth_type")
        method = _method_in.validate_python(blank_to_none(given))
        info = await c.store.get_trigger(trigger_id)
        if info.trigger.type != TriggerType.WEBHOOK:
            raise _bad("only a webhook trigger takes auth methods", "auth_type")
        by = audit.actor(request, me)
        made = await add_method(c.store, by, info.project_id, method)
        ids = [m.id for m in await c.store.list_trigger_auth_methods(trigger_id)]
        await set_methods(c.store, by, trigger_id, [*ids, made.id])
    except (ValidationError, FulmenError) as error:
        return await _page(request, me, trigger_id, problem_of("method", error, METHOD_FIELDS))
    return await _page(request, me, trigger_id, made=made)


async def _require(c: Coordinator, me: Principal, permission: Permission, trigger_id: str) -> None:
    """guard.require_on for a form of an existing trigger; an unknown trigger is left to the
    form's own answer (its page: 404)."""
    try:
        await require_on(c.store, me, permission, "trigger", trigger_id)
    except NotFoundError:
        return
