"""A small npm registry on loopback, for tests of adaptor resolution (issue 15).

The npm registry is the edge of the outside world for a coordinator: tests never ask the real
one. This one serves the packuments it is given as registry.npmjs.org does (``GET /<name>``,
a scoped name's slash encoded as ``%2F`` or not), answers 404 for any other package, and
records every path it was asked for with its ``Accept`` header. It runs in a thread
(``http.server``, as tests/integration/test_adaptor_http.py's server does), so that both a
coordinator on the test's event loop and a CLI command in a worker thread can reach it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["COMMON", "HTTP", "FakeRegistry", "closed_url", "npm_registry", "packument"]


def packument(
    name: str,
    versions: Iterable[str],
    *,
    latest: str | None = None,
    deprecated: Iterable[str] = (),
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An abbreviated packument (what npm asks for) of ``name`` with ``versions``; ``latest``
    is the last version unless given."""
    listed = list(versions)
    old = set(deprecated)
    return {
        "name": name,
        "modified": "2026-01-01T00:00:00.000Z",
        "dist-tags": {"latest": latest or listed[-1], **(tags or {})},
        "versions": {
            version: {
                "name": name,
                "version": version,
                "dist": {"tarball": f"https://registry.example/{name}/-/{version}.tgz"},
                **({"deprecated": "use a newer version"} if version in old else {}),
            }
            for version in listed
        },
    }


#: Versions @openfn/language-common had on the registry when these tests were written.
COMMON = packument(
    "@openfn/language-common",
    ["1.15.2", "2.0.1", "2.1.1", "3.1.0", "3.2.1", "3.2.3", "3.3.1", "3.3.4", "4.0.0-rc.1"],
    latest="3.3.4",
    tags={"next": "4.0.0-rc.1"},
)
#: A made-up history of @openfn/language-http.
HTTP = packument("@openfn/language-http", ["5.0.4", "6.4.3", "6.5.1", "7.0.0"], latest="7.0.0")


@dataclass
class FakeRegistry:
    url: str
    packuments: dict[str, dict[str, Any]]
    #: ``(package, Accept header)`` of each request, in order.
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def asked(self) -> list[str]:
        """The packages asked for, in order."""
        return [package for package, _ in self.requests]


@contextmanager
def npm_registry(*packuments: dict[str, Any]) -> Iterator[FakeRegistry]:
    """A registry serving ``packuments`` (COMMON and HTTP when none are given)."""
    served = {doc["name"]: doc for doc in (packuments or (COMMON, HTTP))}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    registry = FakeRegistry(f"http://127.0.0.1:{httpd.server_address[1]}/", served)
    httpd.registry = registry  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def closed_url() -> str:
    """The URL of a loopback port nothing listens on: a registry that cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _handler(served: Mapping[str, dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            package = unquote(self.path.lstrip("/").split("?", 1)[0])
            registry: FakeRegistry = self.server.registry  # type: ignore[attr-defined]
            registry.requests.append((package, self.headers.get("Accept", "")))
            document = served.get(package)
            status = 200 if document is not None else 404
            body = json.dumps(document if document is not None else {"error": "Not found"})
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test reads ``requests`` instead

    return Handler
