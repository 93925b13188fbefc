"""The first hour (issue 21's "Must show"): what a newcomer types, run as they run it.

One ``fulmen server`` (its own data directory and keys) and one ``fulmen worker`` serve the
whole module, as subprocesses; every command is the real ``fulmen`` in a subprocess of its
own, and each test asserts the line the user reads, the exit status, and that no Python
traceback shows on either stream. The order is a newcomer's: deploy the examples (and a file
with mistakes in it), set a credential, post to the webhook the deploy printed, look at the
run, its steps and its log, rerun it from a job by name, pull a hand-written file back, then
``fulmen run`` a job that fails in two ways a job does, and ask for help.

Nothing sleeps for a fixed time: processes are ready when they say so (fulmen_testing.e2e),
a run has ended when the REST API says so (polled with a deadline).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen import keys as keyring
from fulmen_testing.e2e import FULMEN, Api, Coordinator, WorkerProcess, base_environment

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
#: A command is done well within this; the CLI itself starts in a fraction of a second.
COMMAND_TIMEOUT = 60
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
JOB_TRACEBACK = "Traceback (the job's code):\n"
HEADER = "RUN\tSTATE\tATTEMPT\tWORKFLOW\tVERSION\tWORK ORDER\tCREATED"


@dataclass(frozen=True)
class Said:
    """What one command did: its exit status and both its streams."""

    status: int
    out: str
    err: str

    def calm(self, job_tracebacks: int = 0) -> Said:
        """This, after checking that neither stream shows a traceback but a job's own
        (``Traceback (the job's code):``, its lines only), ``job_tracebacks`` of them."""
        both = self.out + self.err
        assert both.count("Traceback") == both.count(JOB_TRACEBACK) == job_tracebacks, self
        return self


async def fulmen(
    *args: str | Path, env: dict[str, str], input: str | None = None, cwd: Path = ROOT
) -> Said:
    """``fulmen <args>`` as a subprocess; awaited, so the server's and worker's output is
    read meanwhile (their pipes never fill)."""
    process = await asyncio.create_subprocess_exec(
        *FULMEN,
        *map(str, args),
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(COMMAND_TIMEOUT):
        out, err = await process.communicate(input.encode() if input is not None else b"")
    assert process.returncode is not None
    return Said(process.returncode, out.decode(), err.decode())


@dataclass
class Site:
    """The running coordinator, the REST API (to check what a command changed, and to wait
    for runs), and the environment a user's shell has: where it is and their token."""

    server: Coordinator
    api: Api
    env: dict[str, str]

    async def fulmen(self, *args: str | Path, input: str | None = None, cwd: Path = ROOT) -> Said:
        return await fulmen(*args, env=self.env, input=input, cwd=cwd)


@dataclass(frozen=True)
class Ran:
    """A run of the examples' workflow, ended: its ids as the webhook answered them."""

    run_id: str
    work_order_id: str
    run: dict[str, Any]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    data = tmp_path_factory.mktemp("first-hour") / "data"
    server = Coordinator(data, keyring.generate())
    await server.start()
    try:
        token, worker = await asyncio.gather(server.api_token(), WorkerProcess.start(server))
        try:
            async with httpx2.AsyncClient(base_url=server.base_url, timeout=30) as http:
                env = {
                    **base_environment(),
                    "FULMEN_URL": server.base_url,
                    "FULMEN_API_TOKEN": token,
                }
                yield Site(server, Api(http, token), env)
        finally:
            await worker.terminate()
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def deployed(site: Site) -> Said:
    """``fulmen deploy examples/project.yaml``, from the clone's root."""
    return await site.fulmen("deploy", "examples/project.yaml")


@pytest.fixture(scope="module")
async def webhook(deployed: Said) -> str:
    """The webhook URL the deploy printed: where the user sends data."""
    found = re.search(r"^  webhook: (\S+)$", deployed.out, re.MULTILINE)
    assert found, deployed
    return found.group(1)


@pytest.fixture(scope="module")
async def ran(site: Site, webhook: str) -> Ran:
    """The README's ``curl`` to that URL, and the run it made, once it has ended."""
    posted = await site.api.http.post(webhook, json={"items": ["a", "b", "c"]})
    assert posted.status_code == 200, posted.text
    ids = posted.json()
    run = await site.api.finished(ids["run_id"])
    assert run["state"] == "success", run
    return Ran(ids["run_id"], ids["work_order_id"], run)


# -- deploy --------------------------------------------------------------------------------------


async def test_deploying_the_examples_prints_each_change_and_the_webhook_url(
    site: Site, deployed: Said
) -> None:
    deployed.calm()
    assert (deployed.status, deployed.err) == (0, "")
    project, workflow, hook = deployed.out.splitlines()
    assert re.fullmatch(rf"project examples: created \({UUID}\)", project)
    assert workflow == "workflow count-and-report: created"
    assert re.fullmatch(rf"  webhook: {re.escape(site.server.base_url)}/i/{UUID}", hook)


CYCLE = """\
name: looped
workflows:
  loop:
    triggers: [{type: webhook}]
    jobs:
      - {name: a, body: "fn(lambda s: s)"}
      - {name: b, body: "fn(lambda s: s)"}
      - {name: c, body: "fn(lambda s:"}
    edges:
      - {from: webhook, to: a}
      - {from: a, to: b}
      - {from: b, to: a}
      - {from: b, to: nowhere}
"""


async def test_a_file_with_a_cycle_is_one_line_per_problem_and_creates_nothing(
    site: Site, tmp_path: Path
) -> None:
    (tmp_path / "project.yaml").write_text(CYCLE)
    refused = (await site.fulmen("deploy", cwd=tmp_path)).calm()
    assert (refused.status, refused.out) == (2, "")
    assert refused.err.splitlines() == [
        "fulmen deploy: project.yaml: workflows.loop.jobs[2].body: SyntaxError at line 1, "
        "column 3: '(' was never closed",
        "fulmen deploy: project.yaml: workflows.loop.edges[3].to: no job is named 'nowhere'",
        "fulmen deploy: project.yaml: workflows.loop.edges: the edges make a cycle: a -> b -> a",
    ]
    projects = (await site.api.get("/api/projects"))["items"]
    assert "looped" not in [project["name"] for project in projects]


# -- credentials ---------------------------------------------------------------------------------


async def test_a_credential_is_set_from_standard_input_and_listed_without_its_value(
    site: Site, deployed: Said
) -> None:
    made = (
        await site.fulmen("credentials", "set", "examples", "api", input='{"token": "s3cret"}')
    ).calm()
    assert (made.status, made.err) == (0, "")
    found = re.fullmatch(rf"credential api \(({UUID})\): created\n", made.out)
    assert found, made
    listed = (await site.fulmen("credentials", "list", "examples")).calm()
    assert (listed.status, listed.err) == (0, "")
    header, line = listed.out.splitlines()
    assert header == "NAME\tID\tUPDATED"
    assert re.fullmatch(rf"api\t{found.group(1)}\t{ISO}", line)
    assert "s3cret" not in made.out + listed.out


# -- runs ----------------------------------------------------------------------------------------


async def test_runs_list_by_the_workflow_s_name_has_a_header_and_names_the_workflow(
    site: Site, ran: Ran
) -> None:
    listed = (await site.fulmen("runs", "list", "--workflow", "count-and-report")).calm()
    assert (listed.status, listed.err) == (0, "")
    header, *lines = listed.out.splitlines()
    assert header == HEADER
    fields = [
        ran.run_id,
        "success",
        "attempt 1",
        "count-and-report",
        "v1",
        ran.work_order_id,
        ran.run["inserted_at"],
    ]
    assert "\t".join(fields) in lines


async def test_runs_show_names_each_step_by_its_job(site: Site, ran: Ran) -> None:
    shown = (await site.fulmen("runs", "show", ran.run_id)).calm()
    assert (shown.status, shown.err) == (0, "")
    run, *steps = shown.out.splitlines()
    assert run.split("\t")[:4] == [ran.run_id, "success", "attempt 1", "count-and-report"]
    assert [re.sub(rf"^  step {UUID}\t", "", step) for step in steps] == [
        "count\tsuccess",
        "check\tsuccess",
        "report\tsuccess",
    ]


async def test_runs_logs_name_the_job_of_each_line(site: Site, ran: Ran) -> None:
    logged = (await site.fulmen("runs", "logs", ran.run_id)).calm()
    assert (logged.status, logged.err) == (0, "")
    lines = [line.split("\t") for line in logged.out.splitlines() if "\t" in line]
    assert all(re.fullmatch(ISO, line[0]) for line in lines), lines
    said = [line[1:] for line in lines]
    assert ["info", "count", "3 items"] in said
    assert {where for _, where, _ in said} >= {"count", "check", "report"}
    assert said[-1] == ["info", "R/T", "Run complete with status: success"]


async def test_a_rerun_from_a_job_by_its_name_runs_from_that_job(site: Site, ran: Ran) -> None:
    again = (await site.fulmen("runs", "rerun", ran.work_order_id, "--from-job", "check")).calm()
    assert (again.status, again.err) == (0, "")
    found = re.fullmatch(rf"({UUID})\t{ran.work_order_id}\n", again.out)
    assert found, again
    rerun = await site.api.finished(found.group(1))
    assert rerun["state"] == "success", rerun
    shown = (await site.fulmen("runs", "show", found.group(1))).calm()
    assert f"  rerun_of: {ran.run_id}" in shown.out.splitlines()
    assert [line.split("\t")[1] for line in shown.out.splitlines() if "  step " in line] == [
        "check",
        "report",
    ]


async def test_a_rerun_of_a_work_order_that_does_not_exist_says_that(site: Site) -> None:
    refused = (await site.fulmen("runs", "rerun", "no-such-order", "--from-job", "check")).calm()
    assert (refused.status, refused.out) == (1, "")
    assert refused.err == (
        "fulmen runs rerun: no-such-order: work order no-such-order does not exist\n"
    )


async def test_a_run_that_failed_shows_the_job_s_own_line_in_its_log(
    site: Site, webhook: str
) -> None:
    """``{"items": null}`` makes ``count`` fail (examples/project.yaml says so): its log shows
    the job's line, and nothing of Fulmen's."""
    posted = await site.api.http.post(webhook, json={"items": None})
    run_id = posted.json()["run_id"]
    assert (await site.api.finished(run_id))["state"] == "failed"
    logged = (await site.fulmen("runs", "logs", run_id)).calm(job_tracebacks=1)
    assert (logged.status, logged.err) == (0, "")
    _, traced = logged.out.split(f"\terror\tcount\t{JOB_TRACEBACK}", 1)
    assert traced.startswith(
        '  line 5, in count\n    print(f"{len(items)} items")\n'
        "TypeError: object of type 'NoneType' has no len()\n"
    )


# -- pull ----------------------------------------------------------------------------------------

HAND_WRITTEN = """\
# Our sync, written by hand.
name: layout
workflows:
  sync:
    triggers:
      - {type: webhook}   # the partner posts here
    jobs:
      - name: fetch
        body: |
          # take what came
          fn(lambda s: {**s, "data": {"n": 1}})
    edges:
      - {from: webhook, to: fetch}
"""


async def test_pull_over_a_hand_written_file_keeps_its_comments_and_layout(
    site: Site, tmp_path: Path
) -> None:
    project = tmp_path / "project.yaml"
    project.write_text(HAND_WRITTEN)
    deployed = (await site.fulmen("deploy", cwd=tmp_path)).calm()
    assert deployed.status == 0, deployed
    pulled = (await site.fulmen("pull", cwd=tmp_path)).calm()
    assert (pulled.status, pulled.out, pulled.err) == (0, "wrote project.yaml\n", "")
    first, second, added, rest = project.read_text().split("\n", 3)
    assert (first, second) == ("# Our sync, written by hand.", "name: layout")
    assert re.fullmatch(rf"id: {UUID}", added)
    assert rest == HAND_WRITTEN.split("\n", 2)[2]  # the comments, the inline body, as written
    assert [path.name for path in tmp_path.iterdir()] == ["project.yaml"]  # no job files made


# -- fulmen run ----------------------------------------------------------------------------------

PICK = """\
def pick(items, key):
    return items[key]


@fn
def count(state):
    return {"n": pick(state["data"], "b")}
"""


async def test_a_job_s_runtime_error_shows_its_own_lines(tmp_path: Path) -> None:
    (tmp_path / "count.py").write_text(PICK)
    state = '{"data": {"a": 1}}'
    done = await fulmen(
        "run", "count.py", "-s", "-", env=base_environment(), input=state, cwd=tmp_path
    )
    done.calm(job_tracebacks=1)
    assert done.status == 1
    assert done.err.splitlines()[-1] == "fulmen run: run ended with fail: KeyError: 'b'"
    _, traced = done.err.split(JOB_TRACEBACK, 1)
    assert traced.startswith(
        '  line 7, in count\n    return {"n": pick(state["data"], "b")}\n'
        "  line 2, in pick\n    return items[key]\nKeyError: 'b'\n"
    )


async def test_an_http_job_that_cannot_connect_names_the_url(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/orders"
    (tmp_path / "orders.py").write_text(f"get({url!r})\n")
    done = await fulmen("run", "orders.py", "-a", "http", env=base_environment(), cwd=tmp_path)
    done.calm()
    assert done.status == 1
    assert done.err.splitlines()[-1] == (
        f"fulmen run: run ended with fail: RequestError: GET {url}: could not connect "
        "(All connection attempts failed)"
    )


# -- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "page"),
    [
        (["runs", "logs"], "reference/cli/runs/#fulmen-runs-logs"),
        (["credentials", "set"], "reference/cli/credentials/#fulmen-credentials-set"),
        (["run"], "reference/cli/run/"),
    ],
    ids=["runs logs", "credentials set", "run"],
)
async def test_help_ends_with_its_page_in_the_docs(command: list[str], page: str) -> None:
    done = (await fulmen(*command, "--help", env=base_environment())).calm()
    assert (done.status, done.err) == (0, "")
    assert done.out.splitlines()[-1] == f"  Docs: fulmen docs {page}"
