"""The ``http`` adaptor against a real HTTP server on the loopback interface."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fulmen.adaptors import http
from fulmen.adaptors.operation import run_operation

if TYPE_CHECKING:
    from conftest import Events, RunFn


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Server:
    url: str
    requests: list[Seen] = field(default_factory=list)
    #: ``/slow`` answers once this is set (the test sets it when its client gave up).
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def last(self) -> Seen:
        assert self.requests, "the server saw no request"
        return self.requests[-1]


def make_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            seen = Seen(
                self.command,
                split.path,
                parse_qs(split.query),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            server.requests.append(seen)
            if split.path == "/missing":
                self._reply(404, "application/json", b'{"error": "not here"}')
            elif split.path == "/text":
                self._reply(200, "text/plain", b"just text")
            elif split.path == "/bad-json":
                self._reply(200, "application/json", b"{not json")
            elif split.path == "/empty":
                self._reply(204, None, b"")
            elif split.path == "/slow":
                server.release.wait(10)
                with contextlib.suppress(OSError):  # the client gave up and went
                    self._reply(204, None, b"")
            else:
                echo = {"method": seen.method, "path": seen.path, "body": seen.body}
                self._reply(200, "application/json; charset=utf-8", json.dumps(echo).encode())

        def _reply(self, status: int, content_type: str | None, payload: bytes) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Server", "test")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the run captures stderr: keep the server out of the job's logs

    return Handler


@pytest.fixture(scope="module")
def http_server() -> Iterator[Server]:
    """One loopback server for the module (starting and stopping one per test is slow)."""
    state = Server(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(http_server: Server) -> Server:
    http_server.requests.clear()
    return http_server


PASSWORD = "very-secret-password"
TOKEN = "bearer-token-0123456789"


def http_job(
    body: str,
    credential: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    job: dict[str, Any] = {"id": "call", "adaptor": "http", "body": body}
    if credential is not None:
        job["credential_id"] = "cred"
    return {"jobs": [job], "options": options}


def call(
    run: RunFn, server: Server, body: str, input: dict[str, Any] | None = None, **credential: Any
) -> Events:
    """Run ``body`` with ``credential``, and the server's URL as the input's base_url.

    The base URL is given in the input's configuration, not in the credential, so that the
    scrubber (which masks every value of a credential) leaves it readable in messages.
    """
    configuration = {"base_url": server.url}
    return run(
        http_job(body, credential={}),
        input={**(input or {}), "configuration": configuration},
        credentials={"cred": credential},
    )


@pytest.mark.parametrize(
    ("body", "method", "sent"),
    [
        ("get('/things')", "GET", None),
        ("post('/things', {'name': 'new', 'n': [1, 2]})", "POST", {"name": "new", "n": [1, 2]}),
        ("put('/things', {'name': 'all'})", "PUT", {"name": "all"}),
        ("patch('/things', body={'name': 'part'})", "PATCH", {"name": "part"}),
        ("delete('/things')", "DELETE", None),
        ("request('post', 'things', body=[1])", "POST", [1]),
    ],
)
def test_each_method_sends_json_and_reads_json(
    run: RunFn, server: Server, body: str, method: str, sent: Any
) -> None:
    events = call(run, server, body)

    assert events.complete.reason == "success", events.complete
    assert (server.last.method, server.last.path, server.last.body) == (method, "/things", sent)
    if sent is not None:
        assert server.last.headers["content-type"] == "application/json"
    assert events.final_state["data"] == {"method": method, "path": "/things", "body": sent}


def test_base_url_with_a_path_and_trailing_slash(run: RunFn, server: Server) -> None:
    run(
        http_job("get('items')", credential={}),
        credentials={"cred": {"baseUrl": server.url + "/api/v1/"}},
    )
    assert server.last.path == "/api/v1/items"


def test_an_absolute_url_needs_no_base_url(run: RunFn, server: Server) -> None:
    events = run(http_job(f"get('{server.url}/abs')"))
    assert events.complete.reason == "success"
    assert server.last.path == "/abs"


def test_previous_data_is_pushed_onto_references(run: RunFn, server: Server) -> None:
    events = call(
        run,
        server,
        "get('/one')\nget('/two')",
        input={"data": {"before": True}, "references": ["older"]},
    )
    state = events.final_state
    assert state["data"]["path"] == "/two"
    assert state["references"] == [
        "older",
        {"before": True},
        {"method": "GET", "path": "/one", "body": None},
    ]


def test_lazy_arguments_are_expanded_against_state(run: RunFn, server: Server) -> None:
    body = (
        "post(lambda s: '/users/' + str(s['data']['id']), "
        "body=fields(field('name', data_value('name'))), params={'v': data_value('id')})"
    )
    call(run, server, body, input={"data": {"id": 7, "name": "Ada"}})
    assert (server.last.path, server.last.body, server.last.query) == (
        "/users/7",
        {"name": "Ada"},
        {"v": ["7"]},
    )


def test_basic_auth_from_username_and_password(run: RunFn, server: Server) -> None:
    call(run, server, "get('/private')", username="svc-user", password=PASSWORD)
    expected = base64.b64encode(f"svc-user:{PASSWORD}".encode()).decode()
    assert server.last.headers["authorization"] == f"Basic {expected}"


def test_bearer_auth_from_an_access_token(run: RunFn, server: Server) -> None:
    call(run, server, "get('/private')", access_token=TOKEN)
    assert server.last.headers["authorization"] == f"Bearer {TOKEN}"


def test_no_credential_sends_no_authorization(run: RunFn, server: Server) -> None:
    call(run, server, "get('/public')")
    assert "authorization" not in server.last.headers


def test_configuration_and_request_headers_are_sent(run: RunFn, server: Server) -> None:
    call(
        run,
        server,
        "get('/h', headers={'X-Request': 'r', 'X-Both': 'from request'})",
        headers={"X-Config": "c", "X-Both": "from config"},
    )
    headers = server.last.headers
    assert (headers["x-config"], headers["x-request"], headers["x-both"]) == (
        "c",
        "r",
        "from request",
    )


def test_params_are_sent_in_the_query(run: RunFn, server: Server) -> None:
    call(run, server, "get('/search', params={'q': 'a b&c', 'page': 2})")
    assert server.last.query == {"q": ["a b&c"], "page": ["2"]}


def test_a_non_json_response_is_text_and_an_empty_one_is_none(run: RunFn, server: Server) -> None:
    assert call(run, server, "get('/text')").final_state["data"] == "just text"
    assert call(run, server, "get('/bad-json')").final_state["data"] == "{not json"
    assert call(run, server, "delete('/empty')").final_state["data"] is None


def test_an_error_status_fails_the_step_with_http_error(run: RunFn, server: Server) -> None:
    events = call(run, server, "get('/missing')\nfn(lambda s: {**s, 'data': 'never'})")

    step = events.step("call")
    message = f"GET {server.url}/missing returned 404 Not Found"
    assert (step.reason, step.error_type, step.error_message) == ("fail", "HTTPError", message)
    assert events.final_state["errors"] == {"call": {"name": "HTTPError", "message": message}}
    assert events.complete.reason == "fail"


def test_http_error_carries_the_status_and_the_body(server: Server) -> None:
    operation = http.delete("/missing")
    with pytest.raises(http.HTTPError) as caught:
        asyncio.run(run_operation(operation, {"configuration": {"base_url": server.url}}))
    assert str(caught.value) == f"DELETE {server.url}/missing returned 404 Not Found"
    assert (caught.value.status, caught.value.body) == (404, {"error": "not here"})


def test_an_unreachable_server_fails_the_step(run: RunFn) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = run(http_job(f"get('http://127.0.0.1:{port}/x')"))
    step = events.step("call")
    assert (step.reason, step.error_type) == ("fail", "RequestError")
    assert step.error_message == (  # issue 21: the URL is named
        f"GET http://127.0.0.1:{port}/x: could not connect (All connection attempts failed)"
    )
    assert events.complete.reason == "fail"


def test_a_slow_server_is_named_with_the_timeout(server: Server) -> None:
    operation = http.get("/slow", timeout=0.2)
    try:
        with pytest.raises(http.RequestError) as caught:
            asyncio.run(run_operation(operation, {"configuration": {"base_url": server.url}}))
    finally:
        server.release.set()
    assert str(caught.value).startswith(f"GET {server.url}/slow: no answer within 0.2 s (")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ada:s3cret@example.org:8443/x?q=1", "https://example.org:8443/x?q=1"),
        ("https://example.org/x", "https://example.org/x"),
    ],
)
def test_a_url_in_a_message_never_shows_a_password(url: str, shown: str) -> None:
    assert http.shown(url) == shown


def test_errors_false_keeps_the_error_response(run: RunFn, server: Server) -> None:
    events = call(run, server, "get('/missing', errors=False)")
    assert events.complete.reason == "success"
    assert events.final_state["data"] == {"error": "not here"}


def test_a_relative_url_without_base_url_is_a_clear_failure(run: RunFn, server: Server) -> None:
    events = run(http_job("get('/things')"))
    step = events.step("call")
    assert (step.reason, step.error_type) == ("fail", "ValueError")
    assert step.error_message == (
        "'/things' is a relative URL, but the credential has no base_url; "
        "give an absolute URL or set base_url in the credential"
    )
    assert server.requests == []


def test_the_response_is_available_to_the_job_but_not_in_the_output(
    run: RunFn, server: Server
) -> None:
    body = """
get('/things')

@fn
def keep_status(state):
    response = state["response"]
    state["data"] = {
        "status": response["status"],
        "server": response["headers"]["x-server"],
        "url": response["url"],
        "method": response["method"],
    }
    return state
"""
    events = call(run, server, body)
    output = json.loads(events.step("call").output)
    assert "response" not in output
    assert "configuration" not in output
    assert output["data"] == {
        "status": 200,
        "server": "test",
        "url": f"{server.url}/things",
        "method": "GET",
    }


def test_each_request_is_logged_once_by_the_adaptor_and_never_as_the_job(
    run: RunFn, server: Server
) -> None:
    events = run(
        http_job("get('/things')\npost('/missing', errors=False)", job_log_level="debug"),
        input={"configuration": {"base_url": server.url}},
    )
    assert events.messages("ADA") == [
        f"GET {server.url}/things -> 200",
        f"POST {server.url}/missing -> 404",
    ]
    assert events.logs("JOB") == []


def test_the_password_never_appears_in_any_log_or_output(run: RunFn, server: Server) -> None:
    # The server echoes nothing of the request's headers, so have the job do the worst it can:
    # print the configuration, log the auth header it would send, and copy both into state.
    body = """
import base64, logging

@fn
def leak(state):
    conf = state["configuration"]
    basic = base64.b64encode(f"{conf['username']}:{conf['password']}".encode()).decode()
    print("configuration:", conf)
    logging.debug("Authorization: Basic %s", basic)
    state["data"] = {"conf": conf, "basic": basic}
    return state

get('/private', params={'key': lambda s: s['configuration']['password']})
post('/echo', body=lambda s: {'password': s['configuration']['password']})
"""
    events = run(
        http_job(body, credential={}, job_log_level="debug"),
        credentials={
            "cred": {"base_url": server.url, "username": "svc-user", "password": PASSWORD}
        },
    )
    assert events.complete.reason == "success", events.complete
    assert server.last.body == {"password": PASSWORD}  # it was really sent...
    text = events.everything()
    basic = base64.b64encode(f"svc-user:{PASSWORD}".encode()).decode()
    assert PASSWORD not in text  # ...and never came back out
    assert basic not in text
    assert events.final_state["data"] == {
        "method": "POST",
        "path": "/echo",
        "body": {"password": "***"},
    }
    assert any("configuration: {" in m and "'password': '***'" in m for m in events.messages("JOB"))
