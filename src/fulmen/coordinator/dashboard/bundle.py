"""The dashboard's code editor, CodeMirror 6, as one script the coordinator serves itself.

Its sources are ``codemirror/``: ``package.json`` and npm's ``package-lock.json`` (exact
versions and integrity hashes, no download URLs: npm's ``omit-lockfile-registry-resolved``, so
that the lock takes whatever registry npm is told to use), and ``editor.mjs``, the entry that
esbuild bundles with CodeMirror into ``editor.js``. Nothing from npm is kept in the repository,
and no browser fetches anything from elsewhere (the Content-Security-Policy would refuse it).

The coordinator builds it when it starts, in the background, once per version of those
sources: ``<cache>/<digest>/editor.js``, the digest of the three files, under
``FULMEN_DASHBOARD_CACHE_DIR`` (``~/.cache/fulmen/dashboard``). ``npm ci --ignore-scripts``
installs the lock into a temporary folder beside it (no package's install script runs on the
coordinator's host: esbuild finds its binary in its platform package without one), esbuild
writes the bundle, and only the bundle is renamed into place, so a folder there is complete. A
file lock makes coordinators on one host build it once; npm runs through fulmen.packages.tools
as the worker's installs do.

Until it is built, or when it cannot be (no Node.js or npm, no registry), the editor's pages
are plain forms with a ``<textarea>``: :attr:`EditorBundle.unavailable` says why, and the page
says it too.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Final

from fulmen.errors import FulmenError
from fulmen.packages import tools

__all__ = ["FILES", "SOURCE", "EditorBundle"]

log = logging.getLogger(__name__)

SOURCE: Final = Path(__file__).parent / "codemirror"
#: What the bundle is made of; its folder's name is their digest.
FILES: Final = ("package.json", "package-lock.json", "editor.mjs")
BUNDLE: Final = "editor.js"
_NPM_FLAGS: Final = ("--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline")


def digest(source: Path = SOURCE) -> str:
    """The sources' digest: a new version of any of them is a new bundle (and URL)."""
    hashed = hashlib.sha256()
    for name in FILES:
        hashed.update(name.encode() + b"\0" + (source / name).read_bytes() + b"\0")
    return hashed.hexdigest()[:16]


class EditorBundle:
    """The editor's script in one cache folder: built at most once, served once built."""

    def __init__(
        self, cache: Path, *, source: Path = SOURCE, npm: str = "npm", enabled: bool = True
    ) -> None:
        self.cache = cache
        self.source = source
        self.npm = npm
        self.digest = digest(source)
        #: Why there is no bundle (``None`` while it may yet come, or once it has).
        self.unavailable: str | None = None
        if not enabled and not self.ready:
            self.unavailable = "this coordinator does not build it (FULMEN_DASHBOARD_EDITOR_BUILD)"
        self._building = False

    @property
    def path(self) -> Path:
        return self.cache / self.digest / BUNDLE

    @property
    def ready(self) -> bool:
        return self.path.is_file()

    @property
    def url_path(self) -> str:
        """Where the dashboard serves it: the digest in the path, so it is cached forever."""
        return f"/editor/{self.digest}/{BUNDLE}"

    def status(self) -> str:
        """In words, for the editor page when the bundle is not there."""
        if self.ready:
            return "ready"
        if self.unavailable is not None:
            return f"The code editor is unavailable: {self.unavailable}."
        return "The code editor is still being built; reload the page in a minute."

    async def build(self) -> None:
        """Build the bundle unless it is there; never raises (the dashboard works without it:
        the reason is kept in :attr:`unavailable` and logged)."""
        if self.ready or self._building or self.unavailable is not None:
            return
        node, npm = shutil.which("node"), shutil.which(self.npm)
        if node is None or npm is None:
            self.unavailable = "Node.js and npm are not installed on the coordinator's host"
            log.warning("dashboard: %s; editing uses a plain text box", self.unavailable)
            return
        self._building = True
        try:
            await self._build(node, npm)
        except FulmenError as error:
            self.unavailable = error.message
            log.warning("dashboard: the code editor could not be built: %s", error.message)
        except OSError as error:
            self.unavailable = f"its folder could not be written ({error.strerror})"
            log.warning("dashboard: the code editor could not be built: %s", error)
        finally:
            self._building = False

    async def _build(self, node: str, npm: str) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        target = self.path.parent
        async with tools.file_lock(self.cache / f"{self.digest}.lock"):
            if self.ready:  # another coordinator on this host built it meanwhile
                return
            log.info("dashboard: building the code editor into %s", target)
            work = Path(tempfile.mkdtemp(prefix=f".{self.digest}.", dir=self.cache))
            try:
                for name in FILES:
                    shutil.copyfile(self.source / name, work / name)
                await self._run([npm, "ci", *_NPM_FLAGS], work, "npm")
                esbuild = work / "node_modules" / "esbuild" / "bin" / "esbuild"
                await self._run(
                    [
                        node,
                        str(esbuild),
                        "editor.mjs",
                        "--bundle",
                        "--minify",
                        "--format=iife",
                        "--target=es2020",
                        f"--outfile=out/{BUNDLE}",
                    ],
                    work,
                    "esbuild",
                )
                (work / "out").rename(target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            log.info("dashboard: the code editor is built")

    async def _run(self, argv: list[str], cwd: Path, tool: str) -> None:
        await tools.run(
            argv,
            cwd=cwd,
            what="the dashboard's code editor",
            tool=tool,
            reason=_last_line,
            env=tools.environment(
                {"NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
            ),
        )


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no reason given"])[0]
