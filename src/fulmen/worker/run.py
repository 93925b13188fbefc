"""One claimed run, from its token to ``phx_leave`` (spec §3.2, §5).

1. The run token is verified first (signature, issuer, time, run id: ``fulmen.tokens``). A bad
   token is refused: nothing is joined, fetched or run, the refusal is logged and counted, and
   the slot is freed at once. ws-worker instead shuts itself down (§3.2), which we do not
   copy: one bad token must not stop the other runs. Refusals in a row do stop claiming
   (``fulmen.worker.refusals``, issue 14). A coordinator that takes ``run:refuse`` (Fulmen's
   says so when ``worker:queue`` is joined) is told, on ``worker:queue`` with the token as
   proof of the claim: it puts the run back in the queue at once and notes why on the run.
   Lightning is told nothing (it has no such event, and an unknown one crashes its channel);
   it gets the run back when the claim times out (§4.6) or marks it lost (§7.5). Joining
   ``run:<id>`` to say so instead would tell Lightning the run was taken up.
2. ``run:<id>`` is joined with the token; ``fetch:plan``, then ``fetch:dataclip`` (if the plan
   names one) and one ``fetch:credential`` per credential id, all at once (§5.3-§5.5). A
   dataclip or credential that does not load ends the run with ``exception`` and no
   ``run:start``; a plan that cannot be fetched ends it without a report (§5.3). When the
   claim brought the plan and input (a Fulmen coordinator, ``CLAIM_FETCHES``), the run
   starts at once, and the channel is joined when the run first has something to send
   there: its credentials to fetch, or its first frame of reports, which then goes inside
   the join (``JOIN_REPORTS``).
3. The whole workflow runs in one sandboxed child (``fulmen.execution``) with the plan's
   limits, the worker's defaults filling the gaps (§7.2); its events go through
   :class:`~fulmen.worker.events.RunEvents` into the run's :class:`~fulmen.worker.outbox.Outbox`,
   which batches log lines (``run:batch_logs``, §5.9) when ``WORKER_BATCH_LOGS`` says so or
   when the server said, joining ``worker:queue``, that it takes them.
4. After ``run:complete`` has been answered, the channel is left.

:meth:`Run.abort` ends a run early with a reason (shutdown): its child is killed and the run
is reported as ended with that reason. The coordinator asks for the same with a
``run:cancel`` push on the run channel (issue 8: someone cancelled the run): the run then
ends with reason ``cancel`` (stored as ``cancelled``), its active step too; a push of any
other event is ignored, as ws-worker ignores events it has no handler for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from fulmen.config import WorkerSettings
from fulmen.contract import (
    FETCHABLE,
    JOIN_FETCHES,
    JOIN_REPORTS,
    JSON,
    WORKER_QUEUE,
    ClaimedRun,
    CredentialReply,
    DataclipReply,
    ErrorReply,
    Event,
    FetchCredential,
    FetchDataclip,
    RunJoined,
    RunRefusal,
    decode_plan_reply,
)
from fulmen.errors import ContractError, RefusedError, SandboxError, TokenError, WorkerError
from fulmen.execution import Defaults, Execution, JavaScript, Python, RunRequest, start
from fulmen.logcontext import bind
from fulmen.phoenix.client import Push
from fulmen.plan import JAVASCRIPT, Plan
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime import events as rt
from fulmen.sandbox import Zygote
from fulmen.tokens import RunClaims, verify_run_token
from fulmen.worker.channels import Link, RunChannel
from fulmen.worker.collections_gateway import NO_GATEWAY, CollectionsGateway
from fulmen.worker.events import RunEvents, RunLimits
from fulmen.worker.outbox import Outbox
from fulmen.worker.refusals import Refusals

__all__ = ["CANCELLED", "Run", "RunServices", "limits_of", "with_defaults"]

log = logging.getLogger(__name__)

#: How a run the coordinator cancelled ends (the execution's own words for a killed child).
CANCELLED = ExitReason(Reason.CANCEL, "CancelError", "The run was cancelled")


@dataclass(frozen=True, slots=True)
class RunServices:
    """What every run needs from the worker, passed in (STYLE.md P13)."""

    link: Link
    zygote: Zygote
    settings: WorkerSettings
    public_key: RSAPublicKey
    on_refused: Callable[[str], None]
    """Counts a refusal by its code (the metric)."""
    refusals: Refusals
    clock: Callable[[], float] = time.time
    server_accepts: Callable[[str], bool] = lambda event: False
    """Whether the server takes an optional event (``QueueChannel.accepts``)."""
    javascript: JavaScript | None = None
    """Node.js and its packages, when this host runs JavaScript jobs."""
    python: Python | None = None
    """Where Python jobs' packages are installed (None without uv)."""
    collections: CollectionsGateway | None = None
    """The worker's collections gateway (issue 19); None: runs are told they have none."""


def with_defaults(plan: Plan, settings: WorkerSettings, *, run_id: str) -> Plan:
    """The plan as the run executes it: with the run's id, and every limit set, its own
    options first, the worker's defaults after (§6.1, §10.5). The child reads them from the
    plan (log size, state size). One ``replace`` of the plan: it runs once per run."""
    options = plan.options
    filled = dataclasses.replace(
        options,
        run_timeout_ms=options.run_timeout_ms or round(settings.max_run_duration * 1000),
        run_memory_limit_mb=options.run_memory_limit_mb or settings.max_run_memory_mb,
        payload_limit_mb=options.payload_limit_mb or settings.max_payload_mb,
        log_payload_limit_mb=options.log_payload_limit_mb or settings.max_log_payload_mb,
    )
    return dataclasses.replace(plan, id=run_id, options=filled)


def limits_of(plan: Plan) -> RunLimits:
    """The limits of a plan that went through :func:`with_defaults`."""
    options = plan.options
    return RunLimits(
        timeout_ms=options.run_timeout_ms or 0,
        memory_mb=options.run_memory_limit_mb or 0,
        payload_mb=options.payload_limit_mb or 0,
        output_dataclips=options.output_dataclips,
    )


class _LoadFailed(Exception):
    """A dataclip or credential did not load: the run ends with this reason."""

    def __init__(self, reason: ExitReason) -> None:
        super().__init__(reason.error_message)
        self.reason = reason


class Run:
    """One claimed run; see the module docstring. Call :meth:`execute` once."""

    def __init__(self, claimed: ClaimedRun, services: RunServices) -> None:
        self.id = claimed.id
        self._token = claimed.token
        self._fetched = claimed.fetched
        self._services = services
        self._settings = services.settings
        self._execution: Execution | None = None
        self._abort: ExitReason | None = None

    def abort(self, reason: ExitReason) -> None:
        """End the run now with ``reason``: its child is killed if it is running."""
        if self._abort is None:
            self._abort = reason
        if self._execution is not None:
            self._execution.cancel()

    async def execute(self) -> ExitReason | None:
        """Run it; return how it ended, or ``None`` if it was refused or never reported."""
        try:
            claims = self._verify()
        except TokenError as exc:
            await self._refuse(exc)
            return None
        channel = RunChannel(
            self._services.link,
            self.id,
            self._token,
            expires_at=float(claims.exp),
            clock=self._services.clock,
            join_first=self._fetched is not None,
            reports_in_join=self._services.server_accepts(JOIN_REPORTS),
        )
        self._services.link.on_push(channel.topic, self._on_push)
        joined = self._fetched  # the claim brought the run: its channel is joined to report
        if joined is None:
            fetch = FETCHABLE if self._services.server_accepts(JOIN_FETCHES) else ()
            try:
                joined = RunJoined.from_wire(await channel.join(fetch=fetch))
            except WorkerError as exc:
                log.error("run %s: could not join its channel: %s", self.id, exc.message)
                return None
        try:
            return await self._report(channel, joined)
        finally:
            await channel.leave()

    def _on_push(self, push: Push) -> None:
        if push.event == Event.RUN_CANCEL:
            log.info("run %s: the coordinator cancelled it; stopping it", self.id)
            self.abort(CANCELLED)

    def _verify(self) -> RunClaims:
        """§3.2, before anything else; the run id is checked too.

        Raises:
            TokenError: the token does not verify (already counted and logged).
        """
        try:
            claims = verify_run_token(
                self._token,
                self._services.public_key,
                run_id=self.id,
                now=self._services.clock(),
            )
        except TokenError as exc:
            self._services.on_refused(exc.code)
            log.error(
                "run %s refused: its run token is not valid (%s: %s); it is not joined and "
                "goes back to the coordinator",
                self.id,
                exc.code,
                exc.message,
            )
            self._services.refusals.refused(exc)
            raise
        self._services.refusals.verified()
        return claims

    async def _refuse(self, error: TokenError) -> None:
        """Tell the coordinator, if it takes ``run:refuse`` (step 1 of the module docstring)."""
        if not self._services.server_accepts(Event.RUN_REFUSE):
            return
        refusal = RunRefusal(self.id, self._token, error.code, error.message)
        try:
            await self._services.link.request(WORKER_QUEUE, Event.RUN_REFUSE, refusal.to_wire())
        except WorkerError as exc:
            log.warning(
                "run %s: the coordinator did not take the refusal (%s); it gets the run back "
                "when the claim lapses",
                self.id,
                exc.message,
            )

    async def _report(self, channel: RunChannel, joined: RunJoined) -> ExitReason | None:
        settings = self._settings
        outbox = Outbox(
            channel,
            self.id,
            batch_logs=settings.batch_logs or self._services.server_accepts(Event.RUN_BATCH_LOGS),
            bundle=self._services.server_accepts(Event.RUN_REPORTS),
            batch_limit=settings.batch_limit,
            batch_interval=settings.batch_interval_ms / 1000,
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(outbox.run())
            try:
                return await self._produce(channel, outbox, joined)
            finally:
                outbox.close()

    async def _produce(
        self, channel: RunChannel, outbox: Outbox, joined: RunJoined
    ) -> ExitReason | None:
        """Load the run (what the join's answer did not bring is fetched), then execute it."""
        try:
            plan = await self._fetch_plan(channel, joined)
        except WorkerError as exc:
            log.error("run %s: could not fetch its plan: %s", self.id, exc.message)
            return None
        except ContractError as exc:
            report = RunEvents(Plan(id=self.id, jobs=()), limits_of(Plan(id=self.id, jobs=())))
            reason = ExitReason(Reason.CRASH, "ValidationError", f"the plan: {exc.message}")
            outbox.put(report.fail(reason))
            return report.exit
        plan = with_defaults(plan, self._settings, run_id=self.id)
        javascript = self._services.javascript
        scripted = javascript is not None and any(j.runs_in == JAVASCRIPT for j in plan.jobs)
        report = RunEvents(
            plan, limits_of(plan), runtimes=javascript.versions if scripted and javascript else None
        )
        try:
            state = await self._fetch_input(channel, plan, joined)
            credentials = await self._fetch_credentials(channel, plan)
        except _LoadFailed as failed:
            outbox.put(report.fail(failed.reason))
            return report.exit
        if self._abort is not None:
            outbox.put(report.fail(self._abort))
            return report.exit
        outbox.put(report.preamble())
        shared, granted = self._collections(plan)
        try:
            await self._execute(RunRequest(plan, state, credentials, shared), report, outbox)
        finally:
            if granted is not None and self._services.collections is not None:
                self._services.collections.revoke(granted)
        return report.exit

    def _collections(self, plan: Plan) -> tuple[dict[str, str], str | None]:
        """The collections endpoint and a token of the run's own for its jobs, when a job
        names ``collections.`` (as ws-worker gives them only then); the token to revoke."""
        if not any(job.uses_collections for job in plan.jobs):
            return {}, None
        gateway = self._services.collections
        if gateway is None:
            return {"collections_unavailable": NO_GATEWAY}, None
        return gateway.settings_for(self._token, self._settings.sandbox.network)

    async def _fetch_plan(self, channel: RunChannel, joined: RunJoined) -> Plan:
        response: JSON | bytes = joined.plan
        if response is None:
            response = await channel.request(Event.FETCH_PLAN, {})
        if isinstance(response, bytes):
            raise ContractError("the plan came as a binary frame", code="bad_plan")
        return Plan.from_wire(decode_plan_reply(response))

    async def _fetch_input(
        self, channel: RunChannel, plan: Plan, joined: RunJoined
    ) -> dict[str, Any]:
        dataclip_id = plan.dataclip_id
        if dataclip_id is None:
            return {}  # §6.2: no dataclip means an empty input
        try:
            if joined.has_dataclip:
                body: JSON = joined.dataclip
            else:
                response = await channel.request(
                    Event.FETCH_DATACLIP, _wire(FetchDataclip(dataclip_id))
                )
                body = DataclipReply.from_wire(response).json()
        except (WorkerError, ContractError) as exc:
            raise _LoadFailed(_load_error("DataClipError", "dataclip", dataclip_id, exc)) from exc
        if not isinstance(body, dict):
            error = ContractError("it is not a JSON object", code="bad_dataclip")
            raise _LoadFailed(_load_error("DataClipError", "dataclip", dataclip_id, error))
        return body

    async def _fetch_credentials(
        self, channel: RunChannel, plan: Plan
    ) -> dict[str, Mapping[str, Any]]:
        """Every credential at once: the only requests that overlap on a run channel (§5.4)."""
        ids = sorted({job.credential_id for job in plan.jobs if job.credential_id is not None})
        if not ids:
            return {}
        replies = await asyncio.gather(
            *(channel.request(Event.FETCH_CREDENTIAL, _wire(FetchCredential(i))) for i in ids),
            return_exceptions=True,
        )
        credentials: dict[str, Mapping[str, Any]] = {}
        failures: list[str] = []
        for credential_id, reply in zip(ids, replies, strict=True):
            try:
                if isinstance(reply, BaseException):
                    raise reply
                body = CredentialReply.from_wire(None if isinstance(reply, bytes) else reply).body
            except (WorkerError, ContractError) as exc:
                failures.append(_load_message("credential", credential_id, exc))
                continue
            if body is not None:
                credentials[credential_id] = body
        if failures:
            reason = ExitReason(Reason.EXCEPTION, "CredentialLoadError", "\n".join(failures))
            raise _LoadFailed(reason)
        return credentials

    async def _execute(self, request: RunRequest, report: RunEvents, outbox: Outbox) -> None:
        options = request.plan.options
        defaults = Defaults(options.run_timeout_ms or 0, options.run_memory_limit_mb or 0)
        try:
            execution = await start(
                self._services.zygote,
                request,
                defaults,
                self._services.javascript,
                self._services.python,
            )
        except SandboxError as exc:
            outbox.put(report.fail(ExitReason(Reason.EXCEPTION, "ExecutionError", exc.message)))
            return
        self._execution = execution
        report.packages = execution.packages
        if self._abort is not None:
            execution.cancel()
        async for event in execution:
            if isinstance(event, rt.StepStart):
                bind(step_id=event.step_id)
            elif isinstance(event, rt.StepComplete):
                bind(step_id=None)
            if self._abort is None:
                outbox.put(report.feed(event))
        if self._abort is not None and report.exit is None:
            outbox.put(report.abort(self._abort))


def _wire(payload: FetchDataclip | FetchCredential) -> JSON:
    return payload.to_wire()


def _load_error(kind: str, what: str, ident: str, exc: Exception) -> ExitReason:
    return ExitReason(Reason.EXCEPTION, kind, _load_message(what, ident, exc))


def _load_message(what: str, ident: str, exc: Exception) -> str:
    """``Failed to load credential <id>: <what the server said>`` (§5.4, §5.5)."""
    if isinstance(exc, RefusedError):
        # the response came off the wire as decoded JSON
        detail = ErrorReply.from_wire(cast(JSON, exc.response)).describe()
    else:
        detail = exc.message if isinstance(exc, WorkerError | ContractError) else str(exc)
    return f"Failed to load {what} {ident}: {detail}"
