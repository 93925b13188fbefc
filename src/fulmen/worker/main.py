"""The worker's composition root: settings in, one running worker out (STYLE.md P13).

:class:`Worker` wires the parts and runs them under one ``asyncio.TaskGroup``: the connection,
the ``worker:queue`` channel, one claim loop per workloop, one task per run, and the health
server. It holds no logic of its own beyond the order of shutdown:

* :meth:`Worker.stop` (SIGTERM, or a first SIGINT): stop claiming; a claim already in flight
  still completes and its runs still run (§10.4), if its answer comes within
  :data:`CLAIM_GRACE`; let active runs finish until the drain deadline (the drain timeout
  after the signal); then end the rest with ``kill``/``ShutdownError`` and give their reports
  a message timeout to go out; leave ``worker:queue`` and close the socket, giving the
  coordinator :data:`CLOSE_GRACE` to close its end. The process exits 0.
* :meth:`Worker.stop_now` (a second SIGINT): kill every child, report nothing more, exit.

ws-worker waits for active runs without a time limit; we bound the wait (by default the
longest a run may take, so that no run that could still succeed is cut short) because
orchestrators bound theirs. Every wait of a drain is bounded, and logged as it begins with
what it waits for and for how long at most; none waits for an answer the worker can do
without (the answers to ``phx_leave``: issue 14, where a worker signalled just after a run's
``run:complete`` waited 5 s for one and then 30 s for the answer to a claim that an idle
server never gave).

:func:`serve` is what ``fulmen worker`` runs: keys and workloops are checked before anything
starts (:func:`prepare`), then the sandbox starts, then the worker, with the signal handlers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

import fulmen
from fulmen.config import PUBLIC_KEY_VARIABLES, SECRET_VARIABLES, WorkerSettings, require
from fulmen.contract import ClaimedRun
from fulmen.errors import AdaptorError, ConfigError
from fulmen.execution import JS_SOURCE, JavaScript, Python, start_zygote
from fulmen.keys import load_public_key, load_worker_secret
from fulmen.listen import bind as listen_on
from fulmen.logcontext import bind
from fulmen.phoenix.client import ClientSession
from fulmen.plan import JAVASCRIPT
from fulmen.reasons import ExitReason, Reason
from fulmen.sandbox import Zygote
from fulmen.tokens import mint_worker_token
from fulmen.worker.channels import QueueChannel
from fulmen.worker.collections_gateway import CollectionsGateway, collections_url
from fulmen.worker.connection import Connection, reconnect_delays
from fulmen.worker.health import HealthServer, Metrics, Status
from fulmen.worker.refusals import Refusals
from fulmen.worker.run import Run, RunServices
from fulmen.worker.target import Resolver, Target, parse_targets, resolve
from fulmen.worker.workloop import (
    Workloop,
    WorkloopSpec,
    default_workloops,
    duplicates,
    parse_workloops,
    queue_join,
)

__all__ = ["CLAIM_GRACE", "CLOSE_GRACE", "Prepared", "Worker", "prepare", "serve"]

log = logging.getLogger(__name__)

CLAIM_GRACE: Final = 2.0
"""How long a drain waits for the answer to a claim in flight. Lightning answers a claim at
once, with runs or without; one still unanswered after this will not be (a server that
holds claims open while it has no work), and its runs, if any came, would go back to the
queue when their channel is not joined (§4.6)."""
CLOSE_GRACE: Final = 2.0
"""How long a stopping worker waits for the coordinator to close the TCP connection after
the close frame, so that it reads the last frames before the connection goes."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything start-up checks before anything runs; each failure is one ConfigError."""

    targets: tuple[Target, ...]
    secret: str
    public_key: RSAPublicKey
    workloops: tuple[WorkloopSpec, ...]


def prepare(settings: WorkerSettings) -> Prepared:
    """Check the URLs, secret, public key and workloops.

    Raises:
        ConfigError: one, naming the variable at fault.
    """
    if settings.collections_url is not None and not settings.collections_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigError(
            "--collections-url (WORKER_COLLECTIONS_URL) must be an http:// or https:// URL",
            code="bad_url",
        )
    secret = require(settings.secret, SECRET_VARIABLES)
    key = require(settings.public_key, PUBLIC_KEY_VARIABLES)
    if settings.workloops:
        loops = parse_workloops(settings.workloops)
    else:
        loops = default_workloops(settings.capacity)
    return Prepared(
        targets=parse_targets(settings.lightning_url),
        secret=load_worker_secret(secret.value, variable=secret.variable),
        public_key=load_public_key(key.value, variable=key.variable),
        workloops=loops,
    )


class Worker:
    """One worker: see the module docstring.

    Args:
        settings: the worker's settings.
        prepared: checked keys, URLs and workloops (:func:`prepare`).
        zygote: the started sandbox; the worker does not close it.
        javascript: Node.js and its packages' repository, if this host runs JavaScript jobs.
        python: where Python jobs' packages are installed, if uv is here.
        worker_id: the id in the worker token; random when omitted.
        reconnect: the reconnect schedule (tests shorten it).
        resolver: host name resolution (tests choose the address order).
        health: serve the health endpoints (on ``settings.health_host``/``port``, or on
            ``health_socket`` when it is bound already).
        collections: the collections gateway, bound before ``zygote`` started and forwarded
            into its runs' network (:func:`serve`); the worker serves it while it runs. None:
            jobs that use collections are told this worker has none.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        prepared: Prepared,
        *,
        zygote: Zygote,
        javascript: JavaScript | None = None,
        python: Python | None = None,
        worker_id: str | None = None,
        reconnect: Callable[[], Iterator[float]] = reconnect_delays,
        resolver: Resolver = resolve,
        health: bool = True,
        health_socket: socket.socket | None = None,
        collections: CollectionsGateway | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"fulmen-{secrets.token_hex(4)}"
        self.metrics = Metrics()
        token = mint_worker_token(prepared.secret, self.worker_id, now=time.time())
        session = ClientSession(default_timeout=settings.message_timeout)
        self.connection = Connection(
            prepared.targets,
            token,
            worker_version=fulmen.__version__,
            session=session,
            delays=reconnect,
            resolver=resolver,
            salt=self.worker_id,
        )
        self.queue = QueueChannel(
            self.connection,
            queue_join(prepared.workloops),
            claim_timeout=settings.claim_timeout,
            on_work_available=self._work_available,
            url=lambda: self.connection.url,
        )
        self.refusals = Refusals(
            settings.refusal_limit, settings.refusal_retry, on_resume=self._work_available
        )
        #: The job languages this worker runs: Python always, JavaScript where Node.js is.
        self.languages = ("python", "javascript") if javascript is not None else ("python",)
        self.loops = [self._loop(spec) for spec in prepared.workloops]
        self._zygote = zygote
        self._services = RunServices(
            link=self.connection,
            zygote=zygote,
            settings=settings,
            public_key=prepared.public_key,
            on_refused=lambda code: self.metrics.refused.labels(code).inc(),
            refusals=self.refusals,
            server_accepts=self.queue.accepts,
            javascript=javascript,
            python=python,
            collections=collections,
        )
        self.collections = collections
        if collections is not None:
            collections.upstream = lambda: collections_url(
                settings.collections_url, self.connection.target.url
            )
        self.health = HealthServer(
            self.metrics,
            self._status,
            host=settings.health_host,
            port=settings.port,
            sock=health_socket,
        )
        self._serve_health = health
        self._runs: dict[str, tuple[Run, asyncio.Task[None]]] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        """Set once the health server listens and the connection loop runs."""

    @property
    def capacity(self) -> int:
        return sum(loop.spec.slots for loop in self.loops)

    @property
    def active(self) -> int:
        return len(self._runs)

    def stop(self) -> None:
        """Drain and stop (SIGTERM)."""
        self._stopping.set()

    def stop_now(self) -> None:
        """Kill every run's child and stop at once (a second SIGINT)."""
        reason = ExitReason(Reason.KILL, "ShutdownError", "The worker was stopped at once")
        for run, _ in list(self._runs.values()):
            run.abort(reason)
        if self._main is not None:
            self._main.cancel()

    async def run(self) -> None:
        """Work until stopped; return after the drain."""
        self._main = asyncio.current_task()
        bind(worker=self.worker_id)  # every task started from here on inherits it
        if self._serve_health:
            await self.health.start()
        if self.collections is not None:
            await self.collections.start()
        self._describe()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self.connection.run())
                queue = tasks.create_task(self.queue.run())
                loops = [tasks.create_task(loop.run()) for loop in self.loops]
                self.started.set()
                await self._stopping.wait()
                await self._drain(loops)
                queue.cancel()
                await self.queue.leave()
                if self.connection.connected:
                    log.info(
                        "stopping: waiting up to %gs for %s to close the connection",
                        CLOSE_GRACE,
                        self.connection.url,
                    )
                await self.connection.close(timeout=CLOSE_GRACE)
        finally:
            await self.health.close()
            if self.collections is not None:
                await self.collections.close()
        log.info("worker %s stopped", self.worker_id)

    # -- runs ------------------------------------------------------------------------------

    def _loop(self, spec: WorkloopSpec) -> Workloop:
        return Workloop(
            spec,
            claim=self.queue.claim,
            start_run=self._start_run,
            queue=self.queue,
            worker_name=self.settings.worker_name,
            backoff_min=self.settings.backoff_min,
            backoff_max=self.settings.backoff_max,
            refusals=self.refusals,
            languages=self.languages,
        )

    def _work_available(self) -> None:
        for loop in self.loops:
            loop.work_available()

    def _start_run(self, claimed: ClaimedRun, loop: Workloop) -> None:
        self.metrics.claimed.inc()
        if claimed.id in self._runs or self._tasks is None:
            log.error("run %s was claimed again while it runs here; ignored", claimed.id)
            loop.run_finished()
            return
        run = Run(claimed, self._services)
        task = self._tasks.create_task(self._execute(run, loop))
        self._runs[claimed.id] = (run, task)

    async def _execute(self, run: Run, loop: Workloop) -> None:
        bind(run_id=run.id)  # this task's own context: the run's lines, and its outbox's
        self.metrics.active.inc()
        log.info("run %s claimed on %s", run.id, loop.spec.name)
        try:
            exit = await run.execute()
            if exit is not None:
                self.metrics.completed.labels(exit.reason.value).inc()
                log.info("run %s ended: %s", run.id, exit)
        except Exception:
            # A bug in one run must not end the others: log it whole and carry on.
            log.exception("run %s failed inside the worker", run.id)
        finally:
            self.metrics.active.dec()
            self._runs.pop(run.id, None)
            loop.run_finished()

    # -- shutdown --------------------------------------------------------------------------

    async def _drain(self, loops: Sequence[asyncio.Task[None]]) -> None:
        """Stop claiming, wait for claims in flight and active runs, end what is left; every
        wait bounded (see the module docstring)."""
        settings = self.settings
        limit = settings.drain_timeout or settings.max_run_duration
        for loop in self.loops:
            loop.stop()
        claims = sum(1 for loop in self.loops if loop.capacity.pending)
        if claims:
            log.info(
                "stopping: waiting up to %gs for the answer to %d claims in flight",
                min(limit, CLAIM_GRACE),
                claims,
            )
        if self._runs:
            log.info("stopping: waiting up to %gs for %d active runs", limit, len(self._runs))
        await self._wait_for_work(loops, limit)
        running = [task for _, task in self._runs.values()]
        if not running:
            return
        reason = ExitReason(
            Reason.KILL,
            "ShutdownError",
            f"The worker shut down before the run finished (drain limit {limit:g}s)",
        )
        for run, _ in list(self._runs.values()):
            run.abort(reason)
        log.info(
            "stopping: ended %d runs; waiting up to %gs for their reports",
            len(running),
            settings.message_timeout,
        )
        _, late = await asyncio.wait(running, timeout=settings.message_timeout)
        for task in late:
            task.cancel()

    async def _wait_for_work(self, loops: Sequence[asyncio.Task[None]], limit: float) -> None:
        """Wait until no claim is in flight and no run is active, or ``limit`` has passed.
        Claims get :data:`CLAIM_GRACE` of it, after which their loops are cancelled; runs
        that a claim answered meanwhile are waited for like the others."""
        now = time.monotonic()
        deadline = now + limit
        claims_deadline = now + min(limit, CLAIM_GRACE)
        claiming = {task for task in loops if not task.done()}
        try:
            while True:
                if claiming and now >= claims_deadline:
                    for task in claiming:
                        task.cancel()  # a claim the server does not answer
                    claiming = set()
                waiting = claiming | {task for _, task in self._runs.values()}
                if not waiting or now >= deadline:
                    return
                until = claims_deadline if claiming else deadline
                done, _ = await asyncio.wait(
                    waiting, timeout=until - now, return_when=asyncio.FIRST_COMPLETED
                )
                claiming -= done
                now = time.monotonic()
        finally:
            for task in claiming:
                task.cancel()

    # -- reporting -------------------------------------------------------------------------

    def _status(self) -> Status:
        return Status(
            ready=self.queue.ready,
            active=self.active,
            capacity=self.capacity,
            sandbox=self._zygote.isolation.level,
            problem=self.refusals.problem,
        )

    def _describe(self) -> None:
        isolation = self._zygote.isolation
        self.metrics.sandbox.info({"level": isolation.level, "summary": isolation.summary()})
        self.metrics.capacity.set(self.capacity)
        self.metrics.connected.set_function(lambda: 1.0 if self.queue.ready else 0.0)
        self.metrics.refused_in_a_row.set_function(lambda: self.refusals.in_a_row)
        self.metrics.claiming_stopped.set_function(lambda: 1.0 if self.refusals.stopped else 0.0)
        loops = " ".join(str(loop.spec) for loop in self.loops)
        for name in duplicates([loop.spec for loop in self.loops]):
            log.warning("workloop %s is configured more than once", name)
        health = (
            f"; health on http://{self.settings.health_host}:{self.health.port}"
            if self._serve_health
            else ""
        )
        urls = [target.url for target in self.connection.targets]
        log.info(
            "worker %s (fulmen %s): %s %s, workloops %s%s",
            self.worker_id,
            fulmen.__version__,
            "coordinator" if len(urls) == 1 else "coordinators",
            ", ".join(urls),
            loops,
            health,
        )
        log.info("sandbox: %s", isolation.summary())
        if self.collections is not None:
            log.info(
                "collections: jobs reach %s through the gateway on %s",
                self.collections.upstream(),
                self.collections.allow,
            )


async def find_javascript(settings: WorkerSettings) -> JavaScript | None:
    """This host's Node.js; None, said in the log, on a host that runs Python only or when
    ``WORKER_LANGUAGES`` leaves JavaScript out.

    Raises:
        ConfigError: ``WORKER_LANGUAGES`` names JavaScript and this host cannot run it.
    """
    if settings.languages is not None and JAVASCRIPT not in settings.languages:
        log.info("JavaScript jobs: not run here (WORKER_LANGUAGES); Python jobs only")
        return None
    javascript, why_not = await JavaScript.find(Path(settings.repo_dir))
    if javascript is None and settings.languages is not None:
        raise ConfigError(
            f"WORKER_LANGUAGES asks for JavaScript, which this host cannot run: {why_not}",
            code="bad_value",
        )
    if javascript is None:
        log.warning("JavaScript jobs: not run here (%s); Python jobs only", why_not)
        return None
    log.info("JavaScript jobs: Node.js %s, packages in %s", javascript.version, settings.repo_dir)
    return javascript


def find_python(settings: WorkerSettings) -> Python | None:
    """Where Python jobs' packages are installed; None, said in the log, without uv (runs
    whose jobs pin packages then end with AdaptorError)."""
    python, why_not = Python.find(settings)
    if python is None:
        log.warning("Python packages: none can be installed here (%s)", why_not)
    else:
        log.info(
            "Python packages: installed for runs into %s from %s",
            python.repo.base,
            settings.python_index or "uv's default index",
        )
    return python


async def install_runtime(javascript: JavaScript) -> None:
    """OpenFn's runtime, installed while the worker starts claiming, so that the first
    JavaScript run does not wait for it (if it comes first, it waits for this install)."""
    try:
        await javascript.repo.host(JS_SOURCE, log.info)
    except AdaptorError as exc:
        log.warning("OpenFn's runtime could not be installed yet: %s", exc.message)


async def serve(settings: WorkerSettings, prepared: Prepared) -> int:
    """Run ``fulmen worker`` until a signal stops it; return the exit status.

    SIGTERM and a first SIGINT drain (exit 0); a second SIGINT stops at once (exit 130).

    Raises:
        SandboxError: the sandbox did not start, or gives less than
            ``settings.sandbox.isolation``.
    """
    # Bound first: a port in use is said in one line before the sandbox starts.
    health = listen_on(settings.health_host, settings.port, flag="-p/--port (WORKER_PORT)")
    javascript = await find_javascript(settings)
    python = find_python(settings)
    if javascript is not None and settings.collections_version:
        javascript.collections_version = settings.collections_version
    # Its port is forwarded into the runs' network: bound before the sandbox starts.
    gateway = CollectionsGateway()
    allow = (*settings.sandbox.allow_net, gateway.allow)
    async with await start_zygote(settings.sandbox, javascript, python, allow=allow) as zygote:
        worker = Worker(
            settings,
            prepared,
            zygote=zygote,
            javascript=javascript,
            python=python,
            health_socket=health,
            collections=gateway,
        )
        main = asyncio.create_task(worker.run())
        installing = asyncio.create_task(install_runtime(javascript)) if javascript else None
        interrupts = 0

        def on_sigint() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                log.warning("stopping: finishing active runs (interrupt again to stop at once)")
                worker.stop()
            else:
                worker.stop_now()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, worker.stop)
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            await main
        except asyncio.CancelledError:
            if interrupts < 2:
                raise
            return 130
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)
            if installing is not None:
                installing.cancel()
    return 0
