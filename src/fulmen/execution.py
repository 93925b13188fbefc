"""Run one workflow in a sandboxed child and get back a complete, well-ordered event stream.

The runtime inside the child reports what it did; this module makes sure the stream always
ends properly even when the child cannot say so itself. A child killed at the run timeout, one
that ran out of memory, and one that died for any other reason all end with a ``step-complete``
for the step that was active (output ``{}``, no timestamp, as §7.1 describes for the error path)
and a ``workflow-complete`` with the reason the spec names. Both the local CLI and the worker
consume this stream, so they can never disagree on how a run ended.

A run with JavaScript jobs needs Node.js and the packages its jobs name: :class:`JavaScript`
installs them, outside the sandbox and before the child starts, into the repository the
sandbox lets children read; what it says while installing is in the run's log, right after
its start. A package that cannot be installed ends the run as a crash (``AdaptorError``)
without a child. A host without Node.js runs no JavaScript: its runs with JavaScript jobs end
with ``LanguageError``, never run as Python.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from fulmen.adaptor_versions import Wanted, parse_request
from fulmen.config import SandboxSettings
from fulmen.errors import AdaptorError, ContractError, InputError
from fulmen.packages.npm import NpmRepo
from fulmen.plan import JAVASCRIPT, Plan
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime.entry import ENTRY, PRELOAD, WARM_UP
from fulmen.runtime.events import (
    LogLine,
    RuntimeEvent,
    StepComplete,
    StepStart,
    WorkflowComplete,
    WorkflowStart,
    decode,
    timestamp_us,
)
from fulmen.runtime.jshost import JsAdaptor, JsSetup
from fulmen.sandbox import ChildExit, Limits, RunHandle, Zygote
from fulmen.scrub import Scrubber

__all__ = [
    "Defaults",
    "Execution",
    "JavaScript",
    "RunRequest",
    "aborted_step",
    "exit_reason_for",
    "limits_for",
    "start",
    "start_zygote",
]


@dataclass(frozen=True, slots=True)
class Defaults:
    """Limits used when the plan's options do not set them (the JS worker's defaults, §10.5)."""

    run_timeout_ms: int = 300_000
    run_memory_limit_mb: int = 500


@dataclass(frozen=True, slots=True)
class RunRequest:
    plan: Plan
    input: Mapping[str, Any] = field(default_factory=dict)
    #: Credential bodies by credential id; they go to the child only, never the zygote.
    credentials: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def credential_bodies(self) -> list[Mapping[str, Any]]:
        inline = [job.credential for job in self.plan.jobs if job.credential is not None]
        return [*self.credentials.values(), *inline]

    def payload(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_wire(),
            "input": dict(self.input),
            "credentials": {k: dict(v) for k, v in self.credentials.items()},
        }


#: Fulmen's host for OpenFn's runtime, shipped in the package (installed by :class:`JavaScript`).
JS_SOURCE: Final = Path(__file__).resolve().parent / "runtime" / "js"
#: The oldest Node.js OpenFn's runtime supports.
NODE_MAJOR_MIN: Final = 18
#: The version of OpenFn's runtime the host is pinned to.
RUNTIME_VERSION: Final = str(
    json.loads((JS_SOURCE / "package.json").read_text())["dependencies"]["@openfn/runtime"]
)


@dataclass
class JavaScript:
    """Node.js on this host, and the repository its runs' packages are installed into."""

    node: str
    version: str
    repo: NpmRepo

    @classmethod
    async def find(cls, repo_dir: Path) -> tuple[JavaScript | None, str]:
        """This host's Node.js, or None and why not (the worker then runs Python only)."""
        node = shutil.which("node")
        if node is None:
            return None, "Node.js is not installed (no node on PATH)"
        try:
            process = await asyncio.create_subprocess_exec(
                node, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            out, _ = await process.communicate()
        except OSError as exc:
            return None, f"{node} could not be run: {exc.strerror}"
        version = out.decode().strip().removeprefix("v")
        major = version.split(".")[0]
        if not major.isdigit() or int(major) < NODE_MAJOR_MIN:
            return None, f"Node.js {version or 'of unknown version'} is older than {NODE_MAJOR_MIN}"
        repo = NpmRepo(repo_dir)
        repo.prepare()
        return cls(node, version, repo), ""

    @property
    def versions(self) -> dict[str, str]:
        """What runs JavaScript jobs, as ws-worker's ``run:start`` names it."""
        return {"node": self.version, "runtime": RUNTIME_VERSION}

    async def setup_for(self, plan: Plan, progress: Callable[[str], None]) -> JsSetup:
        """Install what ``plan``'s JavaScript jobs need; where it is, for the child.

        Raises:
            AdaptorError: a package could not be resolved or installed (npm's reason).
        """
        host = await self.repo.host(JS_SOURCE, progress)
        adaptors: dict[str, JsAdaptor] = {}
        for job in plan.jobs:
            if job.runs_in != JAVASCRIPT or job.adaptor in adaptors:
                continue
            try:
                request = parse_request(job.adaptor)
            except InputError as exc:
                raise AdaptorError(f"job {job.name or job.id}: {exc.message}") from exc
            wanted = request.wanted if request.kind is Wanted.VERSION else None
            version = wanted or await self.repo.resolve(request.package, request.wanted, progress)
            installed = await self.repo.adaptor(request.package, version, progress)
            adaptors[job.adaptor] = JsAdaptor(request.package, str(installed.path))
        return JsSetup(self.node, str(host.path / "host.mjs"), adaptors)


def limits_for(plan: Plan, defaults: Defaults) -> Limits:
    options = plan.options
    timeout_ms = options.run_timeout_ms or defaults.run_timeout_ms
    return Limits(
        timeout_s=timeout_ms / 1000,
        memory_mb=options.run_memory_limit_mb or defaults.run_memory_limit_mb,
        cpu_s=None,
    )


def exit_reason_for(exit: ChildExit, timeout_ms: int, scrubber: Scrubber) -> ExitReason:
    """How a run ends when its child ended without completing it (§7.1, §7.2).

    The child's own exit message can quote job code's exception, so it is scrubbed.
    """
    if exit.kind == "killed":
        return ExitReason(Reason.CANCEL, "CancelError", "The run was cancelled")
    if exit.kind == "timeout":
        return ExitReason(
            Reason.KILL, "TimeoutError", f"Workflow failed to return within {timeout_ms}ms"
        )
    if exit.kind == "oom":
        return ExitReason(Reason.KILL, "OOMError", "Run exceeded maximum memory usage")
    return ExitReason(Reason.CRASH, "ExitError", scrubber.text(exit.message))


class Execution:
    """One run in progress: iterate it for events; ``cancel()`` ends the child at once.

    ``prelude``: lines about the run from before its child started (installing packages),
    given right after the child's workflow-start. Without a ``handle`` no child was started,
    because of ``refused``: the run is then its start, the prelude and its end.
    """

    def __init__(
        self,
        handle: RunHandle | None,
        timeout_ms: int,
        scrubber: Scrubber,
        prelude: list[LogLine] | None = None,
        refused: ExitReason | None = None,
    ) -> None:
        self._handle = handle
        self._timeout_ms = timeout_ms
        self._scrubber = scrubber
        self._prelude = prelude or []
        self._refused = refused
        self.exit: ChildExit | None = None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.kill()

    async def __aiter__(self) -> AsyncIterator[RuntimeEvent]:
        if self._handle is None:
            yield WorkflowStart(timestamp_us())
            for line in self._prelude:
                yield line
            reason = self._refused or ExitReason(Reason.CRASH, "ExecutionError", "no child")
            for line in _status_lines(reason):
                yield line
            yield WorkflowComplete(
                reason.reason.value, reason.error_type, reason.error_message, None, []
            )
            return
        active: StepStart | None = None
        complete: WorkflowComplete | None = None
        prelude = self._prelude
        async for raw in self._handle:
            try:
                event = decode(raw)
            except ContractError:
                self._handle.kill()  # a child that speaks nonsense is not trusted further
                break
            if isinstance(event, WorkflowComplete):
                complete = event  # held back: the status lines go first (§5.11)
                continue
            if isinstance(event, StepStart):
                active = event
            elif isinstance(event, StepComplete):
                active = None
            yield event
            if prelude and isinstance(event, WorkflowStart):
                for line in prelude:
                    yield line
                prelude = []
        self.exit = await self._handle.wait()
        if complete is None:
            reason = exit_reason_for(self.exit, self._timeout_ms, self._scrubber)
            if active is not None:
                yield aborted_step(active, reason)
            complete = WorkflowComplete(
                reason.reason.value, reason.error_type, reason.error_message, None, []
            )
        for line in _status_lines(complete.exit):
            yield line
        yield complete


async def start_zygote(
    sandbox: SandboxSettings | None = None, javascript: JavaScript | None = None, **options: Any
) -> Zygote:
    """The zygote for workflow runs: the runtime preloaded and warmed up, isolated as
    ``sandbox`` asks (see ``Zygote.start``; ``options`` go to it and win); with
    ``javascript``, its runs may read the repository of its packages.

    Raises:
        SandboxError: the zygote did not start, or gives less than ``sandbox.isolation``
            (code ``isolation_unavailable``, naming what is missing).
    """
    sandbox = sandbox or SandboxSettings()
    chosen: dict[str, Any] = {
        "minimum_level": sandbox.isolation,
        "network": sandbox.network,
        "allow": sandbox.allow_net,
        "read_only": [str(javascript.repo.root)] if javascript is not None else [],
    }
    return await Zygote.start(preload=PRELOAD, warm_up=WARM_UP, **{**chosen, **options})


async def start(
    zygote: Zygote,
    request: RunRequest,
    defaults: Defaults,
    javascript: JavaScript | None = None,
) -> Execution:
    """Start the run in a fresh child; the payload goes straight to that child."""
    limits = limits_for(request.plan, defaults)
    timeout_ms = request.plan.options.run_timeout_ms or defaults.run_timeout_ms
    scrubber = Scrubber(request.credential_bodies())
    payload = request.payload()
    prelude: list[LogLine] = []
    warm: dict[str, Any] | None = None
    if javascript is not None and any(j.runs_in == JAVASCRIPT for j in request.plan.jobs):

        def progress(text: str) -> None:
            prelude.append(LogLine("info", "R/T", [text], timestamp_us()))

        try:
            setup = await javascript.setup_for(request.plan, progress)
        except AdaptorError as exc:
            reason = ExitReason(Reason.CRASH, exc.code, exc.message)
            return Execution(None, timeout_ms, scrubber, prelude, refused=reason)
        payload["javascript"] = setup.to_payload()
        # Spares forked from now on start Node for the next JavaScript run (jshost.prestart).
        warm = {"javascript": payload["javascript"]}
    handle = await zygote.run(ENTRY, payload, limits, warm=warm)
    return Execution(handle, timeout_ms, scrubber, prelude)


def aborted_step(step: StepStart, reason: ExitReason) -> StepComplete:
    """The step-complete of a step cut short (§7.1 error path): output ``{}``, no timestamp."""
    return StepComplete(
        step_id=step.step_id,
        job_id=step.job_id,
        reason=reason.reason.value,
        error_type=reason.error_type,
        error_message=reason.error_message,
        output="{}",
        next=[],
    )


def _status_lines(reason: ExitReason) -> list[LogLine]:
    """``Run complete with status: …`` and the error line, as the JS worker logs them (§7.3)."""
    now = timestamp_us()
    lines = [LogLine("info", "R/T", [f"Run complete with status: {reason.reason.value}"], now)]
    if not reason.ok:
        detail = f"{reason.error_type}: {reason.error_message or 'unknown'}"
        lines.append(LogLine("info", "R/T", [detail], now))
    return lines
