"""A run's JavaScript steps and edge conditions, run by Node.js with OpenFn's runtime
(``js/host.mjs``), inside the run's own sandbox: Node is this child's child, in its namespaces,
cgroup, seccomp filter and Landlock domain, held to the run's limits with it.

One Node process per run, ended with the run. Loading OpenFn's runtime and an adaptor takes
Node a few hundred milliseconds, so a spare forked while JavaScript runs are what arrives
starts it before its run does (:func:`prestart`, the ``warm`` hint of ``Zygote.run``), with
the last runs' adaptors loaded and run once: still one process per run, made before any of
the run's data or secrets exist. Otherwise it starts at the run's first JavaScript.

It answers on a pipe of its own (``host.mjs`` says the protocol), so that nothing a job
writes can be taken for an answer; its stdout and stderr go to a memory file, read only to
say why Node died. Its log lines go through the run's :class:`LogSink`, so they are scrubbed
and filtered as Python's are; its states come back to the engine, which cleans them as it
cleans Python's.

The worker installed what this needs before the run started (``fulmen.packages.npm``) and
says where in the payload (:class:`JsSetup`).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from fulmen.errors import AdaptorError, EdgeConditionError, LanguageError
from fulmen.plan import Job
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime.logs import LogSink

__all__ = [
    "COLLECTIONS_PACKAGE",
    "Checked",
    "Helpers",
    "JsAdaptor",
    "JsHost",
    "JsSetup",
    "prestart",
]

#: OpenFn's collections adaptor, given besides its own to a job that names ``collections.``
#: (issue 19), as ws-worker appends it.
COLLECTIONS_PACKAGE = "@openfn/language-collections"
#: What it throws when its run has no ``collections_endpoint``.
_NO_ENDPOINT = "collections_endpoint not set"

_REASONS = {"fail": Reason.FAIL, "crash": Reason.CRASH, "kill": Reason.KILL}


@dataclass(frozen=True, slots=True)
class JsAdaptor:
    """An installed adaptor: the package jobs import, and where it is."""

    package: str
    path: str


@dataclass(frozen=True, slots=True)
class JsSetup:
    """Where the worker put what a run's JavaScript needs (the payload's ``javascript``)."""

    node: str
    host: str
    #: Each JavaScript job's adaptor, as the plan names it (``common``,
    #: ``@openfn/language-common@3.3.4``), installed.
    adaptors: Mapping[str, JsAdaptor]

    @classmethod
    def from_payload(cls, value: object) -> JsSetup | None:
        if not isinstance(value, Mapping):
            return None
        adaptors = value.get("adaptors")
        return cls(
            node=str(value["node"]),
            host=str(value["host"]),
            adaptors={
                str(spec): JsAdaptor(str(found["package"]), str(found["path"]))
                for spec, found in (adaptors.items() if isinstance(adaptors, Mapping) else ())
                if isinstance(found, Mapping)
            },
        )

    def to_payload(self) -> dict[str, Any]:
        adaptors = {s: {"package": a.package, "path": a.path} for s, a in self.adaptors.items()}
        return {"node": self.node, "host": self.host, "adaptors": adaptors}


@dataclass(frozen=True, slots=True)
class Checked:
    """:meth:`JsHost.check`'s answer, one entry per body and per expression asked about."""

    bodies: list[str | None]
    expressions: list[str | None]


class JsHost:
    """The run's Node process, started on first use (or adopted from the spare's warm-up,
    :func:`prestart`); :meth:`close` ends it."""

    def __init__(self, setup: JsSetup | None, sink: LogSink) -> None:
        self._setup = setup
        self._sink = sink
        self._node: _Node | None = None

    def step(self, job: Job, state: dict[str, Any]) -> tuple[ExitReason, dict[str, Any] | None]:
        """Run one JavaScript job on ``state``; how it ended, and the state it left."""
        adaptor = self._setup.adaptors.get(job.adaptor) if self._setup else None
        if adaptor is None:
            raise AdaptorError(
                f"the adaptor {job.adaptor} of job {job.name or job.id} was not installed "
                "for this run"
            )
        also = [
            {"specifier": a.package, "path": a.path}
            for a in (self._setup.adaptors.values() if self._setup else ())
            if a.package == COLLECTIONS_PACKAGE and job.uses_collections and a != adaptor
        ][:1]
        answer = self._ask(
            {
                "op": "step",
                "id": job.id,
                "label": f"job {job.name or job.id}",
                "body": job.body,
                "adaptor": {"specifier": adaptor.package, "path": adaptor.path},
                "also": also,
                "state": state,
                "logLevel": "debug",  # the sink filters JOB lines by the run's level
            },
            "step",
        )
        error = answer.get("error")
        result = answer.get("state")
        after = result if isinstance(result, dict) else None
        if not error:
            return ExitReason(Reason.SUCCESS), after
        if not isinstance(error, dict):  # only job code writes such a thing (forging answers)
            return ExitReason(Reason.CRASH, "LanguageError", f"a garbled answer: {error!r}"), after
        reason = _REASONS.get(str(error.get("severity")), Reason.CRASH)
        message = str(error.get("message"))
        unavailable = state.get("configuration", {}).get("collections_unavailable")
        if _NO_ENDPOINT in message and isinstance(unavailable, str):
            message = unavailable  # the adaptor's words name no reason; the worker knows it
        return ExitReason(reason, str(error.get("type")), message), after

    def check(self, bodies: list[str], expressions: list[str]) -> Checked:
        """The syntax error of each job body and each condition, or None: what the engine
        checks before any step runs."""
        answer = self._ask({"op": "check", "bodies": bodies, "expressions": expressions}, "check")
        return Checked(
            _errors(answer.get("bodies"), bodies), _errors(answer.get("expressions"), expressions)
        )

    def condition(
        self, expression: str, state: Mapping[str, Any], upstream: str | None, edge_id: str
    ) -> bool:
        answer = self._ask(
            {"op": "condition", "expression": expression, "state": state, "upstream": upstream},
            "condition",
        )
        if "error" in answer:
            raise EdgeConditionError(
                f"edge {edge_id}: the condition {expression!r} raised {answer['error']}"
            )
        return bool(answer.get("value"))

    def close(self) -> None:
        if self._node is not None:
            self._node.close()

    # -- internals ---------------------------------------------------------------------------

    def _ask(self, request: dict[str, Any], kind: str) -> dict[str, Any]:
        node = self._started()
        node.send(request)
        while True:
            message = node.answer()
            if message.get("t") == "log":
                self._log(message)
            elif message.get("t") == kind:
                return message

    def _started(self) -> _Node:
        global _prestarted
        if self._node is not None:
            return self._node
        if self._setup is None:
            raise LanguageError(
                "this worker does not run JavaScript jobs: Node.js was not found on its host"
            )
        warm, _prestarted = _prestarted, None
        if warm is not None and warm.serves(self._setup):
            self._node = warm
        else:
            if warm is not None:
                warm.kill()
            self._node = _Node.spawn(self._setup)
        return self._node

    def _log(self, message: Mapping[str, Any]) -> None:
        parts = message.get("message")
        items = parts if isinstance(parts, list) else [parts]
        text = " ".join(
            p if isinstance(p, str) else json.dumps(p, ensure_ascii=False, separators=(",", ":"))
            for p in items
        )
        source = str(message.get("name", "JOB"))
        # Job code can write to this pipe too: it may speak as itself, an adaptor or the
        # runtime, never as the worker (VER, RTE…).
        self._sink.log(
            str(message.get("level", "info")), source if source in _SOURCES else "JOB", text
        )


#: Processes a warm-up started and the descriptors the run keeps to them (``child.WarmUp``).
Helpers = tuple[tuple[int, ...], tuple[int, ...]]
#: The log sources a run's Node may use.
_SOURCES = frozenset({"JOB", "ADA", "R/T"})
#: The Node process a spare's warm-up started for the run it will get (:func:`prestart`).
_prestarted: _Node | None = None
#: Where a Node process's own descriptors go in this one: above the run socket and the few
#: below it, which the sandbox rearranges when the run arrives.
_HIGH_FD = 64


def prestart(setup: JsSetup) -> Helpers:
    """Start Node with OpenFn's runtime and ``setup``'s adaptors loaded and run once, in a
    spare, before its run (and any secret) arrives: what makes a JavaScript run as quick to
    start as a Python one. Returns the pid and the descriptors the run keeps
    (``child.WarmUp``)."""
    global _prestarted
    node = _Node.spawn(setup, loaded=frozenset(setup.adaptors.values()))
    node.send(
        {
            "op": "warm",
            "adaptors": [
                {"specifier": adaptor.package, "path": adaptor.path}
                for adaptor in setup.adaptors.values()
            ],
        }
    )
    _prestarted = node
    return (node.process.pid,), node.descriptors


class _Node:
    """One Node process running ``host.mjs``: requests on its stdin, answers on a pipe of its
    own, its stdout and stderr in a memory file read only to say why it died."""

    def __init__(
        self,
        setup: JsSetup,
        process: subprocess.Popen[bytes],
        requests: int,
        answers: int,
        output: int,
        loaded: frozenset[JsAdaptor] = frozenset(),
    ) -> None:
        self.node = setup.node
        self.host = setup.host
        #: The adaptors a warm-up had it load before its run arrived.
        self.loaded = loaded
        self.process = process
        self._requests = requests
        self._answers = answers
        self._output = output
        self._buffer = b""

    def serves(self, setup: JsSetup) -> bool:
        """Whether a run with ``setup`` may adopt this early Node: the same Node and host,
        and nothing loaded that the run does not load itself. An adaptor's code runs when it
        is loaded, and may leave a trap for whatever comes through this process next: the
        adaptors of the runs before are not this run's to trust."""
        same = (self.node, self.host) == (setup.node, setup.host)
        return same and self.loaded <= frozenset(setup.adaptors.values())

    @classmethod
    def spawn(cls, setup: JsSetup, loaded: frozenset[JsAdaptor] = frozenset()) -> _Node:
        answers, answers_end = os.pipe()
        requests_end, requests = os.pipe()
        output = os.memfd_create("fulmen-node-output", os.MFD_CLOEXEC)
        try:
            process = subprocess.Popen(
                [
                    setup.node,
                    "--experimental-vm-modules",
                    "--no-warnings",
                    setup.host,
                    str(answers_end),
                ],
                stdin=requests_end,
                stdout=output,
                stderr=output,
                pass_fds=(answers_end,),
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "NODE_ENV": "production"},
            )
        except OSError as exc:
            for fd in (answers, requests, output):
                os.close(fd)
            raise LanguageError(f"Node.js could not be started: {exc.strerror}") from exc
        finally:
            os.close(answers_end)
            os.close(requests_end)
        requests, answers, output = (_high(fd) for fd in (requests, answers, output))
        return cls(setup, process, requests, answers, output, loaded)

    @property
    def descriptors(self) -> tuple[int, ...]:
        return self._requests, self._answers, self._output

    def send(self, request: dict[str, Any]) -> None:
        data = json.dumps(request, ensure_ascii=False).encode() + b"\n"
        try:
            while data:
                data = data[os.write(self._requests, data) :]
        except BrokenPipeError:
            self.ended()

    def answer(self) -> dict[str, Any]:
        """The next answer that is not ``ready`` or ``warm`` (the warm-up's own)."""
        while True:
            line = self._line()
            message = json.loads(line)
            if not isinstance(message, dict):
                continue
            if message.get("t") not in ("ready", "warm"):
                return message

    def _line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                self.ended()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def ended(self) -> NoReturn:
        """Node stopped answering: say why, as the engine expects."""
        code = self.process.wait()
        if code == -signal.SIGKILL:
            # The cgroup's OOM killer takes the biggest process of the run, Node, long before
            # V8's own heap limit (a quarter of the host's memory) is reached: the run ran out
            # of memory, which the sandbox reports as such.
            raise MemoryError
        ended = f"signal {-code}" if code < 0 else f"status {code}"
        said = _tail(self._output)
        raise LanguageError(
            f"the JavaScript runtime ended unexpectedly ({ended})" + (f": {said}" if said else "")
        )

    def close(self) -> None:
        """The run is over: Node goes now, whatever its job left pending (a timer, a request
        never awaited), which would otherwise hold the run until its timeout."""
        self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for fd in self.descriptors:
            os.close(fd)


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
    os.close(fd)
    return moved


def _tail(output: int, size: int = 2000) -> str:
    """The last lines Node wrote to its stdout and stderr, on one line."""
    end = os.fstat(output).st_size
    text = os.pread(output, size, max(0, end - size)).decode(errors="replace")
    return " | ".join(line.strip() for line in text.strip().splitlines()[-5:] if line.strip())


def _errors(found: object, asked: list[str]) -> list[str | None]:
    errors = found if isinstance(found, list) and len(found) == len(asked) else [None] * len(asked)
    return [e if isinstance(e, str) else None for e in errors]
