"""The documentation site on this machine: where its sources are, building it once per
version of them, and serving it on loopback.

The sources are ``mkdocs.yml`` and ``docs/``: at the root of a checkout, or packaged inside
Fulmen's wheel (``fulmen/_docs/``, the same layout). The site is built by MkDocs in a child
process (``python -m mkdocs build``), so Fulmen imports nothing of MkDocs and a plain
``pip install fulmen`` without the ``docs`` extra still runs every other command. A build goes
to ``<cache>/<digest>/``, where the digest covers the sources, Fulmen's own modules (the CLI
and REST API references are written from them) and the MkDocs and theme versions: the same
sources are built once, and a change to any of them builds anew.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Mapping
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import fulmen
from fulmen.errors import ConfigError
from fulmen.listen import bind

__all__ = [
    "INSTALL_HINT",
    "build",
    "clear",
    "find_sources",
    "is_built",
    "missing_tools",
    "server",
    "target",
]

#: The distributions a build needs, by the module that shows each is installed.
TOOLS: Final = {"mkdocs": "mkdocs", "material": "mkdocs-material"}
INSTALL_HINT: Final = "pip install 'fulmen[docs]'"
_PACKAGE: Final = Path(fulmen.__file__).resolve().parent


def missing_tools() -> list[str]:
    """The distributions of :data:`TOOLS` that are not installed."""
    return [name for module, name in TOOLS.items() if importlib.util.find_spec(module) is None]


def find_sources() -> Path | None:
    """The ``mkdocs.yml`` of this Fulmen: its checkout's, else the one packaged with it."""
    for config in (_PACKAGE.parents[1] / "mkdocs.yml", _PACKAGE / "_docs" / "mkdocs.yml"):
        if config.is_file() and (config.parent / "docs").is_dir():
            return config
    return None


def digest(config: Path) -> str:
    """What a build depends on, hashed: the sources, Fulmen's modules, the tools' versions."""
    hashed = hashlib.sha256()
    files = [config, *sorted((config.parent / "docs").rglob("*")), *sorted(_PACKAGE.rglob("*.py"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            hashed.update(str(path.relative_to(path.anchor)).encode() + b"\0")
            hashed.update(path.read_bytes() + b"\0")
    for name in TOOLS.values():
        hashed.update(f"{name}=={importlib.metadata.version(name)}\0".encode())
    return hashed.hexdigest()[:16]


def target(config: Path, cache: Path) -> Path:
    """Where the site of ``config``'s sources as they are now is built, under ``cache``."""
    return cache / digest(config)


def is_built(site: Path) -> bool:
    return (site / "index.html").is_file()


def build(config: Path, target: Path, environ: Mapping[str, str]) -> None:
    """Build ``config``'s site into ``target``; older builds beside it are removed once it is
    in place.

    Raises:
        ConfigError: ``build_failed``, with MkDocs' last line.
    """
    cache = target.parent
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config), "-d", str(partial)]
    # Material's notice about its successor, printed by every build, says nothing of this one.
    env = {**environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0 or not (partial / "index.html").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise ConfigError(f"the docs did not build: {reason}", code="build_failed")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    for old in cache.iterdir():
        if old != target and old.is_dir() and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)


def clear(cache: Path) -> None:
    """Remove every build in ``cache``."""
    shutil.rmtree(cache, ignore_errors=True)


class _Quiet(SimpleHTTPRequestHandler):
    """Serves the site's files without a line per request on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def server(site: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server of ``site``'s files on 127.0.0.1:``port`` (0: any free port), bound but
    not yet serving.

    Raises:
        ConfigError: the port is in use or cannot be bound, naming ``--port``.
    """
    sock = bind("127.0.0.1", port, flag="--port")
    sock.setblocking(True)
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler, bind_and_activate=False)
    httpd.socket.close()
    httpd.socket = sock
    httpd.server_address = sock.getsockname()[:2]
    return httpd
