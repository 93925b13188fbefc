"""The sandbox entry point: one call runs one whole workflow inside a fresh child.

The payload is ``{"plan": <plan document>, "input": <state>, "credentials": {id: body}}``,
``collections`` (what every job's configuration gets: ``execution.RunRequest.collections``),
with ``python`` (the run's installed packages: ``fulmen.runtime.pyenv``) and ``javascript``
(Node.js and the adaptors: ``fulmen.runtime.jshost``) when its jobs need them. It arrives from
the parent straight into this child, never through the zygote, because it holds credentials.
Everything the run produces leaves through ``emit`` as event dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fulmen.errors import ContractError
from fulmen.plan import Plan
from fulmen.reasons import Reason
from fulmen.runtime import logs
from fulmen.runtime.engine import Engine
from fulmen.runtime.events import RuntimeEvent, WorkflowComplete, timestamp_us, to_dict
from fulmen.runtime.jshost import JsSetup, prestart
from fulmen.runtime.pyenv import PyEnv
from fulmen.scrub import Scrubber

__all__ = ["ENTRY", "PRELOAD", "WARM_UP", "run_workflow", "warm_up"]

#: The name the sandbox imports and calls.
ENTRY = "fulmen.runtime.entry:run_workflow"
#: Modules worth importing once in the zygote so that no run pays for them.
PRELOAD = (
    "fulmen.runtime.entry",
    "fulmen.adaptors.common",
    "fulmen.adaptors.http",
    "fulmen.adaptors.collections",
    # What the HTTP client imports at its first request (65 ms of a run's first collections
    # get or http call; bench/collections_bench.py --cases job).
    "httpcore2",
    "h11",
    "anyio._backends._asyncio",
)
#: Run in the zygote (several times) and in every spare child before it gets a run
#: (``Zygote.start``).
#: ``logs.route`` wires the streams and logging in the zygote, once for every child.
WARM_UP = ("fulmen.runtime.entry:warm_up", "fulmen.runtime.logs:route")

# Read from its wire form, as a run's plan is: the zygote imports this module, so what
# ``Plan.from_wire`` builds at its first call is there before the fork, not made again in
# every child (some 20 of a child's page faults; bench/child.py).
_WARM_UP_PLAN = Plan.from_wire(
    {
        "id": "warm-up",
        "jobs": [{"id": "warm-up", "body": "fn(lambda state: state)\n", "adaptor": "common"}],
    }
)


def run_workflow(payload: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """Run the workflow in ``payload``; emits every event, ending with workflow-complete."""

    def send(event: RuntimeEvent) -> None:
        emit(to_dict(event))

    try:
        plan = Plan.from_wire(payload.get("plan"))
        initial = payload.get("input") or {}
        credentials = payload.get("credentials") or {}
        shared = payload.get("collections") or {}
        if not all(isinstance(v, dict) for v in (initial, credentials, shared)):
            raise ContractError("input, credentials and collections must be JSON objects")
    except ContractError as exc:
        send(
            WorkflowComplete(
                Reason.CRASH.value, "ValidationError", exc.message, None, [], timestamp_us()
            )
        )
        return
    token = shared.get("collections_token")
    secrets = [{"collections_token": token}] if token else []
    scrubber = Scrubber([*_all_credentials(plan, credentials), *secrets])
    limit = plan.options.log_payload_limit_mb
    sink = logs.LogSink(
        send,
        scrubber,
        plan.options.job_log_level,
        int(limit * 1_000_000) if limit else None,
    )
    logs.install(sink)
    javascript = JsSetup.from_payload(payload.get("javascript"))
    python = PyEnv.from_payload(payload.get("python"))
    if python is not None:
        python.activate()
    Engine(
        plan, credentials, send, sink, scrubber, javascript=javascript, python=python, shared=shared
    ).run(initial)


def warm_up(
    hint: Mapping[str, Any] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Run a one-step workflow on dummy data, emitting nothing and capturing no output.

    It walks the same code a real run walks, so the zygote's lazy caches are filled and a
    spare child's copy-on-write faults are taken before any payload (or secret) arrives.
    Hints (``execution.start``: what the last runs needed) go further in a spare: with a
    Python environment (``exact.python``), its pinned packages are imported, and the sandbox
    gives the spare only to a run of that same environment; with ``javascript``, the spare
    starts the Node process its run will use (``jshost.prestart``) and returns it for the
    sandbox (``child.WarmUp``).
    """
    scrubber = Scrubber([])
    sink = logs.LogSink(_discard, scrubber)
    Engine(_WARM_UP_PLAN, {}, _discard, sink, scrubber).run({"data": {}})
    if not hint:
        return None
    exact = hint.get("exact")
    python = PyEnv.from_payload(exact.get("python")) if isinstance(exact, Mapping) else None
    if python is not None:
        python.warm_up()
    javascript = JsSetup.from_payload(hint.get("javascript"))
    return prestart(javascript) if javascript is not None else None


def _discard(event: object) -> None:
    pass


def _all_credentials(plan: Plan, credentials: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [c for c in credentials.values() if isinstance(c, Mapping)]
    found.extend(job.credential for job in plan.jobs if job.credential is not None)
    return found
