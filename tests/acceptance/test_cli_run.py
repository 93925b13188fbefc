"""``fulmen run`` as a user runs it: a real subprocess, real sandboxed children."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulmen.execution import JavaScript
from fulmen_testing.javascript import COMMON

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def fulmen(
    *args: str | Path, cwd: Path = ROOT, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fulmen", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def job(tmp_path: Path, body: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_example_workflow_succeeds_and_prints_final_state() -> None:
    result = fulmen("run", EXAMPLES / "workflow.json", "-s", EXAMPLES / "hello-state.json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": {"report": "processed 3 items"}}
    assert "3 items" in result.stderr
    assert "Run complete with status: success" in result.stderr
    assert result.stderr.startswith("sandbox: ")


def test_failure_path_runs_and_the_run_succeeds(tmp_path: Path) -> None:
    state = tmp_path / "empty.json"
    state.write_text('{"data": {"items": []}}')
    result = fulmen("run", EXAMPLES / "workflow.json", "-s", state)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["data"] == {"handled": True}
    assert final["errors"]["check"]["name"] == "ValueError"


def test_hello_job_with_output_file(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = fulmen("run", EXAMPLES / "hello.py", "-s", EXAMPLES / "hello-state.json", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert json.loads(out.read_text())["data"] == {
        "greeting": "Hello, Fulmen!",
        "at": "2026-01-01",
    }
    assert "item 2 c" in result.stderr


def test_failing_job_exits_non_zero_with_reason(tmp_path: Path) -> None:
    result = fulmen("run", job(tmp_path, "fn(lambda state: int('x'))\n"))
    assert result.returncode == 1
    ended = "fulmen run: run ended with fail: ValueError: invalid"
    assert last_line(result.stderr).startswith(ended)
    assert json.loads(result.stdout)["errors"]["job"]["name"] == "ValueError"


def test_job_that_does_not_parse_names_the_line(tmp_path: Path) -> None:
    result = fulmen("run", job(tmp_path, "fn(lambda s: s)\nfn(lambda s: s\n"))
    assert result.returncode == 1
    assert "crash: CompileError: SyntaxError at line 2" in last_line(result.stderr)


def test_credential_values_never_shown(tmp_path: Path) -> None:
    credential = tmp_path / "cred.json"
    credential.write_text('{"password": "s3cret-value"}')
    body = (
        "fn(lambda s: print(s['configuration']) or {**s, 'leak': s['configuration']['password']})\n"
    )
    result = fulmen("run", job(tmp_path, body), "-c", credential)
    assert result.returncode == 0, result.stderr
    assert "s3cret-value" not in result.stderr + result.stdout
    assert "***" in result.stderr
    assert json.loads(result.stdout) == {"data": {}, "leak": "***"}


def test_timeout_kills_the_run(tmp_path: Path) -> None:
    body = "import time\nfn(lambda s: time.sleep(30))\n"
    result = fulmen("run", job(tmp_path, body), "--timeout-ms", "300")
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "fulmen run: run ended with kill: TimeoutError: Workflow failed to return within 300ms"
    )


def test_memory_limit_kills_the_run(tmp_path: Path) -> None:
    body = "fn(lambda s: {**s, 'big': bytearray(400 * 1024 * 1024)})\n"
    result = fulmen("run", job(tmp_path, body), "--memory-mb", "64")
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "fulmen run: run ended with kill: OOMError: Run exceeded maximum memory usage"
    )


def test_async_operations_and_adaptor_flag(tmp_path: Path) -> None:
    body = "@fn\nasync def go(state):\n    state['data']['n'] = 1\n    return state\n"
    result = fulmen("run", job(tmp_path, body), "-a", "@openfn/language-common@2.1.1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": {"n": 1}}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda d: d / "missing.py", "missing.py: no such file"),
        (
            lambda d: job(d, "{not json", "bad.json"),
            "the workflow is not valid JSON (line 1, column 2",
        ),
        (lambda d: job(d, '{"jobs": [{"body": "x"}]}', "w.json"), "jobs[0].id: is required"),
        (
            lambda d: job(
                d,
                json.dumps(
                    {
                        "jobs": [{"id": "a", "body": ""}, {"id": "b", "body": ""}],
                        "edges": [
                            {"source_job_id": "a", "target_job_id": "b"},
                            {"source_job_id": "b", "target_job_id": "a"},
                        ],
                    }
                ),
                "cycle.json",
            ),
            "the workflow has a cycle: a -> b -> a",
        ),
        (
            lambda d: job(
                d,
                json.dumps(
                    {
                        "jobs": [{"id": "a", "body": ""}],
                        "edges": [{"id": "e", "source_job_id": "a", "target_job_id": "z"}],
                    }
                ),
                "nowhere.json",
            ),
            "edge 'e' points to 'z', which is not a job",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, setup: object, expected: str) -> None:
    path = setup(tmp_path)  # type: ignore[operator]
    result = fulmen("run", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert expected in result.stderr


def test_unknown_adaptor_is_one_clear_line(tmp_path: Path) -> None:
    result = fulmen("run", job(tmp_path, "fn(lambda s: s)\n"), "-a", "no-such-adaptor")
    assert result.returncode == 2
    assert "unknown adaptor 'no-such-adaptor'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_state_file_is_one_clear_line(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text("[1, 2]")
    result = fulmen("run", job(tmp_path, "fn(lambda s: s)\n"), "-s", state)
    assert result.returncode == 2
    assert "the state must be a JSON object" in result.stderr


def test_isolation_l3_is_given_or_refused_with_what_is_missing() -> None:
    result = fulmen("run", EXAMPLES / "hello.py", "--isolation", "L3")
    if result.returncode == 2 and "below the L3 asked for" in result.stderr:
        pytest.skip(f"this host does not give L3: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("sandbox: isolation L3 (")


def test_an_isolation_the_host_cannot_give_is_one_line_naming_what_is_missing() -> None:
    # The host's network lacks L3's network mechanism on any host.
    result = fulmen("run", EXAMPLES / "hello.py", "--isolation", "L3", "--network", "host")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("fulmen run: The sandbox gives isolation ")
    assert "below the L3 asked for. Missing: " in line
    assert "network: " in line.split("Missing: ", 1)[1]
    assert line.endswith("See the README's 'Security model'.")


def test_a_bad_isolation_is_one_line_before_anything_runs() -> None:
    result = fulmen("run", EXAMPLES / "hello.py", "--isolation", "maximum")
    assert result.returncode == 2
    refused = "fulmen run: --isolation must be L3, L2, L1, L0 or best, not 'maximum'\n"
    assert result.stderr == refused


@pytest.fixture
def loopback_port() -> Iterator[int]:
    """A port on the host's loopback that answers ``hi`` to whoever connects."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.sendall(b"hi")

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_the_hosts_loopback_is_out_of_reach_unless_allowed(
    tmp_path: Path, loopback_port: int
) -> None:
    body = (
        "import socket\n"
        f"fn(lambda s: {{'got': socket.create_connection(('127.0.0.1', {loopback_port}), "
        "timeout=5).recv(2).decode()})\n"
    )
    path = job(tmp_path, body)
    refused = fulmen("run", path, "--isolation", "L3")
    if refused.returncode == 2 and "below the L3 asked for" in refused.stderr:
        pytest.skip(f"this host does not give L3: {refused.stderr.strip()}")
    assert refused.returncode == 1
    assert "ConnectionRefusedError" in last_line(refused.stderr)
    allowed = fulmen("run", path, "--isolation", "L3", "--allow-net", f"127.0.0.1:{loopback_port}")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout) == {"got": "hi"}


def test_a_javascript_job_file_runs_with_openfn_s_runtime(
    tmp_path: Path, javascript: JavaScript
) -> None:
    body = """// Count the items
fn(state => {
  console.log('got', state.data.items.length, 'items');
  return { ...state, data: { count: state.data.items.length } };
});
"""
    state = tmp_path / "state.json"
    state.write_text('{"data": {"items": ["a", "b", "c"]}}')
    result = fulmen(
        "run",
        job(tmp_path, body, "count.js"),
        "-a",
        COMMON,
        "-s",
        state,
        env={"WORKER_REPO_DIR": str(javascript.repo.root)},
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": {"count": 3}}
    assert "JOB  got 3 items" in result.stderr


# -- what a newcomer gives it (issue 21) --------------------------------------------------------


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    result = fulmen("run", tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"fulmen run: {tmp_path}: is a directory; give a job file (.py, .js) or a workflow "
        "(.json)\n"
    )


def test_state_comes_from_standard_input_or_any_readable_path(tmp_path: Path) -> None:
    path = job(tmp_path, "fn(lambda s: {'data': s['data']['n'] + 1})\n")
    piped = subprocess.run(
        [sys.executable, "-m", "fulmen", "run", str(path), "-s", "-"],
        input='{"data": {"n": 41}}',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == {"data": 42}

    read, write = os.pipe()  # what <(echo ...) gives: a path that is no regular file
    os.write(write, b'{"data": {"n": 1}}')
    os.close(write)
    try:
        named = subprocess.run(
            [sys.executable, "-m", "fulmen", "run", str(path), "-s", f"/dev/fd/{read}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            pass_fds=(read,),
        )
    finally:
        os.close(read)
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout) == {"data": 2}


def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path) -> None:
    path = job(tmp_path, "print('the job ran')\n")
    result = fulmen("run", path, "-o", tmp_path / "missing" / "out.json")
    assert result.returncode == 2
    assert result.stderr == (
        f"fulmen run: -o {tmp_path / 'missing' / 'out.json'}: the directory "
        f"{tmp_path / 'missing'} does not exist\n"
    )
    assert "the job ran" not in result.stderr
