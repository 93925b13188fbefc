"""The worker's Python environments: each distinct set of pinned packages that a run's Python
jobs need, installed once with uv, that runs read and never write.

Layout under the root (``WORKER_REPO_DIR``)::

    python/<key>/site/               the packages (``uv pip install --target``), bytecode
                                     compiled, for the worker's own interpreter
    python/<key>/environment.json    the pins, every distribution installed with its version
                                     and top-level modules, the size and when it was made
    python/<key>.lock                ``flock``: held exclusively to install or remove the
                                     environment, shared by each run using it; its time of
                                     last modification is when a run last used it

``<key>`` is a digest of the pins, the interpreter and the index
(``python_requirements.environment_key``): the same pins are one environment, whichever
workflows pin them.

*Why uv.* It resolves and installs in one static binary, from wheels without running any code
of theirs, in a fraction of pip's time; it is on PyPI (a dependency like any other), reads the
operator's own index settings (``uv.toml``, ``UV_INDEX_URL``, ``UV_OFFLINE``), and the
coordinator uses the same binary to resolve pins when a workflow is saved, so both ends agree
on what a version means.

*Safety.* uv runs here as the worker, outside the sandbox, so only wheels are accepted
(``--only-binary :all:``): a source distribution would run its build script here. A wheel's
``.pth`` files are never processed (the child puts ``site`` on ``sys.path`` itself rather than
through ``site.addsitedir``). The ``python`` folder can be traversed but not listed by runs.

*Bounded.* After each install, and with ``fulmen adaptors prune``, environments unused for
longer than the age limit go, then the least recently used until the total is under the size
limit; one that a run holds is never removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import Distribution
from pathlib import Path
from typing import Any, Final

import orjson
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fulmen.errors import AdaptorError
from fulmen.packages import tools
from fulmen.packages.tools import Progress
from fulmen.python_requirements import environment_key

__all__ = ["CacheLimits", "Environment", "IndexUnreachable", "PythonRepo", "UvMissing", "find_uv"]

log = logging.getLogger(__name__)

#: The group a distribution names its adaptor module in, when its top-level modules are not
#: enough to tell (as ``fulmen.runtime.adaptors`` reads for installed ones).
ENTRY_POINT_GROUP: Final = "fulmen.adaptors"
#: How long resolving a set of requirements may take.
RESOLVE_TIMEOUT_S: Final = 60.0
_ONLY_WHEELS: Final = ("--only-binary", ":all:")
_UV_ENV: Final = {"NO_COLOR": "1", "UV_NO_PROGRESS": "1"}


class IndexUnreachable(AdaptorError):
    """uv could not talk to the package index (after its own retries), or not in time: the
    operator's to fix, not the job's. Its message has uv's reason."""


class UvMissing(AdaptorError):
    """uv is not installed, or could not be started."""


#: What uv says when it could not talk to the index (its own words), and ours for a timeout.
_UNREACHABLE: Final = (
    "Failed to fetch",
    "error sending request",
    "Request failed after",
    "timed out",
    "dns error",
    "did not finish within",
)


def _classified(error: AdaptorError) -> AdaptorError:
    """``error`` as the kind of failure it is (same message)."""
    said = error.output if isinstance(error, tools.InstallerFailed) else error.message
    if any(marker in said for marker in _UNREACHABLE):
        return IndexUnreachable(error.message)
    if "could not be started" in error.message:
        return UvMissing(error.message)
    return error


def find_uv() -> str:
    """The uv binary installed with Fulmen (the ``uv`` package), else one on ``PATH``."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise UvMissing("uv is not installed (pip install uv)") from None
        return found


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """How much the environments may take: ``max_bytes`` in all, none unused for longer
    than ``max_age_s``."""

    max_bytes: int = 10 * 1024**3
    max_age_s: float = 30 * 86_400.0


@dataclass(frozen=True, slots=True)
class Environment:
    """One installed environment."""

    key: str
    path: Path
    pins: tuple[str, ...]
    #: Every distribution in it (canonical name) and its version.
    installed: Mapping[str, str]
    #: Each distribution's top-level modules (canonical name: modules).
    modules: Mapping[str, tuple[str, ...]]
    #: Distributions that name their adaptor module (``fulmen.adaptors`` entry point).
    adaptors: Mapping[str, str]
    size: int
    created: float
    #: When a run last used it (for ``list`` and ``prune``).
    used: float = 0.0
    #: How long installing it took, for the run that did (0 when it was ready).
    seconds: float = 0.0

    @property
    def site(self) -> Path:
        return self.path / "site"

    def described(self) -> str:
        """``pyyaml 6.0.2, six 1.16.0``: what is in it, for people."""
        return ", ".join(f"{name} {version}" for name, version in sorted(self.installed.items()))

    def payload(self) -> dict[str, Any]:
        """What the run's child needs to import from it (``fulmen.runtime.pyenv``)."""
        return {
            "site": str(self.site),
            "pinned": sorted({_pin_name(pin) for pin in self.pins}),
            "installed": dict(self.installed),
            "modules": {k: list(v) for k, v in self.modules.items()},
            "adaptors": dict(self.adaptors),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "pins": list(self.pins),
            "installed": dict(self.installed),
            "modules": {k: list(v) for k, v in self.modules.items()},
            "adaptors": dict(self.adaptors),
            "size": self.size,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, path: Path, doc: Mapping[str, Any], used: float) -> Environment:
        return cls(
            key=str(doc["key"]),
            path=path,
            pins=tuple(doc["pins"]),
            installed=dict(doc["installed"]),
            modules={k: tuple(v) for k, v in doc["modules"].items()},
            adaptors=dict(doc.get("adaptors", {})),
            size=int(doc["size"]),
            created=float(doc["created"]),
            used=used,
        )


@dataclass
class PythonRepo:
    """The environments under one root; safe to share between the runs of a worker, and
    between workers on one host (file locks)."""

    root: Path
    #: The package index (``--default-index``); None: uv's own settings, else PyPI.
    index: str | None = None
    limits: CacheLimits = field(default_factory=CacheLimits)
    uv: str = field(default_factory=find_uv)
    #: The interpreter the environments are for: the worker's own, which its children run.
    python: str = sys.executable
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    _known: dict[str, Environment] = field(default_factory=dict, repr=False)

    @property
    def base(self) -> Path:
        return self.root / "python"

    def prepare(self) -> None:
        """Make the root: readable by runs (0755), but its environments cannot be listed by
        them (0711): a run reaches the one it is given."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.base.mkdir(exist_ok=True)
        self.base.chmod(0o711)

    # -- resolving ---------------------------------------------------------------------------

    async def resolve(
        self, requirements: Sequence[Requirement], progress: Progress | None = None
    ) -> dict[str, str]:
        """The exact version the index offers now for each of ``requirements`` (by canonical
        name; requirements of one package are met together), as uv would install them.

        Raises:
            AdaptorError: a package or version the index does not have (uv's one line);
                IndexUnreachable, UvMissing: the operator's to fix.
        """
        if not requirements:
            return {}
        texts = [str(r) for r in requirements]
        if progress is not None:
            progress(f"Looking up the versions of {', '.join(texts)}")
        self.base.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=self.base, prefix=".wanted.", suffix=".txt"
        ) as wanted:
            wanted.write("\n".join(texts) + "\n")
            wanted.flush()
            finished = await self._uv(
                [
                    "compile",
                    "--no-deps",
                    "--no-header",
                    "--no-annotate",
                    "--quiet",
                    *_ONLY_WHEELS,
                    *self._common_flags(),
                    wanted.name,
                ],
                what=", ".join(texts),
                timeout_s=RESOLVE_TIMEOUT_S,
            )
        versions: dict[str, str] = {}
        for line in finished.stdout.splitlines():
            text = line.split(";")[0].split("#")[0].strip()
            if "==" in text:
                name, _, version = text.partition("==")
                versions[canonicalize_name(name.split("[")[0])] = version.strip()
        missing = [r.name for r in requirements if canonicalize_name(r.name) not in versions]
        if missing:
            raise AdaptorError(f"{', '.join(missing)}: uv gave no version for it")
        return versions

    # -- installing --------------------------------------------------------------------------

    def ready(self, pins: Sequence[str]) -> Environment | None:
        """The environment of ``pins`` if it is installed (no lock, no install)."""
        key = environment_key(pins, self.index)
        known = self._known.get(key)
        if known is not None and known.path.is_dir():
            return known
        found = self._read(self.base / key)
        if found is not None:
            self._known[key] = found
        return found

    async def environment(self, pins: Sequence[str], progress: Progress) -> Environment:
        """The environment of ``pins`` (exact versions: ``python_requirements.pinned``),
        installing it first if needed; only one install of it runs at a time on this host.

        Raises:
            AdaptorError: uv could not install it (its one-line reason; its whole output was
                given to ``progress``).
        """
        ready = self.ready(pins)
        if ready is not None:
            return ready
        key = environment_key(pins, self.index)
        target = self.base / key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock, tools.file_lock(self._lock_path(key)):
            ready = self.ready(pins)  # another run, or another worker, installed it meanwhile
            if ready is not None:
                return ready
            progress(f"Installing Python packages: {', '.join(pins)}")
            started = time.monotonic()
            work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.base))
            try:
                work.chmod(0o755)
                await self._uv(
                    [
                        "install",
                        "--target",
                        str(work / "site"),
                        "--compile-bytecode",
                        "--link-mode",
                        "copy",
                        *_ONLY_WHEELS,
                        *self._common_flags(),
                        *pins,
                    ],
                    what=", ".join(pins),
                    output=_without_paths(progress),
                )
                described = _describe(key, work, tuple(pins))
                (work / "environment.json").write_bytes(orjson.dumps(described.to_json()))
                _readable(work)
                work.rename(target)
                os.utime(self._lock_path(key))  # used from now: not the first to be pruned
            finally:
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)
            seconds = time.monotonic() - started
            progress(f"Installed Python packages in {seconds:.1f}s")
        installed = self._read(target)
        if installed is None:
            raise AdaptorError(f"{', '.join(pins)}: the environment vanished after installing")
        self._known[key] = installed
        self._prune_soon()
        return replace(installed, seconds=seconds)

    @contextlib.asynccontextmanager
    async def using(self, environment: Environment) -> AsyncIterator[None]:
        """Hold ``environment`` for a run: ``prune`` leaves it alone meanwhile. Marks it used.
        The lock is taken at once when free (every run's case); when a prune or an install
        elsewhere holds it, the wait is off the event loop.

        Raises:
            AdaptorError: it was removed meanwhile (the caller installs it again).
        """
        fd = os.open(self._lock_path(environment.key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
            if not environment.site.is_dir():
                self._known.pop(environment.key, None)
                raise AdaptorError("the environment was removed while the run started")
            os.utime(fd)
            yield
        finally:
            os.close(fd)

    # -- the cache ---------------------------------------------------------------------------

    def environments(self) -> list[Environment]:
        """Every installed environment, most recently used first."""
        found = []
        if self.base.is_dir():
            for entry in self.base.iterdir():
                if entry.is_dir() and not entry.name.startswith("."):
                    environment = self._read(entry)
                    if environment is not None:
                        found.append(environment)
        return sorted(found, key=lambda e: e.used, reverse=True)

    def prune(
        self, limits: CacheLimits | None = None, now: float | None = None
    ) -> list[Environment]:
        """Remove what is over ``limits`` (this repository's by default): environments unused
        for longer than the age limit, then the least recently used until the rest fit.
        Returns those removed; one in use is skipped. Half-made installs are removed too."""
        limits = limits or self.limits
        now = time.time() if now is None else now
        removed: list[Environment] = []
        kept = self.environments()
        total = sum(e.size for e in kept)
        for environment in sorted(kept, key=lambda e: e.used):
            too_old = now - environment.used > limits.max_age_s
            if (too_old or total > limits.max_bytes) and self._remove(environment):
                removed.append(environment)
                total -= environment.size
        for entry in self.base.glob(".*.*"):
            if entry.is_dir() and now - entry.stat().st_mtime > tools.INSTALL_TIMEOUT_S * 2:
                shutil.rmtree(entry, ignore_errors=True)
        return removed

    # -- internals ---------------------------------------------------------------------------

    async def _uv(
        self,
        arguments: list[str],
        *,
        what: str,
        timeout_s: float = tools.INSTALL_TIMEOUT_S,
        output: Progress | None = None,
    ) -> tools.Finished:
        """``uv pip <arguments>``; its failure as the kind it is (:func:`_classified`)."""
        try:
            return await tools.run(
                [self.uv, "pip", *arguments],
                cwd=self.base,
                what=what,
                tool="uv",
                reason=_reason,
                env=tools.environment(_UV_ENV),
                timeout_s=timeout_s,
                output=output,
            )
        except AdaptorError as error:
            raise _classified(error) from None

    def _common_flags(self) -> list[str]:
        flags = ["--python", self.python]
        if self.index is not None:
            flags += ["--default-index", self.index]
        return flags

    def _lock_path(self, key: str) -> Path:
        return self.base / f"{key}.lock"

    def _read(self, path: Path) -> Environment | None:
        try:
            doc = orjson.loads((path / "environment.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        try:
            used = self._lock_path(path.name).stat().st_mtime
        except OSError:
            used = float(doc.get("created", 0))
        try:
            return Environment.from_json(path, doc, used)
        except (KeyError, TypeError, ValueError):
            return None

    def _remove(self, environment: Environment) -> bool:
        """Remove ``environment`` unless a run holds it. Under the lock it is only renamed
        away, so that a run waiting for the lock (``using``, on the worker's event loop)
        waits for a rename, not for its files to be deleted."""
        doomed = environment.path.with_name(f".{environment.key}.removing")
        fd = os.open(self._lock_path(environment.key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a run holds it, or it is being installed
            self._known.pop(environment.key, None)
            environment.path.rename(doomed)
        except FileNotFoundError:
            return False  # removed meanwhile, by another worker's prune
        finally:
            os.close(fd)
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def _prune_soon(self) -> None:
        """Prune after an install, in a thread: removing files takes a while."""
        try:
            pending = asyncio.get_running_loop().run_in_executor(None, self.prune)
        except RuntimeError:
            return  # no event loop (a command's own install): ``fulmen adaptors prune``
        pending.add_done_callback(_log_failure)


def _log_failure(pending: asyncio.Future[list[Environment]]) -> None:
    error = pending.exception()
    if error is not None:
        log.warning("Python environments could not be pruned: %s", error)


def _pin_name(pin: str) -> str:
    """``pyyaml[x]==6.0.2; marker`` -> ``pyyaml`` (pins are canonical already)."""
    return pin.split("==")[0].split("[")[0].strip()


def _describe(key: str, work: Path, pins: tuple[str, ...]) -> Environment:
    """What ``uv`` put in ``work/site``: distributions, versions, top-level modules."""
    site = work / "site"
    installed: dict[str, str] = {}
    modules: dict[str, tuple[str, ...]] = {}
    adaptors: dict[str, str] = {}
    for info in sorted(site.glob("*.dist-info")):
        distribution = Distribution.at(info)
        name = canonicalize_name(distribution.metadata["Name"])
        installed[name] = distribution.version
        modules[name] = _top_level(distribution)
        for entry in distribution.entry_points.select(group=ENTRY_POINT_GROUP):
            adaptors[name] = entry.value
    size = sum(
        (Path(folder) / name).stat().st_size for folder, _, names in os.walk(site) for name in names
    )
    return Environment(key, work, pins, installed, modules, adaptors, size, time.time())


def _top_level(distribution: Distribution) -> tuple[str, ...]:
    """The importable top-level names a distribution installs (``top_level.txt`` is not in
    every wheel; the files it installed always are)."""
    names: set[str] = set()
    for file in distribution.files or ():
        parts = file.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
            continue
        head = parts[0]
        if len(parts) > 1:
            if head != "__pycache__" and head.isidentifier():
                names.add(head)
        elif head.endswith(".py"):
            names.add(head[:-3])
        elif ".cpython-" in head or head.endswith((".so", ".pyd", ".abi3.so")):
            names.add(head.split(".")[0])
    return tuple(sorted(n for n in names if n.isidentifier()))


def _readable(folder: Path) -> None:
    """Everything in ``folder`` readable by runs (another user, in the sandbox), and no more."""
    for path, _, files in os.walk(folder):
        os.chmod(path, 0o755)
        for name in files:
            target = os.path.join(path, name)
            mode = os.lstat(target).st_mode
            if stat.S_ISREG(mode):
                os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def _without_paths(progress: Progress) -> Progress:
    """``progress`` without uv's line naming the worker's interpreter (a path of the host's,
    which is none of a run's business)."""

    def say(line: str) -> None:
        if not line.startswith("Using ") or " interpreter at: " not in line:
            progress(line)

    return say


def _reason(stderr: str) -> str:
    """uv's reason in one line: the first and last of its ``cause:`` lines (what failed, and
    why at the bottom), else its ``error:`` line.

    uv wraps its messages to the terminal's width (``COLUMNS``, which pytest-xdist and some
    shells set): an indented line under a ``cause:`` is the rest of that cause, not a line of
    its own. Read line by line, a wrapped cause lost the words that say what it means (the
    coordinator then took an unknown version for an unreadable requirement)."""
    causes: list[str] = []
    errors: list[str] = []
    others: list[str] = []
    within = False
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            within = False
            continue
        prefix = next((p for p in ("cause:", "╰─▶") if line.startswith(p)), None)
        if prefix is not None:
            causes.append(line.removeprefix(prefix).strip())
            within = True
        elif within and raw[:1].isspace() and not line.startswith(("hint:", "help:")):
            causes[-1] = f"{causes[-1]} {line}"
        else:
            within = False
            if line.startswith("error:"):
                errors.append(line.removeprefix("error:").strip())
            others.append(line)
    if causes:
        return causes[0] if len(causes) == 1 else f"{causes[0]} ({causes[-1]})"
    return (errors or others or ["no reason given"])[0]
