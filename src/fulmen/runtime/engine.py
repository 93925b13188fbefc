"""Executes one whole workflow, emitting events as it goes (worker-protocol.md §6.4, §7.1).

Breadth-first from the start node over a FIFO of (node, input): a trigger passes its input to
the jobs its edges choose; a job runs as one step. A node reached by several edges runs once
per arrival. A step that fails (user code raised) records the error in ``state.errors`` and its
edges are still evaluated, so failure paths run; a crash or kill aborts the run. The run's
reason comes from its leaves (``reasons.run_reason``).

A JavaScript job runs in the run's Node process (``jshost``), and a condition written in
JavaScript (``Plan.condition_language``) is evaluated there; everything around a step (its
events, its input, its output's cleaning, the limits, the edges) is the same for both languages.

Memory errors are deliberately not handled here: they propagate out of the child so that the
sandbox reports an out-of-memory exit, and the parent completes the run with ``kill``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import resource
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fulmen.adaptors.operation import Operation, resolve_result, run_operation, settle
from fulmen.errors import CompileError, EdgeConditionError, FulmenError, JobError, PlanError
from fulmen.plan import JAVASCRIPT, Edge, Job, Plan, is_named_condition, validate
from fulmen.reasons import ExitReason, Reason, run_reason
from fulmen.runtime import adaptors
from fulmen.runtime.compile import (
    ASYNC_LIBRARIES,
    StatementError,
    check_syntax,
    compile_job,
    names_any,
)
from fulmen.runtime.conditions import Condition, compile_condition
from fulmen.runtime.events import (
    RuntimeEvent,
    StepComplete,
    StepStart,
    WorkflowComplete,
    WorkflowStart,
    timestamp_us,
)
from fulmen.runtime.frames import job_traceback
from fulmen.runtime.jshost import JsHost, JsSetup
from fulmen.runtime.logs import LogSink
from fulmen.runtime.pyenv import PyEnv
from fulmen.runtime.state import assemble, clean_output
from fulmen.scrub import Scrubber

__all__ = ["Engine"]

#: Python errors that mean the code itself is broken, like JavaScript's ReferenceError:
#: they crash the run instead of failing one step (§7.1).
CRASH_ERRORS: tuple[type[BaseException], ...] = (NameError, SyntaxError, ImportError)
EMPTY_LEAF_STATES = ("{}", '{"data":{}}')


@dataclass(frozen=True, slots=True)
class _StepResult:
    event: StepComplete
    state: dict[str, Any] | None
    output: str
    """The cleaned output as JSON text: the next steps' input, even when the event withheld it."""

    @property
    def aborts_run(self) -> bool:
        return self.event.reason in (Reason.CRASH, Reason.KILL, Reason.EXCEPTION)


OUTPUT_LIMIT_BYTES = 60 * 1024 * 1024
"""The largest output state a step-complete event carries out of the sandbox, as JSON text
once more escaped inside the event; below the sandbox's 64 MiB frame limit
(``fulmen.sandbox.frames.DEFAULT_MAX_FRAME_BYTES``), with room for the event's other fields.
A larger output is withheld at the source (``StepComplete.output_withheld``) rather than
breaking the run's stream; the worker then reports it as too large, as it does for any
output over the run's payload limit."""


class Engine:
    """Runs a plan's jobs in order in this process, emitting RuntimeEvents.

    One Engine runs one plan once; the child that hosts it is thrown away afterwards.
    """

    def __init__(
        self,
        plan: Plan,
        credentials: Mapping[str, Mapping[str, Any]],
        emit: Callable[[RuntimeEvent], None],
        sink: LogSink,
        scrubber: Scrubber,
        output_limit: int = OUTPUT_LIMIT_BYTES,
        javascript: JsSetup | None = None,
        python: PyEnv | None = None,
        shared: Mapping[str, Any] | None = None,
    ) -> None:
        self.plan = plan
        #: What every job's configuration gets (``state.assemble``): the collections settings.
        self._shared = shared or {}
        self._python = python
        self._js = JsHost(javascript, sink)
        self._output_limit = output_limit
        self._credentials = credentials
        self._emit = emit
        self._sink = sink
        self._scrubber = scrubber
        #: Keyed by the edge itself: edge ids are not guaranteed to be unique.
        self._conditions: dict[Edge, Condition] = {}
        self._arrivals: dict[str, int] = {}
        # Each job parsed once, by run(); keyed by the Job itself, as ids may repeat.
        self._trees: dict[int, ast.Module] = {}
        #: Made when a step first needs it (``_run_operation``).
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The jobs whose code names asyncio or anyio: their operations run in the loop.
        self._in_loop: set[int] = set()
        memory = plan.options.run_memory_limit_mb
        self._state_limit = memory * 1024 * 1024 // 4 if memory else None

    def run(self, initial: dict[str, Any]) -> WorkflowComplete:
        """Run the whole workflow; always ends by emitting (and returning) WorkflowComplete."""
        try:
            try:
                self._prepare()
            except (PlanError, JobError) as exc:
                return self._finish(ExitReason(Reason.CRASH, exc.code, exc.message), [])
            self._emit(WorkflowStart(timestamp_us()))
            return self._walk(initial)
        finally:
            if self._loop is not None:
                self._loop.close()
            self._js.close()

    def _prepare(self) -> None:
        """Fail before any operation runs, not halfway through: every job parses and has its
        adaptor, every condition compiles."""
        validate(self.plan)
        scripts: list[Job] = []
        for job in self.plan.jobs:
            if job.runs_in == JAVASCRIPT:
                scripts.append(job)
                continue
            tree = self._trees[id(job)] = check_syntax(job.body, _label(job))
            if names_any(tree, ASYNC_LIBRARIES, job.body):
                self._in_loop.add(id(job))
            adaptors.load(job.adaptor, self._python)
        expressions: list[Edge] = []
        for edge in self.plan.edges:
            if not edge.enabled:
                continue
            if self.plan.condition_language(edge) == JAVASCRIPT and not is_named_condition(
                edge.condition
            ):
                expressions.append(edge)
                self._conditions[edge] = self._js_condition(edge)
            else:
                self._conditions[edge] = compile_condition(edge.condition, edge.id)
        if scripts or expressions:
            self._js_check(scripts, expressions)

    def _js_check(self, scripts: list[Job], expressions: list[Edge]) -> None:
        found = self._js.check([j.body for j in scripts], [e.condition for e in expressions])
        for job, error in zip(scripts, found.bodies, strict=True):
            if error is not None:
                raise CompileError(f"job {job.name or job.id}: {error}")
        for edge, error in zip(expressions, found.expressions, strict=True):
            if error is not None:
                raise EdgeConditionError(
                    f"edge {edge.id}: the condition {edge.condition!r} is not a JavaScript "
                    f"expression ({error})"
                )

    def _js_condition(self, edge: Edge) -> Condition:
        def holds(state: Mapping[str, Any], upstream: str | None) -> bool:
            return self._js.condition(edge.condition, state, upstream, edge.id)

        return holds

    def _walk(self, initial: dict[str, Any]) -> WorkflowComplete:
        queue: deque[tuple[str, dict[str, Any]]] = deque([(self.plan.start, initial)])
        leaves: list[tuple[str, StepComplete]] = []
        while queue:
            node, state = queue.popleft()
            job = self.plan.job(node)
            if job is None:  # a trigger: hand the input to the jobs its edges choose
                try:
                    targets = self._follow(node, state, None)
                except EdgeConditionError as exc:
                    return self._finish(ExitReason(Reason.CRASH, exc.code, exc.message), [])
                for target in targets:
                    queue.append((target, _copy(state)))
                continue
            key = self._leaf_key(job.id)
            result = self._step(job, state)
            if result.aborts_run:
                return self._finish(result.event.exit, [])
            if not result.event.next:
                leaves.append((key, result.event))
            for target in result.event.next:
                queue.append((target, json.loads(result.output)))
        return self._finish(run_reason(e.exit for _, e in leaves), leaves)

    def _step(self, job: Job, incoming: dict[str, Any]) -> _StepResult:
        step_id = str(uuid.uuid4())
        self._sink.step_id = step_id
        self._emit(StepStart(step_id, job.id, timestamp_us()))
        started = time.perf_counter()
        label = job.name or job.id
        self._sink.log("info", "R/T", f"Starting step {label}")
        exit_reason, state = self._execute(job, incoming)
        try:
            output = clean_output(state, self._scrubber) if state is not None else "{}"
        except (TypeError, ValueError, RecursionError) as exc:  # a circular or odd-keyed state
            exit_reason = ExitReason(
                Reason.CRASH, type(exc).__name__, f"the state cannot be written as JSON: {exc}"
            )
            output = "{}"
        if exit_reason.error_message:  # user code may put a secret in an exception's text
            exit_reason = ExitReason(
                exit_reason.reason,
                exit_reason.error_type,
                self._scrubber.text(exit_reason.error_message),
            )
        if self._state_limit is not None and len(output) > self._state_limit:
            mb = self._state_limit / (1024 * 1024)
            exit_reason = ExitReason(
                Reason.KILL, "StateTooLargeError", f"State exceeds the limit of {mb:g}mb"
            )
            output = "{}"
        next_jobs: list[str] = []
        if exit_reason.reason in (Reason.SUCCESS, Reason.FAIL):
            try:
                next_jobs = self._follow(job.id, json.loads(output), job.id)
            except EdgeConditionError as exc:
                exit_reason = ExitReason(Reason.CRASH, exc.code, exc.message)
        duration_ms = round((time.perf_counter() - started) * 1000)
        self._sink.flush()
        self._sink.log(
            "info" if exit_reason.ok else "error",
            "R/T",
            f"Step {label} finished in {duration_ms}ms: {exit_reason}",
        )
        withheld = self._too_large_to_send(output)
        event = StepComplete(
            step_id=step_id,
            job_id=job.id,
            reason=exit_reason.reason.value,
            error_type=exit_reason.error_type,
            error_message=exit_reason.error_message,
            output="{}" if withheld is not None else output,
            next=next_jobs,
            duration_ms=duration_ms,
            mem_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            timestamp=timestamp_us(),
            output_withheld=withheld,
        )
        self._sink.flush()  # a line held back (logs.py) is emitted before its step ends
        self._emit(event)
        self._sink.step_id = None
        return _StepResult(event, state, output)

    def _too_large_to_send(self, output: str) -> int | None:
        """The output's size when, escaped into the event, it would pass the limit."""
        if len(output) * 6 <= self._output_limit:  # \u00XX is the worst escape: 6 bytes
            return None
        size = len(output.encode())
        escaped = len(json.dumps(output, ensure_ascii=False).encode())
        return size if escaped > self._output_limit else None

    def _execute(
        self, job: Job, incoming: dict[str, Any]
    ) -> tuple[ExitReason, dict[str, Any] | None]:
        """Build and run the job's operations; user failures come back as values."""
        state = assemble(job.state, incoming, self._credential(job), self._shared)
        if job.runs_in == JAVASCRIPT:
            try:
                return self._js.step(job, state)
            except JobError as exc:
                return ExitReason(Reason.CRASH, exc.code, exc.message), state
        try:
            operations = self._build(job)
        except JobError as exc:
            return ExitReason(Reason.CRASH, exc.code, exc.message), state
        except StatementError as failed:
            return self._failure(job, failed.error, state), state
        for operation in operations:
            try:
                state = self._run_operation(operation, state, id(job) in self._in_loop)
            except MemoryError:
                raise
            except (Exception, SystemExit) as exc:
                return self._failure(job, exc, state), state
        return ExitReason(Reason.SUCCESS), state

    def _run_operation(
        self, operation: Operation, state: dict[str, Any], in_loop: bool
    ) -> dict[str, Any]:
        """Run one operation; only an awaitable result, or a job that names asyncio, needs
        the event loop.

        A plain function of state (``fn(lambda state: ...)``, most steps) is called as it is:
        making, running and closing a loop costs a run more than its whole step does (an
        epoll instance, a socket pair, and some 130 pages of the zygote's heap copied;
        ``bench/child.py``). A job whose code names asyncio or anyio may call, from a plain
        function, what needs a running loop (``asyncio.ensure_future``, ``gather``,
        ``get_event_loop().run_in_executor``): its operations all run in the loop, as
        every operation did before. The loop is made once and kept for the run."""
        if in_loop:
            return self._event_loop().run_until_complete(run_operation(operation, state))
        result: object = operation(state)
        if inspect.isawaitable(result):
            result = self._event_loop().run_until_complete(resolve_result(result))
        return settle(operation, state, result)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def _build(self, job: Job) -> list[Operation]:
        module = adaptors.load(job.adaptor, self._python)
        scope = adaptors.job_scope(module)
        if job.uses_collections:
            # ws-worker gives a job that names `collections.` the collections adaptor besides
            # its own; its one name comes in under the adaptor's own names.
            scope = {**adaptors.collections_scope(), **scope}
        return compile_job(job.body, scope, _label(job), self._trees.get(id(job)))

    def _failure(self, job: Job, exc: BaseException, state: dict[str, Any]) -> ExitReason:
        """How the job's own error ends its step: a crash for the errors OpenFn's runtime
        crashes on (a missing name, an import, exit), else a failure recorded in
        ``state["errors"]``. The job's lines of the traceback go to the log first."""
        where = job_traceback(exc, _label(job), job.body)
        if where is not None:
            self._sink.log("error", "R/T", where)
        if isinstance(exc, SystemExit):
            return ExitReason(Reason.CRASH, "ExitError", f"Job called exit({exc.code})")
        if isinstance(exc, CRASH_ERRORS):
            return _error_reason(Reason.CRASH, exc)
        reason = _error_reason(Reason.FAIL, exc)
        errors = state.get("errors")
        state["errors"] = {
            **(errors if isinstance(errors, dict) else {}),
            job.id: {"name": reason.error_type, "message": reason.error_message},
        }
        return reason

    def _credential(self, job: Job) -> Mapping[str, Any] | None:
        if job.credential is not None:
            return job.credential
        if job.credential_id is not None:
            return self._credentials.get(job.credential_id)
        return None

    def _follow(self, node: str, state: Mapping[str, Any], upstream: str | None) -> list[str]:
        """Targets of the node's enabled edges whose conditions hold for ``state``."""
        return [
            edge.target_job_id
            for edge in self.plan.edges_from(node)
            if edge.enabled and self._conditions[edge](state, upstream)
        ]

    def _leaf_key(self, job_id: str) -> str:
        """A step's key in the multi-leaf final state: ``<job>``, then ``<job>-1``, ``<job>-2``…

        Counted per arrival, since a job reached by several edges runs once per arrival.
        """
        count = self._arrivals.get(job_id, 0)
        self._arrivals[job_id] = count + 1
        return job_id if count == 0 else f"{job_id}-{count}"

    def _finish(
        self, exit_reason: ExitReason, leaves: list[tuple[str, StepComplete]]
    ) -> WorkflowComplete:
        self._sink.flush()
        final_state: str | None = None
        if len(leaves) == 1:
            final_state = None if leaves[0][1].output_withheld else leaves[0][1].output
        elif leaves:
            kept = {
                key: json.loads(e.output)
                for key, e in leaves
                if e.output not in EMPTY_LEAF_STATES and not e.output_withheld
            }
            final_state = json.dumps(kept, separators=(",", ":"), ensure_ascii=False)
        event = WorkflowComplete(
            reason=exit_reason.reason.value,
            error_type=exit_reason.error_type,
            error_message=exit_reason.error_message,
            final_state=final_state,
            leaves=[e.step_id for _, e in leaves],
            timestamp=timestamp_us(),
        )
        self._emit(event)
        return event


def _label(job: Job) -> str:
    """The file name a job's code is compiled under (how its frames are found)."""
    return f"job:{job.name or job.id}"


def _error_reason(reason: Reason, exc: BaseException) -> ExitReason:
    if isinstance(exc, FulmenError):
        return ExitReason(reason, exc.code, exc.message)
    return ExitReason(reason, type(exc).__name__, str(exc) or type(exc).__name__)


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(state, default=str))
    return copied
