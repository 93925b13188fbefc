"""``/ui/alerts``: each project's alert channels, with how their deliveries are going (failing
ones with their last error, attempts and next try), its digest, and each workflow's rule.

Every form posts to a path that names its project (``/ui/alerts/projects/<id>/…``), as the
REST API's routes do (api/alerts.py), and is checked by the API's own documents
(``EmailChannelIn``, ``AlertRuleIn``…) and saved by the same store calls, so a value the API
refuses the page refuses in the same words, next to the field. A webhook channel's secret,
made or typed, is shown once, on the page that answers the form. The page lists the caller's
projects; channels and the digest take the admin role, a workflow's rule the editor role
(access.py), and the forms a role cannot use are not shown.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from fulmen.coordinator import alert_settings, audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.schemas.alerts import AlertChannelIn, AlertDigestIn, AlertRuleIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.guard import require_project
from fulmen.errors import FulmenError, InputError
from fulmen.store import AlertChannel
from fulmen.store.alert_policy import ALERTABLE, DEFAULT_OUTCOMES, DEFAULT_PERIOD_SECONDS

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

Field = Annotated[str, Form()]
#: Checkboxes of one name: none ticked is absent from the form.
Many = Annotated[list[str] | None, Form()]
CHANNEL_FIELDS: Final = ("name", "type", "recipients", "url", "secret")
RULE_FIELDS: Final = ("outcomes", "channel_ids", "period_seconds", "enabled")
#: The outcomes in the order the form lists them: the issue's four (the defaults) first.
OUTCOMES: Final = sorted(ALERTABLE, key=lambda state: (state not in DEFAULT_OUTCOMES, state))
#: How many failing deliveries the page lists per project.
FAILING_SHOWN: Final = 20
_channel_in: Final[TypeAdapter[Any]] = TypeAdapter(AlertChannelIn)
DONE: Final = {
    "channel": "Channel created.",
    "deleted": "Channel deleted.",
    "digest": "Digest saved.",
    "rule": "Alert rule saved.",
    "unruled": "Alert rule removed: the workflow's runs alert nobody.",
}


async def _projects(c: Coordinator, me: Principal) -> list[dict[str, Any]]:
    """The caller's projects (every project for an instance admin)."""
    found = []
    for project, workflows in await catalog(c.store, me):
        rules = {r.workflow_id: r for r in await c.store.list_alert_rules(project.id)}
        found.append(
            {
                "project": project,
                "channels": await c.store.list_alert_channels(project.id),
                "digest": await c.store.get_alert_digest(project.id),
                "workflows": [(w, rules.get(w.workflow.id)) for w in workflows],
                "failing": await c.store.list_alert_deliveries(
                    project.id, failing=True, limit=FAILING_SHOWN
                ),
            }
        )
    return found


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    *,
    made: AlertChannel | None = None,
    entered: dict[str, Any] | None = None,
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    return page(
        "alerts.html",
        problem.status if problem else 201 if made else 200,
        section="alerts",
        status=await status(c),
        me=me,
        projects=await _projects(c, me),
        problem=problem,
        entered=entered or {},
        made=made,
        notice=DONE.get(request.query_params.get("done", "")),
        outcomes=OUTCOMES,
        default_outcomes={o.value for o in DEFAULT_OUTCOMES},
        default_period=DEFAULT_PERIOD_SECONDS,
        smtp=c.settings.smtp_host is not None,
    )


def _done(what: str, anchor: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/alerts?done={what}#{anchor}", 303)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(request: Request, me: Signed) -> Response:
    return await _page(request, me)


@router.post("/alerts/projects/{project_id}/channels", response_class=HTMLResponse)
async def create_channel(
    request: Request,
    project_id: str,
    me: Signed,
    name: Field = "",
    type: Field = "",
    recipients: Field = "",
    url: Field = "",
    secret: Field = "",
) -> Response:
    """``recipients``: addresses separated by commas or new lines; a blank ``secret``: one
    is made."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    given: dict[str, Any] = {"name": name.strip(), "type": type}
    if type == "email":
        given["recipients"] = [a.strip() for a in recipients.replace("\n", ",").split(",")]
        given["recipients"] = [a for a in given["recipients"] if a]
    elif type == "webhook":
        given["url"] = url.strip()
        if secret.strip():
            given["secret"] = secret.strip()
    form = f"channel:{project_id}"
    try:
        if type not in ("email", "webhook"):
            raise InputError("choose the kind of channel: e-mail or webhook", field="type")
        channel = _channel_in.validate_python(given)
        await c.store.get_project(project_id)
        by = audit.actor(request, me)
        made = await alert_settings.create_channel(
            c.store, by, channel.to_store(project_id), c.outbound.policy
        )
    except (ValidationError, FulmenError) as error:
        entered = {"name": name, "type": type, "recipients": recipients, "url": url}
        return await _page(request, me, problem_of(form, error, CHANNEL_FIELDS), entered=entered)
    if made.secret is not None:
        return await _page(request, me, made=made)
    return _done("channel", f"channel-{made.id}")


@router.post(
    "/alerts/projects/{project_id}/channels/{channel_id}/delete", response_class=HTMLResponse
)
async def delete_channel(
    request: Request, project_id: str, channel_id: str, me: Signed
) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    try:
        await alert_settings.delete_channel(
            c.store, audit.actor(request, me), project_id, channel_id
        )
    except FulmenError as error:
        return await _page(request, me, problem_of(f"delete:{channel_id}", error))
    return _done("deleted", f"project-{project_id}")


@router.post("/alerts/projects/{project_id}/digest", response_class=HTMLResponse)
async def save_digest(
    request: Request,
    project_id: str,
    me: Signed,
    frequency: Field = "",
    channel_ids: Many = None,
) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    try:
        given = {"frequency": frequency, "channel_ids": channel_ids or []}
        digest = AlertDigestIn.model_validate(given)
        await alert_settings.put_digest(
            c.store, audit.actor(request, me), digest.to_store(project_id)
        )
    except (ValidationError, FulmenError) as error:
        problem = problem_of(f"digest:{project_id}", error, ("frequency", "channel_ids"))
        return await _page(request, me, problem)
    return _done("digest", f"digest-{project_id}")


@router.post(
    "/alerts/projects/{project_id}/workflows/{workflow_id}/rule", response_class=HTMLResponse
)
async def save_rule(
    request: Request,
    project_id: str,
    workflow_id: str,
    me: Signed,
    outcomes: Many = None,
    channel_ids: Many = None,
    period_seconds: Field = "",
    enabled: Field = "",
) -> Response:
    """``enabled`` is a checkbox: present (any value) is on; a blank period is the default."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.EDIT, project_id)
    values: dict[str, Any] = {
        "outcomes": outcomes or [],
        "channel_ids": channel_ids or [],
        "enabled": bool(enabled),
    }
    period = period_seconds.strip()
    if period:
        values["period_seconds"] = int(period) if period.isdigit() else period
    form = f"rule:{workflow_id}"
    try:
        rule = AlertRuleIn.model_validate(values)
        by = audit.actor(request, me)
        await alert_settings.put_rule(c.store, by, rule.to_store(project_id, workflow_id))
    except (ValidationError, FulmenError) as error:
        entered = {"period_seconds": period_seconds}
        return await _page(request, me, problem_of(form, error, RULE_FIELDS), entered=entered)
    return _done("rule", f"rule-{workflow_id}")


@router.post(
    "/alerts/projects/{project_id}/workflows/{workflow_id}/rule/delete",
    response_class=HTMLResponse,
)
async def delete_rule(request: Request, project_id: str, workflow_id: str, me: Signed) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.EDIT, project_id)
    try:
        await alert_settings.delete_rule(c.store, audit.actor(request, me), project_id, workflow_id)
    except FulmenError as error:
        return await _page(request, me, problem_of(f"rule:{workflow_id}", error, RULE_FIELDS))
    return _done("unruled", f"rule-{workflow_id}")
