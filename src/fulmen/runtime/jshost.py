"""A run's JavaScript steps and edge conditions, run by Node.js with OpenFn's runtime
(``js/host.mjs``), inside the run's own sandbox: Node is this child's child, in its namespaces,
cgroup, seccomp filter and Landlock domain, held to the run's limits with it.

One Node process per run, started at the first JavaScript the run needs and ended with the
run. It answers on a pipe of its own (``host.mjs`` says the protocol), so a job's stray writes
to stdout reach the run's output, as a Python job's do, and can never be taken for an answer.
Its log lines go through the run's :class:`LogSink`, so they are scrubbed and filtered as
Python's are; its states come back to the engine, which cleans them as it cleans Python's.

The worker installed what this needs before the run started (``fulmen.packages.npm``) and
says where in the payload (:class:`JsSetup`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from fulmen.errors import AdaptorError, EdgeConditionError, LanguageError
from fulmen.plan import Job
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime.logs import LogSink

__all__ = ["Checked", "JsHost", "JsSetup"]

_REASONS = {"fail": Reason.FAIL, "crash": Reason.CRASH, "kill": Reason.KILL}


@dataclass(frozen=True, slots=True)
class JsSetup:
    """Where the worker put what a run's JavaScript needs (the payload's ``javascript``)."""

    node: str
    host: str
    #: Each JavaScript job's adaptor, as the plan names it, to its installed package root.
    adaptors: Mapping[str, str]

    @classmethod
    def from_payload(cls, value: object) -> JsSetup | None:
        if not isinstance(value, Mapping):
            return None
        adaptors = value.get("adaptors")
        return cls(
            node=str(value["node"]),
            host=str(value["host"]),
            adaptors=dict(adaptors) if isinstance(adaptors, Mapping) else {},
        )

    def to_payload(self) -> dict[str, Any]:
        return {"node": self.node, "host": self.host, "adaptors": dict(self.adaptors)}


@dataclass(frozen=True, slots=True)
class Checked:
    """:meth:`JsHost.check`'s answer, one entry per body and per expression asked about."""

    bodies: list[str | None]
    expressions: list[str | None]


class JsHost:
    """The run's Node process, started on first use; :meth:`close` ends it."""

    def __init__(self, setup: JsSetup | None, sink: LogSink) -> None:
        self._setup = setup
        self._sink = sink
        self._process: subprocess.Popen[bytes] | None = None
        self._answers: IO[bytes] | None = None

    def step(self, job: Job, state: dict[str, Any]) -> tuple[ExitReason, dict[str, Any] | None]:
        """Run one JavaScript job on ``state``; how it ended, and the state it left."""
        path = self._setup.adaptors.get(job.adaptor) if self._setup else None
        if path is None:
            raise AdaptorError(
                f"the adaptor {job.adaptor} of job {job.name or job.id} was not "
                "installed for this run"
            )
        answer = self._ask(
            {
                "op": "step",
                "id": job.id,
                "label": f"job {job.name or job.id}",
                "body": job.body,
                "adaptor": {"specifier": _package_name(job.adaptor), "path": path},
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
        reason = _REASONS.get(str(error.get("severity")), Reason.CRASH)
        return ExitReason(reason, str(error.get("type")), str(error.get("message"))), after

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
        if self._process is None:
            return
        assert self._process.stdin is not None and self._answers is not None
        self._process.stdin.close()
        self._answers.close()
        self._process.wait()

    # -- internals ---------------------------------------------------------------------------

    def _ask(self, request: dict[str, Any], kind: str) -> dict[str, Any]:
        process, answers = self._started()
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            self._ended()
        while True:
            line = answers.readline()
            if not line:
                self._ended()
            message = json.loads(line)
            if message.get("t") == "log":
                self._log(message)
            elif message.get("t") == kind:
                return dict(message)

    def _started(self) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        if self._process is not None and self._answers is not None:
            return self._process, self._answers
        if self._setup is None:
            raise LanguageError(
                "this worker does not run JavaScript jobs: Node.js was not found on its host"
            )
        read, write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [
                    self._setup.node,
                    "--experimental-vm-modules",
                    "--no-warnings",
                    self._setup.host,
                    str(write),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(write,),
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "NODE_ENV": "production"},
            )
        except OSError as exc:
            os.close(read)
            raise LanguageError(f"Node.js could not be started: {exc.strerror}") from exc
        finally:
            os.close(write)
        self._answers = os.fdopen(read, "rb")
        ready = json.loads(self._answers.readline() or b"{}")
        if ready.get("t") != "ready":
            self._ended()
        return self._process, self._answers

    def _ended(self) -> Any:
        """Node stopped answering: say why, as the engine expects."""
        assert self._process is not None
        code = self._process.wait()
        if code == -signal.SIGKILL:
            # The cgroup's OOM killer takes the biggest process of the run, Node, long before
            # V8's own heap limit (a quarter of the host's memory) is reached: the run ran out
            # of memory, which the sandbox reports as such.
            raise MemoryError
        ended = f"signal {-code}" if code < 0 else f"status {code}"
        raise LanguageError(f"the JavaScript runtime ended unexpectedly ({ended})")

    def _log(self, message: Mapping[str, Any]) -> None:
        parts = message.get("message")
        items = parts if isinstance(parts, list) else [parts]
        text = " ".join(
            p if isinstance(p, str) else json.dumps(p, ensure_ascii=False, separators=(",", ":"))
            for p in items
        )
        self._sink.log(str(message.get("level", "info")), str(message.get("name", "JOB")), text)


def _errors(found: object, asked: list[str]) -> list[str | None]:
    errors = found if isinstance(found, list) and len(found) == len(asked) else [None] * len(asked)
    return [e if isinstance(e, str) else None for e in errors]


def _package_name(adaptor: str) -> str:
    """``@openfn/language-common@3.3.4`` -> ``@openfn/language-common``."""
    name, at, _ = adaptor.rpartition("@")
    return name if at and name else adaptor
