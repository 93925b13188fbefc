"""Run one workflow in a sandboxed child and get back a complete, well-ordered event stream.

The runtime inside the child reports what it did; this module makes sure the stream always
ends properly even when the child cannot say so itself. A child killed at the run timeout, one
that ran out of memory, and one that died for any other reason all end with a ``step-complete``
for the step that was active (output ``{}``, no timestamp, as §7.1 describes for the error path)
and a ``workflow-complete`` with the reason the spec names. Both the local CLI and the worker
consume this stream, so they can never disagree on how a run ended.

A run whose Python jobs pin packages gets them from :class:`Python`: each distinct set of
pins is installed once, outside the sandbox, into an environment the child reads; a run holds
its environment (no prune removes it) until its stream ends, and the versions it reports are
those installed (:meth:`Execution.packages`).

A run with JavaScript jobs needs Node.js and the packages its jobs name: :class:`JavaScript`
installs them, outside the sandbox and before the child starts, into the repository the
sandbox lets children read; what it says while installing is in the run's log, right after
its start. A package that cannot be installed ends the run as a crash (``AdaptorError``)
without a child. A host without Node.js runs no JavaScript: its runs with JavaScript jobs end
with ``LanguageError``, never run as Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any, Final

import fulmen
from fulmen.adaptor_versions import Wanted, parse_request
from fulmen.config import SandboxSettings, WorkerSettings
from fulmen.errors import AdaptorError, ContractError, InputError
from fulmen.packages.npm import NpmRepo
from fulmen.packages.pypi import CacheLimits, Environment, PythonRepo, find_uv
from fulmen.plan import JAVASCRIPT, PYTHON, Plan
from fulmen.python_requirements import (
    AdaptorKind,
    canonical,
    conflicts,
    exact_version,
    package_requirements,
    pinned,
    read_adaptor,
    read_requirement,
    with_version,
)
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
from fulmen.runtime.jshost import COLLECTIONS_PACKAGE, JsAdaptor, JsSetup
from fulmen.sandbox import ChildExit, Limits, RunHandle, Zygote
from fulmen.scrub import Scrubber

__all__ = [
    "COLLECTIONS_VERSION",
    "Defaults",
    "Execution",
    "JavaScript",
    "Python",
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
    #: What every job's configuration gets besides its credential, as ws-worker's
    #: ``plan.workflow.credentials``: ``collections_endpoint`` and ``collections_token`` (the
    #: worker's collections gateway, issue 19), or ``collections_unavailable`` (why not).
    collections: Mapping[str, str] = field(default_factory=dict)

    def credential_bodies(self) -> list[Mapping[str, Any]]:
        inline = [job.credential for job in self.plan.jobs if job.credential is not None]
        token = self.collections.get("collections_token")
        secret = [{"collections_token": token}] if token else []
        return [*self.credentials.values(), *inline, *secret]

    def payload(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_wire(),
            "input": dict(self.input),
            "credentials": {k: dict(v) for k, v in self.credentials.items()},
            "collections": dict(self.collections),
        }


#: Fulmen's host for OpenFn's runtime, shipped in the package (installed by :class:`JavaScript`).
JS_SOURCE: Final = Path(__file__).resolve().parent / "runtime" / "js"
#: The collections adaptor's version when ``WORKER_COLLECTIONS_VERSION`` names none (ws-worker
#: asks the registry for the latest at start; a pinned default keeps runs reproducible).
COLLECTIONS_VERSION: Final = "0.8.0"
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
    #: The version of ``@openfn/language-collections`` given to jobs that name
    #: ``collections.`` (``WORKER_COLLECTIONS_VERSION``; ``latest`` asks the registry).
    collections_version: str = COLLECTIONS_VERSION

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
        if any(job.runs_in == JAVASCRIPT and job.uses_collections for job in plan.jobs):
            # ws-worker appends the collections adaptor to such a job's adaptors; its
            # `collections` namespace is imported from it, the rest from the job's own.
            spec = f"{COLLECTIONS_PACKAGE}@{self.collections_version}"
            if spec not in adaptors:
                try:
                    asked = parse_request(spec)
                except InputError as exc:
                    raise AdaptorError(f"WORKER_COLLECTIONS_VERSION: {exc.message}") from exc
                exact = asked.wanted if asked.kind is Wanted.VERSION else None
                exact = exact or await self.repo.resolve(asked.package, asked.wanted, progress)
                installed = await self.repo.adaptor(asked.package, exact, progress)
                adaptors[spec] = JsAdaptor(COLLECTIONS_PACKAGE, str(installed.path))
        return JsSetup(self.node, str(host.path / "host.mjs"), adaptors)


@dataclass
class Python:
    """The packages runs' Python jobs pin, installed into the repository children read."""

    repo: PythonRepo

    @classmethod
    def find(cls, settings: WorkerSettings) -> tuple[Python | None, str]:
        """The environments of a worker with ``settings`` (its repository, index and cache
        limits: the worker, ``fulmen run`` and ``fulmen adaptors`` share them), or None and
        why not (uv is missing)."""
        try:
            uv = find_uv()
        except AdaptorError as exc:
            return None, exc.message
        limits = CacheLimits(
            max_bytes=settings.python_cache_mb * 1024 * 1024,
            max_age_s=settings.python_cache_days * 86_400,
        )
        repo = PythonRepo(
            Path(settings.repo_dir), index=settings.python_index, limits=limits, uv=uv
        )
        repo.prepare()
        return cls(repo), ""

    async def setup_for(self, plan: Plan, progress: Callable[[str], None]) -> Environment | None:
        """The environment ``plan``'s Python jobs need (None when they pin nothing),
        installed if it was not; a version not pinned yet (``fulmen run -a six@latest``) is
        asked of the index first.

        Raises:
            AdaptorError: a package cannot be read, resolved or installed (uv's reason), or
                two jobs pin one package at two versions.
        """
        try:
            wanted = [r for job in plan.jobs for r in package_requirements(job)]
        except InputError as exc:
            raise AdaptorError(exc.message) from None
        if not wanted:
            return None
        problems = conflicts(plan)
        if problems:
            raise AdaptorError(problems[0])
        loose = [r for r in wanted if exact_version(r) is None]
        if loose:
            versions = await self.repo.resolve(loose, progress)
            wanted = [
                with_version(r, versions[canonical(r.name)]) if exact_version(r) is None else r
                for r in wanted
            ]
        return await self.repo.environment(pinned(wanted), progress)


def python_versions(plan: Plan, environment: Environment | None) -> dict[str, str]:
    """What runs ``plan``'s Python jobs, by package: Fulmen's adaptors at Fulmen's version,
    an installed package at the version in its environment, a module installed with the
    worker at its distribution's version; never what a job asked for."""
    found: dict[str, str] = {}
    installed = environment.installed if environment is not None else {}
    for job in plan.jobs:
        if job.runs_in != PYTHON:
            continue
        try:
            adaptor = read_adaptor(job.adaptor)
            requirements = [read_requirement(text) for text in job.requirements]
        except InputError:
            continue  # the run reports it
        if adaptor.kind is AdaptorKind.BUILTIN and adaptor.module is not None:
            found[adaptor.module.rpartition(".")[2]] = fulmen.__version__
        elif adaptor.kind is AdaptorKind.MODULE and adaptor.module is not None:
            found[adaptor.module] = _host_version(adaptor.module.split(".")[0])
        if adaptor.requirement is not None:
            requirements.insert(0, adaptor.requirement)
        for requirement in requirements:
            name = canonical(requirement.name)
            if name in installed:
                found[name] = installed[name]
    return found


@functools.cache
def _host_version(module: str) -> str:
    """The version of the distribution installed with the worker that provides ``module``."""
    for distribution in packages_distributions().get(module, []):
        with contextlib.suppress(PackageNotFoundError):
            return version(distribution)
    return "installed"


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
        packages: Mapping[str, str] | None = None,
        held: contextlib.AsyncExitStack | None = None,
    ) -> None:
        self._handle = handle
        self._timeout_ms = timeout_ms
        self._scrubber = scrubber
        self._prelude = prelude or []
        self._refused = refused
        #: The Python packages the run's jobs use, at the versions installed for it.
        self.packages: Mapping[str, str] = packages or {}
        self._held = held or contextlib.AsyncExitStack()
        self.exit: ChildExit | None = None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.kill()

    def __aiter__(self) -> AsyncIterator[RuntimeEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[RuntimeEvent]:
        # One generator, not one wrapping another: every event of every run passes here.
        async with self._held:  # the run's environment, held until its stream ends
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
    sandbox: SandboxSettings | None = None,
    javascript: JavaScript | None = None,
    python: Python | None = None,
    **options: Any,
) -> Zygote:
    """The zygote for workflow runs: the runtime preloaded and warmed up, isolated as
    ``sandbox`` asks (see ``Zygote.start``; ``options`` go to it and win); with
    ``javascript`` or ``python``, its runs may read the repository of their packages.

    Raises:
        SandboxError: the zygote did not start, or gives less than ``sandbox.isolation``
            (code ``isolation_unavailable``, naming what is missing).
    """
    sandbox = sandbox or SandboxSettings()
    chosen: dict[str, Any] = {
        "minimum_level": sandbox.isolation,
        "network": sandbox.network,
        "allow": sandbox.allow_net,
        "read_only": sorted(
            {str(r.root) for r in (javascript and javascript.repo, python and python.repo) if r}
        ),
    }
    return await Zygote.start(preload=PRELOAD, warm_up=WARM_UP, **{**chosen, **options})


async def start(
    zygote: Zygote,
    request: RunRequest,
    defaults: Defaults,
    javascript: JavaScript | None = None,
    python: Python | None = None,
) -> Execution:
    """Start the run in a fresh child; the payload goes straight to that child. Its packages
    are installed first when they are not yet (what is said meanwhile is the prelude)."""
    limits = limits_for(request.plan, defaults)
    timeout_ms = request.plan.options.run_timeout_ms or defaults.run_timeout_ms
    scrubber = Scrubber(request.credential_bodies())
    payload = request.payload()
    prelude: list[LogLine] = []

    def progress(text: str) -> None:
        prelude.append(LogLine("info", "R/T", [text], timestamp_us()))

    held = contextlib.AsyncExitStack()
    environment: Environment | None = None
    # What spares forked from now on warm up with, for runs like this one (entry.warm_up).
    warm: dict[str, Any] = {}
    try:
        if python is not None:
            environment = await _hold_environment(python, request.plan, progress, held)
            if environment is not None:
                payload["python"] = environment.payload()
                # A spare that imported them serves only a run of the same environment.
                warm["exact"] = {"python": payload["python"]}
        if javascript is not None and any(j.runs_in == JAVASCRIPT for j in request.plan.jobs):
            setup = await javascript.setup_for(request.plan, progress)
            payload["javascript"] = setup.to_payload()
            warm["javascript"] = payload["javascript"]
    except AdaptorError as exc:
        await held.aclose()
        reason = ExitReason(Reason.CRASH, exc.code, exc.message)
        return Execution(None, timeout_ms, scrubber, prelude, refused=reason)
    packages = python_versions(request.plan, environment)
    try:
        handle = await zygote.run(ENTRY, payload, limits, warm=warm or None)
    except BaseException:
        await held.aclose()
        raise
    return Execution(handle, timeout_ms, scrubber, prelude, packages=packages, held=held)


async def _hold_environment(
    python: Python,
    plan: Plan,
    progress: Callable[[str], None],
    held: contextlib.AsyncExitStack,
) -> Environment | None:
    """The run's environment, held in ``held`` (installed again if a prune removed it
    between its install and the hold)."""
    for _ in range(3):
        environment = await python.setup_for(plan, progress)
        if environment is None:
            return None
        try:
            await held.enter_async_context(python.repo.using(environment))
        except AdaptorError:
            continue
        if environment.seconds:
            progress(f"Installed Python packages: {environment.described()}")
        return environment
    raise AdaptorError("the run's Python environment kept being removed as it started")


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
