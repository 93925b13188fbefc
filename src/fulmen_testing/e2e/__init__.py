"""The whole system as a user runs it, for the end-to-end tests and ``bench/e2e.py``:
``fulmen server`` and ``fulmen worker`` as subprocesses on loopback, driven through the REST
API and webhooks, plus a :class:`Gate` that jobs wait at until a test lets them through.

Nothing here sleeps for a fixed time to let something happen: a process is ready when it
prints the line that says so (:class:`Output`), a run has moved when the API says so (polled
with a deadline, :func:`until`), a job is running when it has reached the gate.

The coordinator and the worker share only what a deployment shares: the worker secret and
the run-token key pair. Each gets its own environment built from scratch (nothing ``WORKER_``
or ``FULMEN_`` leaks in from the caller's), because both read
``WORKER_MAX_RUN_DURATION_SECONDS`` and a test may want them to differ.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from fulmen import keys as keyring

__all__ = [
    "FINAL_STATES",
    "Api",
    "Coordinator",
    "Gate",
    "Output",
    "WorkerProcess",
    "base_environment",
    "cpu_seconds",
    "gated_job",
    "system",
    "until",
    "vm_kib",
]

FULMEN = (sys.executable, "-m", "fulmen")
FINAL_STATES = frozenset(
    {"success", "failed", "crashed", "killed", "exception", "cancelled", "lost"}
)
#: Long enough for a loaded CI machine to start a Python process; every wait is bounded.
START_TIMEOUT = 30.0
#: A page of runs or log lines (the API serves up to 500 runs, 1000 lines).
PAGE = 500

T = TypeVar("T")


def base_environment() -> dict[str, str]:
    """The caller's environment without any Fulmen or worker setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}


async def until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    every: float = 0.05,
    what: str = "the condition",
) -> T:
    """Poll ``probe()`` until ``done`` holds for its value; return that value.

    Raises:
        AssertionError: not within ``timeout`` seconds, with the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s; last seen: {value!r}")
        await asyncio.sleep(every)  # polling the API as a user would


def vm_kib(pid: int, field_name: str = "VmRSS") -> int:
    """A ``/proc/<pid>/status`` memory figure in KiB (``VmRSS``, ``VmHWM``); 0 if gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (``/proc/<pid>/stat``); 0 if gone.
    On a shared machine this is steadier than wall time as a measure of cost."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Output:
    """A process's stderr, line by line, kept whole; tests wait for a line to appear."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._read(stream))
        self.closed = False

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while True:
            raw = await stream.readline()
            async with self._changed:
                if not raw:
                    self.closed = True
                else:
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
            if not raw:
                return

    def count(self, pattern: str) -> int:
        return sum(1 for line in self.lines if re.search(pattern, line))

    async def wait_for(
        self, pattern: str, *, times: int = 1, timeout: float = START_TIMEOUT
    ) -> re.Match[str]:
        """The ``times``-th line matching ``pattern`` (a regular expression).

        Raises:
            AssertionError: the stream ended or the time ran out first (with what it said).
        """
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    found = [m for line in self.lines if (m := re.search(pattern, line))]
                    if len(found) >= times:
                        return found[times - 1]
                    if self.closed:
                        break
                    await self._changed.wait()
        except TimeoutError:
            pass
        raise AssertionError(f"no line like {pattern!r} (x{times}):\n{self.text()[-4000:]}")

    def text(self) -> str:
        return "\n".join(self.lines)

    async def finished(self) -> None:
        await self._task


async def _spawn(
    args: list[str], env: Mapping[str, str]
) -> tuple[asyncio.subprocess.Process, Output]:
    process = await asyncio.create_subprocess_exec(
        *FULMEN,
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    return process, Output(process.stderr)


async def _end(process: asyncio.subprocess.Process, output: Output, how: int) -> int:
    """Signal ``process`` (if still running) and reap it; its exit status."""
    if process.returncode is None:
        process.send_signal(how)
    async with asyncio.timeout(START_TIMEOUT):
        status = await process.wait()
        await output.finished()
    return status


@dataclass
class Coordinator:
    """``fulmen server`` on a data directory. :meth:`start` again after :meth:`kill` or
    :meth:`stop` brings it back on the same port and data (a restart)."""

    data_dir: Path
    keys: keyring.GeneratedKeys
    settings: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    #: ``fulmen server --log``; ``info`` shows each claim and completion.
    log: str = "info"
    process: asyncio.subprocess.Process | None = None
    output: Output | None = None
    #: Every run of the process so far, for messages when something fails.
    history: list[Output] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **base_environment(),
            "WORKER_SECRET": self.keys.worker_secret,
            "WORKER_RUNS_PRIVATE_KEY": self.keys.private_key,
            "FULMEN_DATA_DIR": str(self.data_dir),
            **self.settings,
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/worker"

    async def start(self) -> None:
        args = ["server", "--host", "127.0.0.1", "--port", str(self.port), "--log", self.log]
        self.process, self.output = await _spawn(args, self.env)
        self.history.append(self.output)
        line = await self.output.wait_for(r"listening on http://[\d.]+:(\d+)")
        self.port = int(line.group(1))

    async def kill(self) -> int:
        """SIGKILL: no graceful anything, as a crash or an OOM kill would do."""
        assert self.process is not None and self.output is not None
        return await _end(self.process, self.output, signal.SIGKILL)

    async def stop(self) -> int:
        if self.process is None or self.output is None:
            return 0
        return await _end(self.process, self.output, signal.SIGTERM)

    async def api_token(self) -> str:
        """A REST API token, as an operator makes one: ``fulmen server token create``."""
        process = await asyncio.create_subprocess_exec(
            *FULMEN,
            "server",
            "token",
            "create",
            "--name",
            "e2e",
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(START_TIMEOUT):
            out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return out.decode().strip()


@dataclass
class WorkerProcess:
    """``fulmen worker`` against a coordinator; ready once it has joined ``worker:queue``."""

    process: asyncio.subprocess.Process
    output: Output

    @classmethod
    async def start(
        cls,
        coordinator: Coordinator,
        *,
        capacity: int = 1,
        secret: str | None = None,
        settings: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> WorkerProcess:
        keys = coordinator.keys
        env = {
            **base_environment(),
            "WORKER_LIGHTNING_SERVICE_URL": coordinator.socket_url,
            "WORKER_SECRET": secret or keys.worker_secret,
            "WORKER_LIGHTNING_PUBLIC_KEY": keys.public_key,
            "WORKER_CAPACITY": str(capacity),
            "WORKER_PORT": "0",
            "WORKER_HEALTH_HOST": "127.0.0.1",
            "WORKER_LOG_LEVEL": "info",
            **(settings or {}),
        }
        process, output = await _spawn(["worker"], env)
        worker = cls(process, output)
        if wait:
            await output.wait_for(r"joined worker:queue")
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    async def exited(self, *, timeout: float = START_TIMEOUT) -> int:
        """The exit status, once the process has ended by itself."""
        async with asyncio.timeout(timeout):
            status = await self.process.wait()
            await self.output.finished()
        return status

    async def terminate(self) -> int:
        """SIGTERM (drain) and the exit status."""
        return await _end(self.process, self.output, signal.SIGTERM)

    async def kill(self) -> int:
        return await _end(self.process, self.output, signal.SIGKILL)


class Api:
    """The REST API and webhooks, as a client of the coordinator sees them."""

    def __init__(self, http: httpx2.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, headers=self.headers, params=params or None)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    async def workflow(
        self,
        jobs: Mapping[str, str],
        edges: list[tuple[str, str, str]],
        *,
        name: str = "e2e",
        reply: str | None = None,
        adaptor: str = "common",
    ) -> tuple[str, str]:
        """A project with one workflow: a webhook trigger to the first job of ``jobs``
        (id → body, all on ``adaptor``: an OpenFn package makes them JavaScript jobs), then
        ``edges`` (source, target, condition). ``reply="after_completion"`` makes the webhook
        answer when the run has ended. Returns the workflow id and the webhook trigger id."""
        project = await self.http.post("/api/projects", json={"name": name}, headers=self.headers)
        assert project.status_code in (200, 201), project.text
        project_id = project.json()["id"]
        trigger = f"hook-{project_id[:8]}"
        first = next(iter(jobs))
        document = {
            "name": name,
            "jobs": [
                {"id": job_id, "name": job_id, "adaptor": adaptor, "body": body}
                for job_id, body in jobs.items()
            ],
            "triggers": [{"id": trigger, "type": "webhook", "webhook_reply": reply}],
            "edges": [
                {"source_trigger_id": trigger, "target_job_id": first},
                *({"source_job_id": s, "target_job_id": t, "condition": c} for s, t, c in edges),
            ],
        }
        created = await self.http.post(
            f"/api/projects/{project_id}/workflows", json=document, headers=self.headers
        )
        assert created.status_code == 201, created.text
        return created.json()["id"], trigger

    async def hook(self, trigger: str, body: Any) -> str:
        """Post a webhook; the run id."""
        response = await self.http.post(f"/i/{trigger}", json=body)
        assert response.status_code == 200, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    async def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = await self.get(f"/api/runs/{run_id}")
        return run

    async def finished(self, run_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """The run once it is in a final state."""
        return await until(
            lambda: self.run(run_id),
            lambda run: run["state"] in FINAL_STATES,
            timeout=timeout,
            what=f"run {run_id} finishing",
        )

    async def runs(self, workflow_id: str) -> list[dict[str, Any]]:
        """Every run of the workflow."""
        return await self._pages("/api/runs", workflow_id=workflow_id)

    async def logs(self, run_id: str) -> list[dict[str, Any]]:
        """Every log line of the run, in order."""
        return await self._pages(f"/api/runs/{run_id}/logs")

    async def _pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.get(
                path, **params, limit=PAGE, **({"cursor": cursor} if cursor else {})
            )
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    async def dataclip(self, dataclip_id: str) -> Any:
        return (await self.get(f"/api/dataclips/{dataclip_id}"))["body"]


class Gate:
    """A loopback TCP rendezvous that jobs wait at: a job connects, says its name, and blocks
    until :meth:`release`. The test learns that a job is running (and which) at the moment it
    is, with no file or sleep. The runs' network does not reach the host's loopback: start
    the worker with :attr:`worker_settings`, which allows the gate's port.

    ``arrived``: names in order of arrival; ``waiting``: arrived and not yet released;
    ``passed``: names whose socket closed (the job went on, or its process died). Leaving
    the ``async with`` lets every job still waiting through.
    """

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.released: set[str] = set()
        self.passed: list[str] = []
        self._writers: dict[str, asyncio.StreamWriter] = {}
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._arrive, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers.values():
            writer.close()
        assert self._server is not None
        self._server.close()

    @property
    def worker_settings(self) -> dict[str, str]:
        """``fulmen worker``'s environment for its runs to reach the gate."""
        assert self.port, "enter the gate first"
        return {"FULMEN_ALLOW_NET": f"127.0.0.1:{self.port}"}

    @property
    def waiting(self) -> list[str]:
        return [name for name in self.arrived if name not in self.released]

    def code(self) -> str:
        """Job source defining ``gate(name)``: wait here until the test says go."""
        return (
            "import socket\n"
            "def gate(name):\n"
            f"    with socket.create_connection(('127.0.0.1', {self.port})) as sock:\n"
            "        sock.sendall(name.encode() + b'\\n')\n"
            "        sock.recv(1)\n"
        )

    async def _arrive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = (await reader.readline()).decode().strip()
        async with self._changed:
            self.arrived.append(name)
            self._writers[name] = writer
            self._changed.notify_all()
        await reader.read()  # the job closes its end once through (or dies)
        async with self._changed:
            self.passed.append(name)
            self._writers.pop(name, None)
            self._changed.notify_all()
        writer.close()

    async def wait(
        self, check: Callable[[Gate], bool], *, timeout: float = 20.0, what: str = "gate"
    ) -> None:
        """Until ``check(self)`` holds after some arrival or departure.

        Raises:
            AssertionError: not within ``timeout`` seconds, naming ``what``.
        """
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: check(self))
        except TimeoutError:
            raise AssertionError(
                f"{what}: not within {timeout}s (arrived {self.arrived}, passed {self.passed})"
            ) from None

    async def reached(self, name: str, *, timeout: float = 20.0) -> None:
        await self.wait(lambda g: name in g.arrived, timeout=timeout, what=f"{name} at the gate")

    def release(self, name: str) -> None:
        self.released.add(name)
        self._writers[name].write(b"!")


def gated_job(gate: Gate, name: str) -> str:
    """A job that prints ``<name> waiting``, waits at ``gate``, prints ``<name> through`` and
    adds ``{<name>: True}`` to ``state['data']``. ``name`` may use ``{n}`` for the webhook
    body's ``n`` (so each run of the same workflow has its own name at the gate)."""
    label = f"{name!r}.format(n=state['data'].get('n'))" if "{n}" in name else repr(name)
    return (
        gate.code()
        + "@fn\n"
        + "def step(state):\n"
        + f"    name = {label}\n"
        + "    print(name, 'waiting')\n"
        + "    gate(name)\n"
        + "    print(name, 'through')\n"
        + "    state['data'] = {**state['data'], name: True}\n"
        + "    return state\n"
    )


@asynccontextmanager
async def system(
    tmp_path: Path,
    *,
    capacity: int = 1,
    coordinator: Mapping[str, str] | None = None,
    worker: Mapping[str, str] | None = None,
    with_worker: bool = True,
) -> AsyncIterator[tuple[Coordinator, WorkerProcess | None, Api]]:
    """A coordinator (fresh data directory), an API token, and (unless ``with_worker`` is
    false) one worker of ``capacity``; everything is stopped on the way out."""
    server = Coordinator(tmp_path / "data", _keys(), settings=dict(coordinator or {}))
    await server.start()
    started: WorkerProcess | None = None
    try:
        if with_worker:
            token, started = await asyncio.gather(
                server.api_token(),
                WorkerProcess.start(server, capacity=capacity, settings=worker),
            )
        else:
            token = await server.api_token()
        async with httpx2.AsyncClient(base_url=server.base_url, timeout=30) as http:
            yield server, started, Api(http, token)
    finally:
        if started is not None:
            await started.kill()
        await server.stop()


@functools.cache
def _keys() -> keyring.GeneratedKeys:
    """One key set per test process (generating an RSA key takes a while)."""
    return keyring.generate()
