"""Stopping and repeating runs from the dashboard: cancel one run from its page, rerun many
work orders at once from the runs list. Both go through coordinator.operations, as the REST
API's ``POST /api/runs/{id}/cancel`` and ``POST /api/work_orders/rerun`` do, and both are
POSTs refused from another site (session.same_origin).

A bulk rerun is answered with a page saying how many runs were started and, for each work
order that could not be rerun (the job is not in the version its runs ran, its input was
wiped), why; the others are started regardless.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit, operations
from fulmen.coordinator.access import Permission
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, same_origin
from fulmen.coordinator.guard import require_each, require_on
from fulmen.errors import AccessError, FulmenError
from fulmen.store import Enqueued

__all__ = ["MAX_RERUNS", "router"]

router = APIRouter(route_class=Guarded)

#: The most work orders one bulk rerun takes (two pages of the runs list).
MAX_RERUNS: Final = 100


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str, me: Signed) -> Response:
    """Cancel the run, then show its page again: cancelled already if it was queued, else
    cancelling until its worker has stopped it. A finished run is refused with a message."""
    back = f"{PREFIX}/runs/{quote(run_id)}"
    if not same_origin(request):
        return RedirectResponse(f"{back}?error={quote('Cancel runs from this site only.')}", 303)
    try:
        await require_on(_c(request).store, me, Permission.RUN, "run", run_id)
        await operations.cancel(_c(request), audit.actor(request, me), run_id)
    except AccessError:
        raise  # answered by forms.forbidden
    except FulmenError as error:
        return RedirectResponse(f"{back}?error={quote('Could not cancel: ' + error.message)}", 303)
    return RedirectResponse(back, 303)


@router.post("/runs/rerun", response_class=HTMLResponse)
async def rerun(
    request: Request,
    me: Signed,
    work_order_id: Annotated[list[str] | None, Form()] = None,
    job_id: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    c = _c(request)
    ids = list(dict.fromkeys(work_order_id or []))
    common: dict[str, Any] = {
        "section": "runs",
        "status": await status(c),
        "me": me,
        "back": back,
        "job_id": job_id,
    }
    if not same_origin(request):
        return page("reruns.html", 403, refused="Rerun from this site only.", **common)
    if not ids:
        return page("reruns.html", 400, refused="Select the runs to rerun first.", **common)
    if len(ids) > MAX_RERUNS:
        refused = f"Rerun at most {MAX_RERUNS} work orders at once, not {len(ids)}."
        return page("reruns.html", 400, refused=refused, **common)
    await require_each(c.store, me, Permission.RUN, "work_order", ids)
    made = await operations.rerun_each(c, audit.actor(request, me), ids, job_id or None)
    started = [outcome for outcome in made if isinstance(outcome, Enqueued)]
    failed = [
        (work_order, outcome)
        for work_order, outcome in zip(ids, made, strict=True)
        if isinstance(outcome, FulmenError)
    ]
    return page("reruns.html", refused=None, started=started, failed=failed, **common)
