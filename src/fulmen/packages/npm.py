"""The worker's repository of npm packages: OpenFn's runtime with Fulmen's host for it, and each
adaptor version a JavaScript job names. Runs read it (``Zygote.start``'s ``read_only``) and
never write it; nothing in it is secret.

Layout under the root (``WORKER_REPO_DIR``)::

    host/<digest>/                 fulmen/runtime/js (host.mjs, compile.mjs, package.json and
                                   its lock) and the node_modules ``npm ci`` made from the lock
    adaptors/<name>@<version>/     one adaptor version: node_modules/<name> and its dependencies

*Once.* A directory there is complete: each is installed into a temporary directory beside it
and renamed into place. A lock file per directory (``flock``) makes the runs of several workers
on one host install it once; within a worker, an asyncio lock per directory makes concurrent
runs wait for the one install. A run never waits on the registry for a version already here.

*Safety.* npm runs with ``--ignore-scripts``: a package's install script would run here, as
the worker, outside the sandbox. Names are checked against npm's rules before they reach a
path or a command line, and versions must be exact (``resolve`` turns a tag or a range into
one, asking the registry). npm's own settings apply (a private registry in ``.npmrc``), and
``--prefer-offline`` lets a host whose npm cache holds a package install it without the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from fulmen.adaptor_versions import Wanted, is_version, kind_of
from fulmen.errors import AdaptorError
from fulmen.packages import tools
from fulmen.packages.tools import Progress

__all__ = ["HOST_FILES", "Installed", "NpmRepo"]

#: What a host directory is made of, from ``fulmen/runtime/js``.
HOST_FILES: Final = ("package.json", "package-lock.json", "host.mjs", "compile.mjs")
#: npm's rules for a package name (validate-npm-package-name, for new packages).
_NAME: Final = re.compile(r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*")
_NPM_FLAGS: Final = ("--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline")


@dataclass(frozen=True, slots=True)
class Installed:
    """Where a package is, and how long installing it took (0 if it was there already)."""

    path: Path
    seconds: float = 0.0


class NpmRepo:
    """One repository root; safe to share between the runs of a worker."""

    def __init__(self, root: Path, npm: str = "npm") -> None:
        self.root = root
        self._npm = npm
        self._locks: dict[Path, asyncio.Lock] = {}
        #: Host directories found or installed, by source: the files a worker ships do not
        #: change while it runs, so each JavaScript run need not read and hash them again.
        self._hosts: dict[Path, Path] = {}

    def prepare(self) -> None:
        """Make the root (readable by runs: 0755, as npm makes what it installs)."""
        for folder in (self.root, self.root / "host", self.root / "adaptors"):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)

    async def host(self, source: Path, progress: Progress) -> Installed:
        """The host directory for the files in ``source`` (``fulmen/runtime/js``)."""
        known = self._hosts.get(source)
        if known is not None and known.is_dir():
            return Installed(known)
        digest = hashlib.sha256()
        for name in HOST_FILES:
            digest.update(name.encode() + b"\0" + (source / name).read_bytes() + b"\0")
        target = self.root / "host" / digest.hexdigest()[:16]

        async def install(work: Path) -> None:
            for name in HOST_FILES:
                shutil.copyfile(source / name, work / name)
            await self._npm_run(["ci", "--omit=dev", *_NPM_FLAGS], work, "OpenFn's runtime")

        installed = await self._once(target, "OpenFn's runtime", install, progress)
        self._hosts[source] = installed.path
        return installed

    async def adaptor(self, name: str, version: str, progress: Progress) -> Installed:
        """The installed package root of ``name@version`` (exact), installing it if needed."""
        _check_name(name)
        if not is_version(version):
            raise AdaptorError(
                f"{name}@{version}: only an exact version is installed", code="AdaptorError"
            )
        target = self.root / "adaptors" / f"{name.replace('/', '+')}@{version}"
        spec = f"{name}@{version}"

        async def install(work: Path) -> None:
            (work / "package.json").write_text('{"private": true}\n')
            await self._npm_run(["install", "--no-package-lock", *_NPM_FLAGS, spec], work, spec)

        installed = await self._once(target, spec, install, progress)
        return Installed(installed.path / "node_modules" / name, installed.seconds)

    async def resolve(self, name: str, wanted: str | None, progress: Progress) -> str:
        """The exact version npm's registry gives for ``wanted`` (a tag, a range, or None for
        ``latest``) today; an exact version is returned as it is, without asking. Anything
        else npm would also take for a spec (a path on this host, a git repository, a URL) is
        refused before npm sees it: npm runs here, outside the sandbox."""
        _check_name(name)
        if wanted is not None and is_version(wanted):
            return wanted
        if wanted is not None and kind_of(wanted) not in (Wanted.TAG, Wanted.RANGE):
            raise AdaptorError(f"{name}@{wanted}: not a version, an npm range or a dist-tag")
        spec = f"{name}@{wanted or 'latest'}"
        progress(f"Looking up the version of {spec}")
        output = await self._npm_run(["view", spec, "version", "--json"], self.root, spec)
        try:
            found = orjson.loads(output) if output.strip() else None
        except orjson.JSONDecodeError:
            found = None
        versions = found if isinstance(found, list) else [found] if found else []
        exact = [v for v in versions if isinstance(v, str) and is_version(v)]
        if not exact:
            raise AdaptorError(f"{spec}: no version of it is in the npm registry")
        return exact[-1]  # npm lists a range's versions in ascending order

    # -- internals ---------------------------------------------------------------------------

    async def _once(
        self,
        target: Path,
        what: str,
        install: Callable[[Path], Awaitable[None]],
        progress: Progress,
    ) -> Installed:
        if target.is_dir():
            return Installed(target)
        lock = self._locks.setdefault(target, asyncio.Lock())
        async with lock, tools.file_lock(target.with_name(target.name + ".lock")):
            if target.is_dir():  # another run, or another worker, installed it meanwhile
                return Installed(target)
            progress(f"Installing {what}")
            started = time.monotonic()
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            try:
                work.chmod(0o755)
                await install(work)
                work.rename(target)
            finally:
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)
            seconds = time.monotonic() - started
            progress(f"Installed {what} in {seconds:.1f}s")
            return Installed(target, seconds)

    async def _npm_run(self, arguments: list[str], cwd: Path, what: str) -> str:
        """npm's standard output; AdaptorError with npm's own one-line reason if it fails."""
        finished = await tools.run(
            [self._npm, *arguments],
            cwd=cwd,
            what=what,
            tool="npm",
            reason=_reason,
            env=tools.environment(
                {"NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
            ),
        )
        return finished.stdout


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or len(name) > 214:
        raise AdaptorError(f"{name!r} is not the name of an npm package")


def _reason(stderr: str) -> str:
    """npm's first error line without its prefix (``npm error code E404`` is less telling than
    the line after it, so the code line is skipped when another follows)."""
    lines = [
        line.removeprefix("npm error").removeprefix("npm ERR!").strip()
        for line in stderr.splitlines()
        if line.startswith(("npm error", "npm ERR!"))
    ]
    lines = [line for line in lines if line and not line.startswith("A complete log")]
    telling = [line for line in lines if not line.startswith("code ")]
    return (telling or lines or [stderr.strip() or "no reason given"])[0]
