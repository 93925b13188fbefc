"""Request body limits and what a bad request gets echoed (issue 13), tried as an attacker
would: raw HTTP/1.1 on a loopback socket to a served coordinator, without a token.

A declared ``Content-Length`` over a route's limit is answered 413 before one byte of the
body is sent, on every part (API, webhooks, dashboard, the rest), and before anything else
(a webhook's trigger lookup and authentication, the API's token check). A chunked body is
answered 413 once it passes the limit, and the connection is closed, so that the sender
cannot go on: it gets far less than its 200 MB in. An API request without a valid token is
401 before its body is read at all. A 422 shows excerpts, never the input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.coordinator.bodies import API_BYTES, DASHBOARD_BYTES
from fulmen.store import NewWebhookAuthMethod, RunFilter, SQLStore, WebhookAuthType
from fulmen_testing.coordinator import Seeded, Served, api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
DATACLIP_BYTES = 2 * MB  # MAX_DATACLIP_SIZE_MB=2 for these tests
HUGE = 200 * MB


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    store: SQLStore
    served: Served
    seeded: Seeded
    token: str

    @property
    def port(self) -> int:
        return int(self.served.base_url.rsplit(":", 1)[1])

    async def runs(self) -> int:
        return len((await self.store.list_runs(RunFilter(project_id=self.seeded.project_id))).items)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        token = await api_token(store)
        async with serve(store, max_dataclip_size_mb=DATACLIP_BYTES / MB) as served:
            yield Site(store, served, seeded, token)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Body bytes the server let us send before it answered and closed.
    sent: int

    def json(self) -> Any:
        return json.loads(self.body)


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    status, headers = _parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(status, headers, body, 0)


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = raw.decode().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def declared(site: Site, method: str, path: str, length: int, **headers: str) -> Answer:
    """Send only the head, announcing ``length`` bytes of JSON: the answer must come without
    the body."""
    async with connection(site.port) as (reader, writer):
        fields = {"Content-Type": "application/json", "Content-Length": str(length), **headers}
        writer.write(head(method, path, fields))
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await read_answer(reader)
            assert await reader.read() == b"", "the server kept the connection open"
        return answer


async def chunked(
    site: Site, path: str, total: int, kind: str = "application/json", **headers: str
) -> Answer:
    """Stream up to ``total`` bytes of type ``kind`` in chunks of 64 KiB, as a client with a
    stream would, until the server stops taking them; then read its answer."""
    fields = {"Content-Type": kind, "Transfer-Encoding": "chunked", **headers}
    return await asyncio.to_thread(_chunked, site.port, path, total, fields)


def _chunked(port: int, path: str, total: int, fields: dict[str, str]) -> Answer:
    chunk = b"1," * (32 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head("POST", path, fields))
        sent = 0
        with contextlib.suppress(ConnectionError):  # the server closed: what it should do
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        received = b""
        with contextlib.suppress(ConnectionError):  # Linux gives what came before the reset
            while data := sock.recv(65536):
                received += data
    raw_head, _, body = received.partition(b"\r\n\r\n")
    status, headers = _parse_head(raw_head)
    return Answer(status, headers, body, sent)


def assert_413(answer: Answer, limit: int) -> None:
    assert answer.status == 413, answer
    assert answer.headers["connection"] == "close"
    assert answer.json() == {
        "error": {"code": "too_large", "message": f"the request body is over {limit} bytes"}
    }


# -- a declared length over the limit --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "limit"),
    [
        ("POST", "/api/projects", API_BYTES),
        ("PUT", "/api/projects/p", API_BYTES),
        ("POST", "/api/workflows/w/runs", DATACLIP_BYTES),
        ("POST", "/i/no-such-trigger", DATACLIP_BYTES),
        ("POST", "/collections/patients", DATACLIP_BYTES),  # a job's bulk upsert
        ("PUT", "/collections/patients/k", DATACLIP_BYTES),
        ("POST", "/ui/login", DASHBOARD_BYTES),
        ("POST", "/ui/workflows/w/edit", API_BYTES),
        ("POST", "/ui/projects/p/workflows/new", API_BYTES),
        ("GET", "/health/live", DASHBOARD_BYTES),
        ("POST", "/nowhere", DASHBOARD_BYTES),
    ],
)
async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    site: Site, method: str, path: str, limit: int
) -> None:
    assert_413(await declared(site, method, path, HUGE), limit)
    assert_413(await declared(site, method, path, limit + 1), limit)


async def test_the_limit_comes_before_a_webhooks_authentication(site: Site) -> None:
    method = await site.store.create_webhook_auth_method(
        NewWebhookAuthMethod(
            id="m", project_id=site.seeded.project_id, name="partner", auth_type=WebhookAuthType.API
        )
    )
    await site.store.set_trigger_auth_methods(site.seeded.webhook_id, [method.id])
    path = f"/i/{site.seeded.webhook_id}"
    assert_413(await declared(site, "POST", path, HUGE), DATACLIP_BYTES)
    assert (await declared(site, "POST", path, 2, Connection="close")).status == 401


# -- a chunked body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "limit"),
    [
        ("/api/projects", "application/json", API_BYTES),
        ("/i/{webhook}", "application/json", DATACLIP_BYTES),
        ("/ui/login", "application/x-www-form-urlencoded", DASHBOARD_BYTES),
    ],
)
async def test_a_chunked_body_over_the_limit_is_cut_off(
    site: Site, path: str, kind: str, limit: int
) -> None:
    """Even from a caller with a token (without one, see the next test)."""
    auth = {"Authorization": f"Bearer {site.token}"}
    answer = await chunked(site, path.format(webhook=site.seeded.webhook_id), HUGE, kind, **auth)
    assert_413(answer, limit)
    # the limit, and what the kernel's socket buffers took meanwhile: not 200 MB
    assert answer.sent < limit + 32 * MB, answer.sent
    assert await site.runs() == 0


@pytest.mark.parametrize("path", ["/api/projects", "/api/workflows/w/runs"])
async def test_an_api_request_without_a_token_is_refused_before_its_body(
    site: Site, path: str
) -> None:
    """FastAPI reads a body before it checks a route's dependencies; the token is checked
    before that, so a caller without one gets nothing in, whatever the route's limit."""
    answer = await chunked(site, path, HUGE)
    assert (answer.status, answer.headers["connection"]) == (401, "close")
    assert answer.json() == {"detail": "an API token is required: Authorization: Bearer <token>"}
    assert answer.sent < 32 * MB, answer.sent
    wrong = await chunked(site, path, HUGE, Authorization="Bearer fmn_abc_not-a-secret")
    assert (wrong.status, wrong.json()) == (401, {"detail": "the API token is not valid"})


async def test_a_collections_request_without_a_token_is_refused_before_its_body(
    site: Site,
) -> None:
    """The collections API checks its token (a run's or an API token) before it reads a
    body, as the API does."""
    for token in (None, "fmn_abc_not-a-secret", "not.a.jwt"):
        auth = {} if token is None else {"Authorization": f"Bearer {token}"}
        answer = await chunked(site, "/collections/patients", HUGE, **auth)
        assert (answer.status, answer.headers["connection"]) == (401, "close"), token
        assert answer.json()["code"] == "unauthorized"
        assert answer.sent < 32 * MB, answer.sent


async def test_an_answer_before_the_body_is_read_closes_the_connection(site: Site) -> None:
    """A route that answers without reading (the sign-in form sent as JSON: no form fields,
    refused at once) does not leave the server reading the sender's 200 MB to keep the
    connection."""
    answer = await chunked(site, "/ui/login", HUGE)
    assert answer.status == 401 and answer.headers["connection"] == "close"
    assert answer.sent < 32 * MB, answer.sent


async def test_a_chunked_webhook_body_under_the_limit_is_taken(site: Site) -> None:
    async with httpx2.AsyncClient(base_url=site.served.base_url) as http:

        async def stream() -> AsyncIterator[bytes]:
            yield b'{"patient": '
            yield b'{"id": 7}}'

        answer = await http.post(f"/i/{site.seeded.webhook_id}", content=stream())
    assert answer.status_code == 200, answer.text
    assert await site.runs() == 1


# -- what a 422 echoes ------------------------------------------------------------------------


async def test_a_422_shows_an_excerpt_of_the_input_never_all_of_it(site: Site) -> None:
    secretish = "s3cr3t-" + "x" * 100_000
    auth = {"Authorization": f"Bearer {site.token}"}
    async with httpx2.AsyncClient(base_url=site.served.base_url) as http:
        # "name" missing: FastAPI's own answer would echo the whole object around it
        answer = await http.post("/api/projects", json={"nam": secretish}, headers=auth)
        assert answer.status_code == 422
        assert len(answer.content) < 2000 and "x" * 100 not in answer.text
        errors = answer.json()["detail"]
        assert {(e["type"], tuple(e["loc"])) for e in errors} == {
            ("missing", ("body", "name")),
            ("extra_forbidden", ("body", "nam")),
        }
        assert all(len(e["input"]) <= 80 for e in errors)
        assert any(e["input"].startswith("'s3cr3t-xxx") for e in errors)
        # a thousand bad items: twenty are shown, the rest counted
        many = await http.post(
            "/api/work_orders/rerun",
            json={"work_order_ids": [[i] for i in range(1000)]},
            headers=auth,
        )
        assert many.status_code == 422
        assert len(many.json()["detail"]) == 20 and many.json()["omitted"] == 980
        assert len(many.content) < 5000


@pytest.mark.parametrize(
    ("path", "sent", "at", "fields"),
    [
        (  # natural guesses at a credential's body (issue 21)
            "/api/projects/{project}/credentials",
            {"value": {"token": "t"}},
            "body",
            {"id": "string (optional)", "name": "string", "body": "object"},
        ),
        (
            "/api/projects/{project}/credentials",
            {"name": "api", "body": "token"},
            "body",
            {"id": "string (optional)", "name": "string", "body": "object"},
        ),
        (  # an error deep in a workflow: the shape of the job it is in
            "/api/projects/{project}/workflows",
            {"name": "w", "jobs": [{"body": "fn(lambda s: s)", "adaptr": "common"}]},
            "body.jobs[0]",
            None,
        ),
    ],
)
async def test_a_422_names_the_field_and_shows_the_expected_shape(
    site: Site, path: str, sent: dict[str, Any], at: str, fields: dict[str, str] | None
) -> None:
    auth = {"Authorization": f"Bearer {site.token}"}
    async with httpx2.AsyncClient(base_url=site.served.base_url) as http:
        answer = await http.post(
            path.format(project=site.seeded.project_id), json=sent, headers=auth
        )
    assert answer.status_code == 422
    shape = answer.json()["expected"]
    assert shape["at"] == at
    if fields is not None:
        assert shape["fields"] == fields
    else:  # a job's fields: the misspelt adaptor is there, its id may be left out
        assert shape["fields"]["body"] == shape["fields"]["adaptor"] == "string"
        assert shape["fields"]["id"] == "string (optional)"
    assert all("Value error" not in e["msg"] for e in answer.json()["detail"])
    if sent.get("body") == "token":
        assert answer.json()["detail"][0]["msg"] == "must be a JSON object"
