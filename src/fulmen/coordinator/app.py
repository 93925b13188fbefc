"""The composition root: settings in, a running coordinator out. No logic lives here.

``build_coordinator`` opens the store and wires the shared parts; ``build_app`` makes the
ASGI app (REST API, webhooks, health, the worker socket, the dashboard) whose lifespan runs
the background services under one task group: the hub's push loop, wake-up listener and
poll, the reaper, the cron scheduler, the retention sweep, the alert dispatcher (alerts/),
the heap trim (heap.py) and the build of the dashboard's code editor (dashboard/bundle.py).
Tests build apps with their own store and clock and drive the services directly
(``services=False``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import WebSocketRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from fulmen import __version__
from fulmen.clock import SYSTEM_CLOCK, Clock
from fulmen.config import CoordinatorSettings
from fulmen.coordinator import (
    api,
    bodies,
    collections_api,
    dashboard,
    health,
    heap,
    redaction,
    webhooks,
)
from fulmen.coordinator.alerts import AlertDispatcher
from fulmen.coordinator.core import Coordinator, Keys, credential_key, database_url
from fulmen.coordinator.hub import Hub
from fulmen.coordinator.metrics import Metrics
from fulmen.coordinator.reaper import Reaper
from fulmen.coordinator.retention import Retention
from fulmen.coordinator.scheduler import Scheduler
from fulmen.coordinator.socket import PATH, worker_socket
from fulmen.coordinator.telemetry import telemetry_settings
from fulmen.store import Store, open_store, sqlite_path
from fulmen.store.sole import sole_coordinator
from fulmen.store.wakeups import CHANGES, NoWakeups, Wakeups, open_wakeups

__all__ = ["build_app", "build_coordinator", "open_coordinator"]


def build_coordinator(
    settings: CoordinatorSettings,
    store: Store,
    *,
    keys: Keys | None = None,
    clock: Clock = SYSTEM_CLOCK,
    wakeups: Wakeups | None = None,
    change_wakeups: Wakeups | None = None,
) -> Coordinator:
    metrics = Metrics()
    hub = Hub(
        store,
        wakeups or NoWakeups(),
        poll_interval=settings.work_poll_interval,
        on_count=metrics.connected_workers.set,
        change_wakeups=change_wakeups,
    )
    return Coordinator(
        settings=settings,
        store=store,
        keys=keys or Keys.from_settings(settings),
        clock=clock,
        hub=hub,
        metrics=metrics,
    )


@asynccontextmanager
async def open_coordinator(settings: CoordinatorSettings) -> AsyncIterator[Coordinator]:
    """Open the store named by the settings and build the coordinator around it.

    Raises:
        ConfigError: missing or malformed keys or settings; StoreError: no database. A
            SQLite store another coordinator serves is said in a warning (store/sole.py).
    """
    keys = Keys.from_settings(settings)
    url = database_url(settings)
    store = await open_store(url, credential_key=credential_key(settings))
    with ExitStack() as held:
        try:
            if store.dialect == "sqlite":
                held.enter_context(sole_coordinator(sqlite_path(url)))
        except BaseException:
            await store.close()
            raise
        wakeups = open_wakeups(url)
        changes = open_wakeups(url, CHANGES)
        try:
            yield build_coordinator(
                settings, store, keys=keys, wakeups=wakeups, change_wakeups=changes
            )
        finally:
            await changes.close()
            await wakeups.close()
            await store.close()


def build_app(coordinator: Coordinator, *, services: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not services:
            yield
            return
        tasks = [
            coordinator.hub.listen(),
            coordinator.hub.relay_changes(),
            coordinator.hub.poll(),
            Reaper(coordinator).run(),
            Scheduler(coordinator).run(),
            Retention(coordinator).run(),
            AlertDispatcher(coordinator).run(),
            heap.trim_forever(),
            app.state.editor_bundle.build(),  # the dashboard's code editor, if not built yet
        ]
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(task) for task in tasks]
            heap.freeze_startup()
            try:
                yield
            finally:
                heap.thaw()
                for task in running:
                    task.cancel()

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from the
    # coordinator (/static-offline-docs), not from a CDN: the docs work with no internet.
    # Swagger UI's validator badge is off: it is an image from validator.swagger.io.
    app = FastAPIOffline(
        swagger_ui_parameters={"validatorUrl": None},
        **telemetry_settings(),  # FastAPI's own OpenTelemetry: off with no provider (telemetry.py)
        title="Fulmen coordinator",
        version=__version__,
        summary="Runs workflows: webhooks, cron, the REST API, and the Lightning worker socket.",
        lifespan=lifespan,
    )
    app.state.coordinator = coordinator
    redaction.install()  # the worker token is in the socket's URL, which uvicorn logs
    api.install(app)
    # Installed last, so outermost: every body limit holds before the API's token check.
    bodies.install(app, int(coordinator.settings.max_dataclip_size_mb * 1024 * 1024))
    # Webhooks first: routes are matched in order, and a webhook is the hot path (one route
    # tried instead of every API route's pattern before it).
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(collections_api.router)
    app.include_router(health.router)
    app.router.routes.append(WebSocketRoute(PATH, worker_socket))
    dashboard.install(app)
    if coordinator.settings.trusted_proxies:
        # Outermost: every part of the app (sessions, the audit trail) sees the client a
        # trusted proxy names, and only a trusted proxy is believed (FULMEN_TRUSTED_PROXIES;
        # the servers that serve this app turn uvicorn's own proxy headers off).
        proxies = list(coordinator.settings.trusted_proxies)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app
