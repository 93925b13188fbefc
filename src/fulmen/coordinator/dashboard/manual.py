"""Starting a run by hand: ``/ui/workflows/{id}/run``, with an input written or pasted as
JSON, or an earlier input of the workflow run again.

The page's script checks the JSON as it is typed and refuses to send what does not parse;
the server checks it again with the REST API's own document (``ManualRunIn``: a JSON object
the store can keep) and starts the run through coordinator.operations, as ``POST
/api/workflows/{id}/runs`` does. Bad input is answered with the form again, the text as it
was and the reason, and nothing is created. A started run's page is where the user lands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit, operations
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.schemas.runs import ManualRunIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, same_origin
from fulmen.coordinator.guard import require_on
from fulmen.errors import FulmenError, InputError, NotFoundError
from fulmen.store import RunFilter, StoredWorkflow

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

#: How many of the workflow's latest runs offer their input to run again.
EARLIER_RUNS: Final = 20
EXAMPLE: Final = '{\n  "data": {}\n}'
_JSON_KINDS: Final[dict[type, str]] = {
    list: "array", str: "string", int: "number", float: "number", bool: "boolean",
    type(None): "null",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EarlierInput:
    dataclip_id: str
    label: str
    inserted_at: datetime


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


async def earlier_inputs(c: Coordinator, workflow_id: str) -> list[EarlierInput]:
    """The inputs of the workflow's latest runs that are still stored (not wiped), newest
    first, each once."""
    runs = await c.store.list_runs(RunFilter(workflow_id=workflow_id), limit=EARLIER_RUNS)
    out: list[EarlierInput] = []
    seen: set[str] = set()
    for run in runs.items:
        if run.dataclip_id is None or run.dataclip_id in seen:
            continue
        seen.add(run.dataclip_id)
        try:
            clip = await c.store.get_dataclip(run.dataclip_id)
        except NotFoundError:
            continue
        if clip.wiped_at is None:
            label = f"{clip.type.value.replace('_', ' ')} of run {run.id[:8]}"
            out.append(EarlierInput(clip.id, label, clip.inserted_at))
    return out


async def _form(
    c: Coordinator,
    me: Principal,
    stored: StoredWorkflow,
    status_code: int = 200,
    *,
    text: str = EXAMPLE,
    error: FulmenError | None = None,
    dataclip_id: str = "",
    starting_node_id: str = "",
) -> Response:
    workflow = stored.workflow
    nodes = [(t.id, f"{t.type.value} trigger") for t in workflow.triggers]
    nodes += [(j.id, j.name or j.id[:8]) for j in workflow.jobs]
    return page(
        "manual.html",
        status_code,
        section="workflows",
        status=await status(c),
        me=me,
        stored=stored,
        nodes=nodes,
        earlier=await earlier_inputs(c, workflow.id),
        text=text,
        error=error,
        dataclip_id=dataclip_id,
        starting_node_id=starting_node_id,
    )


@router.get("/workflows/{workflow_id}/run", response_class=HTMLResponse)
async def run_form(request: Request, workflow_id: str, me: Signed) -> Response:
    c = _c(request)
    try:
        await require_on(c.store, me, Permission.RUN, "workflow", workflow_id)
        stored = await c.store.get_workflow(workflow_id)
    except NotFoundError:
        return await _missing(c, me, workflow_id)
    return await _form(c, me, stored)


async def _missing(c: Coordinator, me: Principal, workflow_id: str) -> Response:
    what = f"workflow {workflow_id}"
    return page("missing.html", 404, what=what, status=await status(c), me=me)


@router.post("/workflows/{workflow_id}/run", response_class=HTMLResponse)
async def run_by_hand(
    request: Request,
    workflow_id: str,
    me: Signed,
    input: Annotated[str, Form()] = "",
    dataclip_id: Annotated[str, Form()] = "",
    starting_node_id: Annotated[str, Form()] = "",
) -> Response:
    c = _c(request)
    try:
        await require_on(c.store, me, Permission.RUN, "workflow", workflow_id)
        stored = await c.store.get_workflow(workflow_id)
    except NotFoundError:
        return await _missing(c, me, workflow_id)
    kept = {"text": input, "dataclip_id": dataclip_id, "starting_node_id": starting_node_id}
    if not same_origin(request):
        refused = InputError("Start runs from this site only.", code="cross_origin")
        return await _form(c, me, stored, 403, error=refused, **kept)
    try:
        body = _body(input, dataclip_id, starting_node_id)
        enqueue = operations.manual_run(
            c,
            workflow_id,
            input=None if body.dataclip_id else body.input,
            dataclip_id=body.dataclip_id,
            starting_node_id=body.starting_node_id,
        )
        made = await operations.start_manual_run(c, audit.actor(request, me), enqueue)
    except FulmenError as error:
        code = 404 if isinstance(error, NotFoundError) else 400
        return await _form(c, me, stored, code, error=error, **kept)
    return RedirectResponse(f"{PREFIX}/runs/{made.run_id}", 303)


def _body(text: str, dataclip_id: str, starting_node_id: str) -> ManualRunIn:
    """The API's document for this form: the JSON parsed and checked as the API checks it
    (InputError ``invalid_json`` or ``invalid_input`` with the reason otherwise)."""
    fields: dict[str, Any] = {"starting_node_id": starting_node_id or None}
    if dataclip_id:
        fields["dataclip_id"] = dataclip_id
    else:
        try:
            fields["input"] = json.loads(text or "{}")
        except json.JSONDecodeError as error:
            message = f"The input is not JSON: {error.msg} at line {error.lineno}, "
            raise InputError(
                message + f"column {error.colno}.", code="invalid_json", field="input"
            ) from None
        if not isinstance(fields["input"], dict):
            kind = _JSON_KINDS.get(type(fields["input"]), "value")
            raise InputError(
                f"The input must be a JSON object ({{...}}), not a {kind}.",
                code="invalid_input",
                field="input",
            )
    try:
        return ManualRunIn.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(
            f"The {where} cannot be stored: it holds {reason}.", code="invalid_input", field=where
        ) from None
