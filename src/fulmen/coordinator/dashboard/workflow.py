"""The workflow page, ``/ui/workflows/<id>``: the workflow drawn as a graph (graph.py), then
each job (its language, adaptor, pinned packages and code, read-only) and each trigger (its
webhook URL to copy, or its schedule). A job's node links to the job's section."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from fulmen.coordinator.access import Permission
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.graph import workflow_graph
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import Signed
from fulmen.coordinator.guard import require_on
from fulmen.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(route_class=Guarded)


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
async def workflow_page(request: Request, workflow_id: str, me: Signed) -> Response:
    """Its edit and run links only for those whose role allows them."""
    c: Coordinator = request.app.state.coordinator
    try:
        await require_on(c.store, me, Permission.READ, "workflow", workflow_id)
        stored = await c.store.get_workflow(workflow_id)
    except NotFoundError:
        what = f"workflow {workflow_id}"
        return page("missing.html", 404, what=what, status=await status(c), me=me)
    workflow = stored.workflow
    return page(
        "workflow.html",
        section="workflows",
        status=await status(c),
        stored=stored,
        workflow=workflow,
        graph=workflow_graph(workflow),
        links={job.id: f"#job-{job.id}" for job in workflow.jobs},
        base=str(request.base_url).rstrip("/"),
        me=me,
    )
