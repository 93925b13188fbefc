"""A real worker handed Lightning's JavaScript jobs (issue 15): what every Lightning user has,
an ``@openfn/language-*`` adaptor at an exact version and a JavaScript body, with no word of
its language in the plan (Lightning says none)."""

from __future__ import annotations

import json
import re
from typing import Any

from fulmen.execution import JavaScript
from fulmen_testing.javascript import COMMON
from fulmen_testing.worker import (
    Lightning,
    Recorded,
    ScriptedRun,
    keys,
    plan,
    private_key,
    running,
    scenario,
    settings_for,
)

# As Lightning's dashboard writes a new job; it parses as Python too, which must not matter.
BODY = """// Get some data
fn(state => {
  console.log('items:', state.data.items.length);
  return { ...state, data: { count: state.data.items.length } };
});
"""
GREET = "log('hello');\nfn(state => state)\n"
LIGHTNING_PLAN = plan(
    {"id": "count", "name": "Count", "body": BODY, "adaptor": COMMON},
    {"id": "next", "adaptor": COMMON,
     "body": "fn(state => ({ data: { doubled: state.data.count * 2 } }))"},
    edges=[{"id": "e1", "source_job_id": "count", "target_job_id": "next",
            "condition": "state.data.count > 1 && !state.errors"}],
)  # fmt: skip


def server() -> Lightning:
    return Lightning(secret=keys().worker_secret, private_key=private_key())


async def ran(lightning: Lightning, run_id: str) -> list[Recorded]:
    await lightning.wait_for(lambda: any(e.event == "phx_leave" for e in lightning.of_run(run_id)))
    return lightning.of_run(run_id)


def payloads(events: list[Recorded], event: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.event == event]


def test_lightning_s_javascript_workflow_runs_on_a_worker_with_node(
    javascript: JavaScript,
) -> None:
    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning), javascript=javascript):
            data = json.dumps({"data": {"items": ["a", "b", "c"]}}).encode()
            lightning.enqueue(ScriptedRun("js", LIGHTNING_PLAN, data, {}))
            events = await ran(lightning, "js")

        completes = payloads(events, "step:complete")
        assert [(c["job_id"], c["reason"]) for c in completes] == [
            ("count", "success"),
            ("next", "success"),
        ]
        [complete] = payloads(events, "run:complete")
        assert complete["reason"] == "success", complete
        assert complete["final_state"] == {"data": {"doubled": 6}}
        logs = [" ".join(map(str, p["message"])) for p in payloads(events, "run:log")]
        assert "items: 3" in logs
        [start] = payloads(events, "run:start")
        versions = start["versions"]
        assert versions["@openfn/language-common"] == ["3.3.4"]
        assert versions["node"] == javascript.version and versions["runtime"] == "1.9.5"
        [banner] = [p["message"][0] for p in payloads(events, "run:log") if p["source"] == "VER"]
        assert re.search(rf"▸ node\s+{re.escape(javascript.version)}\n", banner), banner

    scenario(body, timeout=90)


def test_a_worker_without_node_ends_a_javascript_run_as_a_crash_naming_why() -> None:
    """Never run as Python: ``log('hello');`` parses as Python and would 'succeed'."""

    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning)):
            greet = plan({"id": "greet", "body": GREET, "adaptor": COMMON})
            lightning.enqueue(ScriptedRun("js", greet, b'{"data": {}}', {}))
            events = await ran(lightning, "js")

        [complete] = payloads(events, "run:complete")
        assert (complete["reason"], complete["error_type"]) == ("crash", "LanguageError")
        assert re.search(r"does not run JavaScript jobs", complete["error_message"])
        assert payloads(events, "step:start") == []

    scenario(body)
