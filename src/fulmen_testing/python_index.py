"""A small Python package index on loopback, for tests of Python jobs' packages (issue 16).

The package index is the edge of the outside world for a worker and a coordinator. This one
serves real wheels, built here (a wheel is a zip file with its metadata), through the simple
repository API (PEP 503) that uv and pip read: ``GET /simple/<name>/`` lists a package's
files, ``GET /files/<file>`` serves one. Any other package is 404. Every path asked for is
recorded, so a test can tell whether a second run went to the index again. It runs in a
thread (``http.server``), as ``fulmen_testing.npm_registry`` does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

__all__ = ["ADAPTOR", "PROBE", "Index", "Wheel", "probe_module", "python_index", "wheel"]


@dataclass(frozen=True)
class Wheel:
    filename: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel(
    name: str,
    version: str,
    files: Mapping[str, str],
    *,
    entry_points: str = "",
    requires: tuple[str, ...] = (),
) -> Wheel:
    """A pure-Python wheel of ``name`` at ``version`` holding ``files`` (path: source)."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {version}",
            *(f"Requires-Dist: {r}" for r in requires),
            "",
        ]
    )
    members = dict(files)
    members[f"{info}/METADATA"] = metadata
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: fulmen-testing\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        members[f"{info}/entry_points.txt"] = entry_points
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = "\n".join(record) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in members.items():
            archive.writestr(path, text)
    return Wheel(f"{stem}-py3-none-any.whl", buffer.getvalue())


def probe_module(version: str) -> str:
    """The module of ``fulmen-probe``: it says which version it is, and where it was imported
    from, so a job can show what it really got."""
    return (
        '__all__ = ["VERSION", "shout", "where"]\n'
        f'VERSION = "{version}"\n'
        "def shout(text):\n"
        '    return text.upper() + "!"\n'
        "def where():\n"
        "    return __file__\n"
    )


#: ``fulmen-probe``, a small library at two versions (module ``fulmen_probe``).
PROBE: Final = {
    version: wheel("fulmen-probe", version, {"fulmen_probe/__init__.py": probe_module(version)})
    for version in ("1.0.0", "2.0.0")
}
#: ``fulmen-adaptor-demo``, a third-party adaptor extending Fulmen's common adaptor.
ADAPTOR: Final = {
    "0.1.0": wheel(
        "fulmen-adaptor-demo",
        "0.1.0",
        {
            "fulmen_adaptor_demo/__init__.py": (
                "from fulmen.adaptors import common\n"
                "from fulmen.adaptors.common import *  # noqa: F403\n"
                '__all__ = [*common.__all__, "greet"]\n'
                "def greet(name):\n"
                '    return common.fn(lambda state: {**state, "greeting": f"hello {name}"})\n'
            )
        },
    )
}


@dataclass
class Index:
    """The running index: ``url`` is the simple API's root (``--default-index``)."""

    url: str
    #: Every path asked for, in order.
    requests: list[str] = field(default_factory=list)


@contextmanager
def python_index(packages: Mapping[str, Mapping[str, Wheel]] | None = None) -> Iterator[Index]:
    """Serve ``packages`` (name: version: wheel); by default ``fulmen-probe`` and
    ``fulmen-adaptor-demo``."""
    served = (
        packages
        if packages is not None
        else {"fulmen-probe": PROBE, "fulmen-adaptor-demo": ADAPTOR}
    )
    by_name = {_normalise(name): wheels for name, wheels in served.items()}
    files = {w.filename: w for wheels in served.values() for w in wheels.values()}
    index = Index("")

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.do_GET(head=True)

        def do_GET(self, head: bool = False) -> None:
            index.requests.append(self.path)
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "simple" and _normalise(parts[1]) in by_name:
                links = "".join(
                    f'<a href="/files/{w.filename}#sha256={w.sha256}">{w.filename}</a>\n'
                    for w in by_name[_normalise(parts[1])].values()
                )
                self._send(
                    head,
                    200,
                    "text/html",
                    f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode(),
                )
            elif len(parts) == 2 and parts[0] == "files" and parts[1] in files:
                self._send(head, 200, "application/octet-stream", files[parts[1]].content)
            else:
                self._send(head, 404, "text/plain", b"not found")

        def _send(self, head: bool, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    index.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
