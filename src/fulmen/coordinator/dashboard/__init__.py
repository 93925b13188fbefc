"""The web dashboard, served by the coordinator under ``/ui``: plain server-rendered pages
(Jinja2) and one small script that keeps them current without reloading.

* ``/ui``: the workflows, with their triggers (webhook URLs to copy) and their last run;
* ``/ui/runs``: runs, filtered by workflow and status, new ones appearing as they come
  (the script re-reads ``/ui/runs/rows`` when ``/ui/events`` says runs changed);
* ``/ui/runs/<id>``: one run: its graph coloured by outcome, its steps as a timeline, its
  logs, its input and output dataclips, and retrying it from a chosen step;
* ``/ui/workflows/<id>``: one workflow: its graph (graph.py), jobs' code and triggers;
* ``/ui/workflows/<id>/run``: a run started by hand (manual.py); cancelling a run and
  rerunning many work orders (control.py); the runs list found by text, time and work order,
  exported as CSV or JSON (filters.py, find.py);
* ``/ui/projects/<id>/workflows/new`` and ``/ui/workflows/<id>/edit``: a workflow's jobs,
  edges and triggers in one form, each job's code in a code editor (editing.py, bundle.py);
* managing (issue 17): ``/ui/credentials`` (credentials.py), ``/ui/triggers/<id>``
  (triggers.py), ``/ui/settings`` (settings.py), ``/ui/tokens`` (tokens.py), each saving
  through the REST API's own functions and refusals (forms.py); ``/ui/alerts`` (issue 18,
  alerts.py): channels and their failing deliveries, digests, workflows' alert rules;
* ``/ui/smart-workers``: the runner's smart workers, run now, restart, delete (smart.py,
  over the runner's HTTP API: coordinator/runner_client.py; instance admins only);
* ``/ui/projects/<id>/members``: a project's members and their roles (members.py, issue 18);
* people (issue 18): ``/ui/account``, your own, and changing your password (account.py);
  ``/ui/users``, an instance admin's list of users and invitations (users.py); and
  ``/ui/invitations/<secret>``, the page an invitation link opens (invitation.py);
* ``/ui/collections``: each project's collections, one collection's items searched by key
  pattern and paged, an item's value, creating and deleting (collections.py, issue 19);
* ``/ui/audit`` and ``/ui/projects/<id>/audit``: the audit trail, filtered, with each
  change's diff, and exported (audit_trail.py, issue 18);
* every page's header: runs waiting in the queue, and connected workers.

Live updates: a page holds one server-sent event stream (events.py) that says only *that*
runs changed (coordinator/changes.py, coalesced), and re-reads its small fragments then, the
same fetch-and-swap as a timer would do: the same template renders a list whether whole or in
part, and the stream carries nothing to resume after a coordinator restart (the page re-reads
when it reconnects). Each stream ends after five minutes and at once when the coordinator
drains, so none holds a shutdown up. A slow poll (``FULMEN_DASHBOARD_LIVE_POLL_SECONDS``)
catches what a stream missed, including other coordinators' changes, which are not relayed;
without ``EventSource``, or with a stream that keeps failing, the pages poll every 2 s.

Signing in is pages.py's (with an e-mail address and a password: coordinator/sign_in.py)
and session.py's; issue 18's second factor (``/ui/login/mfa``, ``/ui/account/mfa``:
second_factor.py), single sign-on (``/ui/login/sso``: sso.py) and the instance's settings
(``/ui/instance``: instance.py) are beside it. The Content-Security-Policy and the other
headers every response carries are headers.py's. Every page and form asks access.require
(through coordinator/guard.py) for the caller's role before it reads or changes anything, and
shows only the caller's projects; an AccessError is answered by forms.forbidden, every route
being forms.Guarded.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard import (
    account,
    alerts,
    audit_trail,
    collections,
    control,
    credentials,
    editing,
    events,
    find,
    instance,
    invitation,
    manual,
    members,
    pages,
    run,
    second_factor,
    settings,
    smart,
    sso,
    tokens,
    triggers,
    users,
    workflow,
)
from fulmen.coordinator.dashboard.bundle import EditorBundle
from fulmen.coordinator.dashboard.headers import SecurityHeaders
from fulmen.coordinator.dashboard.session import (
    PREFIX,
    EnrolmentRequired,
    SignInRequired,
    enrolment_required,
    sign_in_required,
)
from fulmen.coordinator.oidc_client import OidcClient

__all__ = ["PREFIX", "install"]

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, static files, sign-in handling and response headers
    (headers.py) to ``app``; ``app.state.editor_bundle`` is the code editor's script, which
    the coordinator's lifespan builds (:meth:`EditorBundle.build`)."""
    coordinator: Coordinator = app.state.coordinator
    config = coordinator.settings
    app.state.editor_bundle = EditorBundle(
        Path(config.dashboard_cache_dir), enabled=config.dashboard_editor_build
    )
    app.state.sso = OidcClient.from_settings(config)  # issue 18: None without a provider
    app.include_router(pages.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(run.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(events.router, prefix=PREFIX, include_in_schema=False)
    workspace = (
        workflow,
        editing,
        manual,
        control,
        find,
        credentials,
        triggers,
        settings,
        alerts,
        tokens,
        smart,
        members,
        audit_trail,  # issue 18
        collections,  # issue 19
    )
    for module in workspace:  # issue 17
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
    for module in (second_factor, sso, instance, account, users, invitation):  # issue 18
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(EnrolmentRequired, enrolment_required)
    app.add_middleware(SecurityHeaders, prefix=PREFIX)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(PREFIX, 303)
