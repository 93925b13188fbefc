"""OpenFn's JavaScript jobs on Fulmen's runtime: real Node.js, OpenFn's real runtime and
adaptors from the npm registry, each run in a real sandboxed child (issue 15).

The packages are installed once per test session into a repository of its own, as a worker
installs them; the HTTP adaptor talks to a server on this host's loopback, which the sandbox
lets runs reach only because the zygote is told to (``allow_net``), as an operator would.
What the final states and step outcomes must be is what OpenFn's runtime documents: a thrown
error fails its step (``JobError``, recorded in ``state.errors``) and the run goes on along
failure edges; a ``ReferenceError`` crashes the run (``RuntimeCrash``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fulmen.config import SandboxSettings
from fulmen.execution import Defaults, JavaScript, RunRequest, start, start_zygote
from fulmen.plan import Plan
from fulmen.runtime.events import (
    RuntimeEvent,
    StepStart,
    WorkflowStart,
)
from fulmen_testing.javascript import COMMON, HTTP, Run


class _Api(BaseHTTPRequestHandler):
    """A tiny JSON API: GET /items answers a list; POST /echo answers what it was sent."""

    def do_GET(self) -> None:
        self._answer({"items": [{"id": 1}, {"id": 2}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self._answer({"received": json.loads(self.rfile.read(length) or b"null")})

    def _answer(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(
    javascript: JavaScript,
    jobs: list[dict[str, Any]],
    edges: list[dict[str, Any]] | None = None,
    input: dict[str, Any] | None = None,
    *,
    allow: tuple[str, ...] = (),
    credentials: dict[str, dict[str, Any]] | None = None,
    **options: Any,
) -> Run:
    plan = Plan.from_wire(
        {
            "id": "run-1",
            "jobs": [{"adaptor": COMMON, **job} for job in jobs],
            "edges": edges or [],
            "options": options,
        }
    )

    async def main() -> list[RuntimeEvent]:
        sandbox = SandboxSettings(allow_net=allow)
        async with await start_zygote(sandbox, javascript) as zygote, asyncio.timeout(60):
            request = RunRequest(plan, input or {"data": {}}, credentials or {})
            execution = await start(zygote, request, Defaults(), javascript)
            return [event async for event in execution]

    return Run(asyncio.run(main()))


def chain(*ids: str, condition: str | None = None) -> list[dict[str, Any]]:
    return [
        {"source_job_id": a, "target_job_id": b, **({"condition": condition} if condition else {})}
        for a, b in itertools.pairwise(ids)
    ]


# -- state through a job ----------------------------------------------------------------------


def test_fn_threads_state_and_console_log_is_the_job_s_log(javascript: JavaScript) -> None:
    body = """// Get some data
fn(state => {
  console.log('count is', state.data.count, { unit: 'items' });
  return { ...state, data: { count: state.data.count + 1 } };
});
fn(state => ({ ...state, data: { ...state.data, doubled: state.data.count * 2 } }));
"""
    result = run(javascript, [{"id": "count", "body": body}], input={"data": {"count": 41}})

    assert result.complete.reason == "success"
    assert result.final == {"data": {"count": 42, "doubled": 84}}  # configuration removed
    assert 'count is 41 {"unit":"items"}' in result.lines("JOB")
    assert isinstance(result.events[0], WorkflowStart)


def test_each_and_data_value_from_language_common(javascript: JavaScript) -> None:
    # each() hands each item to its operation as state.data, and leaves the last one there.
    body = """fn(state => ({ ...state, seen: [], first: dataValue('items[0].name')(state) }));
each('$.data.items[*]', fn(state => {
  state.seen.push(state.data.name.toUpperCase());
  return state;
}));
fn(state => ({ data: { names: state.seen, first: state.first, last: state.data.name } }));
"""
    items = [{"name": "a"}, {"name": "b"}]
    result = run(javascript, [{"id": "names", "body": body}], input={"data": {"items": items}})

    assert result.complete.reason == "success", result.lines()
    assert result.final == {"data": {"names": ["A", "B"], "first": "a", "last": "b"}}


def test_lazy_state_reads_the_state_an_operation_is_given(javascript: JavaScript) -> None:
    body = "fn(state => ({ ...state, data: { n: 2 } }))\nfn(state => ({ data: { got: $.data.n } }))"
    result = run(javascript, [{"id": "lazy", "body": body}])

    assert result.final == {"data": {"got": 2}}


def test_get_and_post_with_language_http_against_a_local_api(
    javascript: JavaScript, api: str
) -> None:
    body = f"""get('http://{api}/items');
fn(state => ({{ ...state, ids: state.data.items.map(i => i.id) }}));
post('http://{api}/echo', state => ({{ ids: state.ids }}));
fn(state => ({{ data: state.data }}));
"""
    result = run(javascript, [{"id": "call", "body": body, "adaptor": HTTP}], allow=(api,))

    assert result.complete.reason == "success", result.lines()
    assert result.final == {"data": {"received": {"ids": [1, 2]}}}


# -- how steps end --------------------------------------------------------------------------


def test_a_thrown_error_fails_its_step_and_the_failure_edge_runs(javascript: JavaScript) -> None:
    jobs = [
        {"id": "check", "body": "fn(state => { throw new Error('no items today') })"},
        {
            "id": "handle",
            "body": "fn(state => ({ data: { handled: state.errors.check.message } }))",
        },
        {"id": "report", "body": "fn(state => state)"},
    ]
    edges = [
        {"source_job_id": "check", "target_job_id": "handle", "condition": "on_job_failure"},
        {"source_job_id": "check", "target_job_id": "report", "condition": "on_job_success"},
    ]
    result = run(javascript, jobs, edges)

    assert result.outcomes == [("check", "fail", "JobError"), ("handle", "success", None)]
    assert result.final == {"data": {"handled": "no items today"}}
    assert result.complete.reason == "success"  # the leaf succeeded, as OpenFn's runtime says


def test_a_reference_error_crashes_the_run(javascript: JavaScript) -> None:
    jobs = [
        {"id": "broken", "body": "fn(state => ({ ...state, x: notDefined.y }))"},
        {"id": "after", "body": "fn(state => state)"},
    ]
    result = run(javascript, jobs, chain("broken", "after", condition="always"))

    assert result.outcomes == [("broken", "crash", "RuntimeCrash")]
    assert result.complete.reason == "crash"
    assert "notDefined is not defined" in (result.complete.error_message or "")


def test_a_syntax_error_names_its_line_and_no_step_runs(javascript: JavaScript) -> None:
    jobs = [
        {"id": "fine", "body": "fn(state => state)"},
        {"id": "typo", "body": "fn(state => state)\nfn(state => {\n  return state;\n"},
    ]
    result = run(javascript, jobs, chain("fine", "typo"))

    assert (result.complete.reason, result.complete.error_type) == ("crash", "CompileError")
    assert "job typo: SyntaxError at line 4" in (result.complete.error_message or "")
    assert result.steps == []


def test_a_job_that_never_returns_is_killed_at_the_timeout(javascript: JavaScript) -> None:
    body = "fn(state => new Promise(() => {}))"
    result = run(javascript, [{"id": "hang", "body": body}], run_timeout_ms=1500)

    assert (result.complete.reason, result.complete.error_type) == ("kill", "TimeoutError")


def test_a_job_that_eats_memory_is_killed_for_it(javascript: JavaScript) -> None:
    body = """fn(state => {
  const hog = [];
  while (true) hog.push(new Array(1e6).fill(hog.length));
})"""
    result = run(javascript, [{"id": "hog", "body": body}], run_memory_limit_mb=200)

    assert (result.complete.reason, result.complete.error_type) == ("kill", "OOMError")


# -- secrets ----------------------------------------------------------------------------------


def test_a_credential_is_masked_in_logs_outputs_and_errors(javascript: JavaScript) -> None:
    body = """fn(state => {
  console.log('the password is', state.configuration.password);
  return { ...state, data: { leaked: state.configuration.password } };
});
fn(state => { throw new Error('failed with ' + state.data.leaked) });
"""
    result = run(
        javascript,
        [{"id": "leak", "body": body, "credential_id": "c1"}],
        credentials={"c1": {"password": "hunter2-secret"}},
    )

    text = json.dumps([repr(e) for e in result.events])
    assert "hunter2-secret" not in text
    assert "the password is ***" in result.lines("JOB")
    assert result.steps[0].error_message == "failed with ***"


# -- workflows ------------------------------------------------------------------------------


def test_javascript_edge_conditions_choose_the_path(javascript: JavaScript) -> None:
    jobs = [
        {"id": "count", "body": "fn(state => ({ data: { count: state.data.items.length } }))"},
        {"id": "many", "body": "fn(state => ({ data: { verdict: 'many' } }))"},
        {"id": "few", "body": "fn(state => ({ data: { verdict: 'few' } }))"},
    ]
    edges = [
        {
            "source_job_id": "count",
            "target_job_id": "many",
            "condition": "state.data.count > 2 && !state.errors",
        },
        {"source_job_id": "count", "target_job_id": "few", "condition": "state.data.count <= 2"},
    ]
    result = run(javascript, jobs, edges, input={"data": {"items": [1, 2, 3]}})

    assert [s.job_id for s in result.steps] == ["count", "many"]
    assert result.final == {"data": {"verdict": "many"}}


def test_a_workflow_may_mix_python_and_javascript_jobs(javascript: JavaScript) -> None:
    jobs = [
        {"id": "js", "body": "fn(state => ({ data: { n: 20 } }))"},
        {
            "id": "py",
            "body": "fn(lambda s: {**s, 'data': {'n': s['data']['n'] + 1}})",
            "adaptor": "common",
        },
        {"id": "js2", "body": "fn(state => ({ data: { n: state.data.n * 2 } }))"},
    ]
    result = run(javascript, jobs, chain("js", "py", "js2"))

    assert result.outcomes == [
        ("js", "success", None),
        ("py", "success", None),
        ("js2", "success", None),
    ]
    assert result.final == {"data": {"n": 42}}


def test_a_broken_javascript_condition_crashes_before_any_step(javascript: JavaScript) -> None:
    jobs = [{"id": "a", "body": "fn(s => s)"}, {"id": "b", "body": "fn(s => s)"}]
    result = run(javascript, jobs, chain("a", "b", condition="state.data.(("))

    assert (result.complete.reason, result.complete.error_type) == ("crash", "EdgeConditionError")
    assert not any(isinstance(e, StepStart) for e in result.events)


# -- packages ---------------------------------------------------------------------------------


def test_an_adaptor_version_that_does_not_exist_ends_the_run_with_npm_s_reason(
    javascript: JavaScript,
) -> None:
    result = run(
        javascript,
        [{"id": "a", "body": "fn(s => s)", "adaptor": "@openfn/language-common@0.0.999"}],
    )

    assert (result.complete.reason, result.complete.error_type) == ("crash", "AdaptorError")
    assert "@openfn/language-common@0.0.999" in (result.complete.error_message or "")
    assert "Installing @openfn/language-common@0.0.999" in result.lines("R/T")
    assert result.steps == []


# -- isolation --------------------------------------------------------------------------------


def test_javascript_escaping_node_s_vm_still_cannot_touch_the_host(javascript: JavaScript) -> None:
    """OpenFn's runtime refuses code generation inside the job's context, but an adaptor's
    function is from Node's own, and its constructor compiles code there: that reaches Node's
    process and its file system binding. The sandbox around Node is the boundary: the host's
    files are not there to read or write."""
    body = """fn(state => {
  const process = fn.constructor('return process')();
  const fs = process.binding('fs');
  const tried = {};
  for (const [name, attempt] of Object.entries({
    control: () => fs.open('/usr/bin/node', 0, 0o644),
    shadow: () => fs.open('/etc/shadow', 0, 0o644),
    home: () => fs.open('/root', 0, 0o644),
    write: () => fs.open('/usr/fulmen-was-here', 0o101, 0o644),
  })) {
    try { attempt(); tried[name] = 'opened'; } catch (e) { tried[name] = e.code || String(e); }
  }
  return { data: tried };
})"""
    result = run(javascript, [{"id": "escape", "body": body}])

    assert result.complete.reason == "success", result.lines()
    tried = result.final["data"]
    assert tried.pop("control") == "opened", tried  # the escape works: it can open files
    # Not in the run's root at all, or there only as the way to the interpreter, not readable.
    assert tried["shadow"] in ("ENOENT", "EACCES") and tried["home"] in ("ENOENT", "EACCES")
    assert tried["write"] in ("EROFS", "EACCES"), tried
    assert not Path("/usr/fulmen-was-here").exists()


# -- spares that start Node before their run ----------------------------------------------


def runs_in_one_zygote(
    javascript: JavaScript, plans: list[tuple[Plan, dict[str, dict[str, Any]]]]
) -> list[Run]:
    """The runs one after another on one zygote, as a worker makes them, each waiting for the
    spares to be ready (so that from the third JavaScript run on, Node was started early)."""

    async def main() -> list[Run]:
        results = []
        async with await start_zygote(None, javascript) as zygote, asyncio.timeout(120):
            for plan, credentials in plans:
                request = RunRequest(plan, {"data": {}}, credentials)
                execution = await start(zygote, request, Defaults(), javascript)
                results.append(Run([event async for event in execution]))
                await asyncio.sleep(0.5)  # a spare forks and starts Node meanwhile
        return results

    return asyncio.run(main())


def test_a_spare_s_early_node_never_holds_another_run_s_data(javascript: JavaScript) -> None:
    plant = "fn(state => { globalThis.planted = state.configuration.token; return { data: {} } })"
    look = "fn(state => ({ data: { seen: String(globalThis.planted) } }))"

    def js(body: str) -> Plan:
        job = {"id": "j", "body": body, "adaptor": COMMON, "credential_id": "c"}
        return Plan.from_wire({"id": "r", "jobs": [job]})

    secret = {"c": {"token": "tok-4711"}}
    results = runs_in_one_zygote(
        javascript, [(js(plant), secret), (js(plant), secret)] + [(js(look), {})] * 2
    )

    assert [r.complete.reason for r in results] == ["success"] * 4
    assert [r.final for r in results[2:]] == [{"data": {"seen": "undefined"}}] * 2


def test_a_python_run_after_javascript_ones_gets_no_node_against_its_memory(
    javascript: JavaScript,
) -> None:
    """Node holds ~50 MB; a spare warmed with it is not handed a run that has no JavaScript,
    whose memory limit it would count against."""
    js = Plan.from_wire({"id": "r", "jobs": [{"id": "j", "body": "fn(s => s)", "adaptor": COMMON}]})
    python = Plan.from_wire(
        {
            "id": "r",
            "jobs": [
                {"id": "p", "body": "fn(lambda s: {'data': {'ok': True}})", "adaptor": "common"}
            ],
            "options": {"run_memory_limit_mb": 60},
        }
    )

    results = runs_in_one_zygote(javascript, [(js, {})] * 3 + [(python, {})] * 3)

    assert [r.complete.reason for r in results] == ["success"] * 6, [r.outcomes for r in results]
    assert [r.final for r in results[3:]] == [{"data": {"ok": True}}] * 3
