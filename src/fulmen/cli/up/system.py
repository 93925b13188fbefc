"""The three parts of ``fulmen up``, started in order, watched, and stopped in reverse.

Start: the coordinator first (the others need its URL); on first start the example project
is deployed through its REST API; then the worker and the runner, each asking for the best
isolation the host gives (``--isolation best``). ``fulmen up`` is ready once the coordinator
counts the worker as connected; only then does it print where things are, and the isolation
level the worker's sandbox got. On the first start it also makes the first instance admin
and prints their password, once (datadir.first_admin).
Stop: the worker first (it finishes and reports its runs while the coordinator still
listens), then the runner, the coordinator last.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import click
import httpx2

from fulmen.cli.client import Api
from fulmen.cli.deploy import deploy_project
from fulmen.cli.up.children import Child, StartError
from fulmen.cli.up.datadir import DataDir, first_admin
from fulmen.errors import ApiError, ConfigError
from fulmen.listen import bind
from fulmen.project import load

__all__ = ["Options", "System", "bundled_examples", "runner_example"]

T = TypeVar("T")

#: How long a stopping worker lets its active runs finish.
DRAIN_SECONDS: Final = 10
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 20.0
#: Our variables in the caller's environment are not passed on: the data directory decides.
_OURS: Final = ("WORKER_", "FULMEN_", "LISTEN_ADDRESS", "DATABASE_URL")
#: …but for the coordinator's team settings (issue 18), which are the operator's to say and
#: no data directory knows: where alert e-mails go and how they are retried, single sign-on,
#: the sign-in limits and session lengths, the audit trail's retention and trusted proxies,
#: and the internal destinations a project's webhooks and token URLs may reach.
_OPERATORS: Final = (
    "FULMEN_SMTP_",
    "FULMEN_ALERT_",
    "FULMEN_PUBLIC_URL",
    "FULMEN_OIDC_",
    "FULMEN_SIGN_IN_",
    "FULMEN_INVITATION_",
    "FULMEN_DASHBOARD_SESSION_",
    "FULMEN_AUDIT_",
    "FULMEN_TRUSTED_PROXIES",
    "FULMEN_OUTBOUND_ALLOW",
)
#: The worker and the runner take whatever isolation the host gives; the banner says which.
_BEST: Final = ("--isolation", "best")
_LISTENING: Final = r"listening on (http://\S+)"
#: The worker's line once its sandbox has started (``Worker._describe``, at info level).
_SANDBOX: Final = r"sandbox: (isolation .+)$"


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 4000
    runner_port: int = 8080
    with_runner: bool = True
    #: The project file loaded on first start; ``None``: the checkout's examples.
    examples: Path | None = None
    #: The first instance admin's e-mail address, made on first start (FULMEN_ADMIN_EMAIL).
    admin_email: str = "admin@localhost"


def bundled_examples() -> Path | None:
    """The example project of the source checkout Fulmen runs from (``pip install -e .``, as
    the README installs it); an installed wheel has none, and ``--examples`` names one."""
    folder = Path(__file__).resolve().parents[4] / "examples"
    return folder / "project.yaml" if (folder / "project.yaml").is_file() else None


class System:
    """The children of one ``fulmen up``; ``stop`` is set by a signal."""

    def __init__(
        self, data: DataDir, options: Options, environ: Mapping[str, str], stop: asyncio.Event
    ) -> None:
        self.data = data
        self.options = options
        self.env = {k: v for k, v in environ.items() if not k.startswith(_OURS)}
        self.operators = {k: v for k, v in environ.items() if k.startswith(_OPERATORS)}
        self.stopping = stop
        self.children: list[Child] = []

    async def start(self) -> bool:
        """Start every part and print where they are; False if a signal came first.

        Raises:
            StartError: a part exited or did not get ready.
        """
        options = self.options
        _free(options.host, options.port, "--port")
        if options.with_runner:
            _free("127.0.0.1", options.runner_port, "--runner-port")
        # The runner needs nothing of the others; the server is told its URL (the dashboard's
        # smart workers), so it starts once the runner listens (its port may be 0).
        runner = asyncio.ensure_future(self._runner()) if options.with_runner else None
        try:
            runner_url = await self._until_stopped(runner) if runner else None
            if runner and runner_url is None:
                return False
            base = await self._until_stopped(self._server(runner_url))
            if base is None:
                return False
            await self._load_examples(base)
            worker = self._child("worker", ["worker", *_BEST], self._worker_env(base))
            await worker.start()
            sandbox = await self._until_stopped(worker.wait_for(_SANDBOX, START_TIMEOUT))
            if sandbox is None:
                return False
            if not await self._until_stopped(_connected(base, worker)):
                return False
        finally:
            if runner is not None and not runner.done():
                runner.cancel()
            elif runner is not None and not runner.cancelled():
                runner.exception()  # seen: the failure reported is the one raised here
        for child in self.children:
            child.relay()
        hooks = await _webhooks(base, self.data.api_token)
        admin = await first_admin(self.data, options.admin_email)
        self._announce(base, runner_url, hooks, sandbox.group(1), admin)
        return True

    async def supervise(self) -> int:
        """Wait for a signal (0) or for a part to exit on its own (1)."""
        exits = {asyncio.ensure_future(child.wait()): child for child in self.children}
        signalled = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait([*exits, signalled], return_when=asyncio.FIRST_COMPLETED)
        for task in [*exits, signalled]:
            task.cancel()
        if self.stopping.is_set():
            return 0
        for task in done:
            if task in exits:
                status = task.result()
                click.echo(
                    f"fulmen up: the {exits[task].name} exited with status {status}; stopping",
                    err=True,
                )
        return 1

    async def stop(self) -> None:
        """Stop the parts, worker first; a second Ctrl-C kills what is left."""
        if not self.children:
            return
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, self._kill_all)
        order = {"worker": 0, "runner": 1, "server": 2}
        for child in sorted(self.children, key=lambda c: order[c.name]):
            limit = DRAIN_SECONDS + STOP_TIMEOUT if child.name == "worker" else STOP_TIMEOUT
            await child.stop(limit)
        click.echo("fulmen up: stopped", err=True)

    def _kill_all(self) -> None:
        click.echo("fulmen up: killing what is left", err=True)
        for child in self.children:
            child.signal(signal.SIGKILL)

    # -- the parts ---------------------------------------------------------------------------

    def _child(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        child = Child(name, args, env)
        self.children.append(child)
        return child

    async def _server(self, runner_url: str | None) -> str:
        """Start the coordinator, knowing the runner when there is one; its local URL."""
        options, data = self.options, self.data
        args = ["--host", options.host, "--port", str(options.port), "--data-dir", str(data.path)]
        runner = {"FULMEN_RUNNER_URL": runner_url} if runner_url else {}
        if runner_url:
            runner["FULMEN_RUNNER_TOKEN_FILE"] = str(data.runner_token_file)
        server = self._child(
            "server",
            ["server", *args],
            {
                **self.env,
                **self.operators,
                "WORKER_SECRET": data.worker_secret,
                "WORKER_RUNS_PRIVATE_KEY": data.private_key,
                **runner,
            },
        )
        await server.start()
        return local_url((await server.wait_for(_LISTENING, START_TIMEOUT)).group(1))

    def _worker_env(self, base: str) -> dict[str, str]:
        return {
            **self.env,
            "WORKER_SECRET": self.data.worker_secret,
            "WORKER_LIGHTNING_PUBLIC_KEY": self.data.public_key,
            "WORKER_LIGHTNING_SERVICE_URL": base.replace("http", "ws", 1) + "/worker",
            "WORKER_PORT": "0",
            "WORKER_HEALTH_HOST": "127.0.0.1",
            "WORKER_LOG_LEVEL": "info",
            "WORKER_DRAIN_TIMEOUT_SECONDS": str(DRAIN_SECONDS),
        }

    async def _runner(self) -> str:
        """Start the runner; its URL."""
        args = [
            "--listen",
            f"127.0.0.1:{self.options.runner_port}",
            "--state-dir",
            str(self.data.runner_state),
            "--api-token-file",
            str(self.data.runner_token_file),
            *_BEST,
        ]
        runner = self._child("runner", ["runner", *args], self.env)
        await runner.start()
        return (await runner.wait_for(_LISTENING, START_TIMEOUT)).group(1)

    async def _load_examples(self, base: str) -> None:
        """Deploy the example project, on first start (until that has worked once)."""
        if self.data.examples_loaded:
            return
        path = self.options.examples or bundled_examples()
        if path is None:
            click.echo("fulmen up: no example project here; `fulmen deploy` one", err=True)
            return
        spec = load(path)

        def deploy() -> str:
            with Api(base, self.data.api_token) as api:
                return deploy_project(api, spec).project_id

        try:
            project_id = await asyncio.to_thread(deploy)
        except ApiError as exc:
            raise StartError(f"could not load {path}: {exc.message}") from exc
        self.data.mark_examples_loaded(project_id)
        click.echo(f"fulmen up: loaded {path} into project {spec.name!r}", err=True)

    def _announce(
        self,
        base: str,
        runner: str | None,
        hooks: list[tuple[str, str]],
        sandbox: str,
        admin_password: str | None,
    ) -> None:
        """Where everything is; on the start that made the first admin, their password,
        this once (made only now, when it can be shown at once)."""
        data = self.data
        click.echo(f"Dashboard: {base}/ui")
        for url, label in hooks:
            click.echo(f"Webhook: {url}  ({label})")
        if runner:
            click.echo(f"Runner: {runner}  (bearer token in {data.runner_token_file})")
            click.echo(f"  {runner_example(runner, data.runner_token_file)}")
        click.echo(f"API token: {data.api_token_file}  (for fulmen deploy and the REST API)")
        if admin_password is not None:
            click.echo(f"Admin: {self.options.admin_email}  (sign in to the dashboard as this)")
            click.echo(
                f"Password: {admin_password}  (shown this once: change it at {base}/ui/account)"
            )
        click.echo(f"Sandbox: {sandbox}")
        click.echo(f"Data: {data.path}  (Ctrl-C stops everything)")
        sys.stdout.flush()

    async def _until_stopped(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or ``None`` if a signal comes first."""
        task = asyncio.ensure_future(work)
        signalled = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([task, signalled], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None


def runner_example(url: str, token_file: Path) -> str:
    """The README's first smart worker as a ``curl`` command to paste, with the runner's
    token header; it uploads ``worker.py`` from the current directory."""
    header = f'"Authorization: Bearer $(cat {shlex.quote(str(token_file))})"'
    return (
        f"curl -sS {url}/workers -H {header} -F script=@worker.py -F type=module"
        """ -F schedule='*/5 * * * *' -F config='{"k": 1}'"""
    )


def _free(host: str, port: int, flag: str) -> None:
    """Say so now, in a line, if a fixed port is taken (the part would fail on it later, at
    greater length).

    Raises:
        StartError: the port is in use.
    """
    if port == 0:
        return
    try:
        bind(host, port, flag=flag).close()
    except ConfigError as exc:
        raise StartError(exc.message) from None


def local_url(bound: str) -> str:
    """Where the coordinator answers locally, given where it listens (0.0.0.0 → 127.0.0.1)."""
    rest, _, port = bound.rpartition(":")
    host = rest.removeprefix("http://")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    return f"http://{host}:{port}"


async def _connected(base: str, worker: Child) -> bool:
    """Wait until the coordinator counts a connected worker (its readiness says how many)."""
    async with httpx2.AsyncClient(base_url=base, timeout=5) as http:
        while worker.running:
            try:
                ready = (await http.get("/health/ready")).json()
            except (httpx2.HTTPError, ValueError):
                ready = {}
            if ready.get("workers", 0) > 0:
                return True
            await asyncio.sleep(0.1)  # another process: there is no event to await
    raise StartError(f"the worker exited with status {await worker.wait()} while starting")


async def _webhooks(base: str, token: str) -> list[tuple[str, str]]:
    """``(url, "project/workflow")`` of every enabled webhook trigger."""

    def read() -> list[tuple[str, str]]:
        found = []
        with Api(base, token) as api:
            for project in api.pages("/api/projects"):
                for workflow in api.pages(f"/api/projects/{project['id']}/workflows"):
                    for trigger in workflow["triggers"]:
                        if trigger["type"] == "webhook" and trigger["enabled"]:
                            label = f"{project['name']}/{workflow['name']}"
                            found.append((f"{base}/i/{trigger['id']}", label))
        return found

    return await asyncio.to_thread(read)
