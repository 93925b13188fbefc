"""The dashboard's sessions and headers over real HTTP on loopback: the cookie is a random
session id, not the token; a session ends when idle, when old, when its token is revoked and
when signed out; every response carries the Content-Security-Policy and its companions, and
no page holds a script, handler or style the policy would refuse."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from uuid import uuid4

import httpx2
import pytest

from fulmen.store import EnqueueRequest, SQLStore, StepStart
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HOUR = 3600.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient
    token: str
    clock: FakeClock

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}

    async def sign_in(self, **headers: str) -> httpx2.Response:
        signed = await self.http.post(
            "/ui/login", data={"token": self.token}, headers={**self.origin, **headers}
        )
        assert signed.status_code == 303, signed.text
        return signed

    async def page(self, path: str = "/ui") -> int:
        return (await self.http.get(path)).status_code


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    clock = FakeClock()
    async with (
        sqlite_store(str(tmp_path / "fulmen.db"), clock=clock) as store,
        serve(
            store, clock=clock, dashboard_session_idle=2 * HOUR, dashboard_session_max=5 * HOUR
        ) as served,
    ):
        seeded = await seed(store)
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            yield Site(store, seeded, http, await api_token(store), clock)


async def test_the_cookie_is_a_random_session_id_not_the_token(site: Site) -> None:
    signed = await site.sign_in()
    cookie = signed.headers["set-cookie"]
    value = site.http.cookies["fulmen_session"]
    secret = site.token.split("_", 2)[2]  # fmn_<id>_<secret>
    assert site.token not in cookie and secret not in cookie
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)  # 32 random bytes, URL-safe base64
    for part in ("HttpOnly", "Path=/ui", "SameSite=strict", f"Max-Age={int(5 * HOUR)}"):
        assert part.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain HTTP here
    assert await site.page() == 200

    # A second sign-in is a second session, with its own id.
    site.http.cookies.clear()
    await site.sign_in()
    assert site.http.cookies["fulmen_session"] != value

    # The token itself is no session id.
    site.http.cookies.clear()
    site.http.cookies.set("fulmen_session", site.token, path="/ui")
    assert await site.page() == 303


async def test_the_cookie_is_secure_over_https(site: Site) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1: what a TLS proxy in front would send
    signed = await site.sign_in(**{"X-Forwarded-Proto": "https"})
    assert "secure" in signed.headers["set-cookie"].lower()


async def test_a_session_unused_for_the_idle_limit_is_refused(site: Site) -> None:
    await site.sign_in()
    site.clock.advance(hours=1, minutes=59)
    assert await site.page() == 200  # used just within the idle limit: it counts again
    site.clock.advance(hours=2)
    assert await site.page() == 303
    assert (await site.http.get("/ui/status", headers={"x-fulmen-fetch": "1"})).status_code == 401


async def test_a_session_past_its_absolute_limit_is_refused_however_used(site: Site) -> None:
    await site.sign_in()
    for _ in range(4):  # 4 h 40 min, used every 70 minutes
        site.clock.advance(minutes=70)
        assert await site.page() == 200
    site.clock.advance(minutes=20)  # five hours since signing in
    assert await site.page() == 303
    # Signing in again starts a new session.
    await site.sign_in()
    assert await site.page() == 200


async def test_revoking_the_token_refuses_its_sessions(site: Site) -> None:
    await site.sign_in()
    kept = site.http.cookies["fulmen_session"]
    other = await api_token(site.store, "other")
    async with httpx2.AsyncClient(base_url=site.http.base_url) as second:
        await second.post("/ui/login", data={"token": other}, headers=site.origin)
        await site.store.delete_api_token(site.token.split("_")[1])
        assert await site.page() == 303
        assert (await second.get("/ui")).status_code == 200  # another token's session lives
    site.http.cookies.set("fulmen_session", kept, path="/ui")
    assert await site.page() == 303


async def test_signing_out_deletes_the_session_on_the_server(site: Site) -> None:
    await site.sign_in()
    stolen = site.http.cookies["fulmen_session"]
    out = await site.http.post("/ui/logout", headers=site.origin)
    assert out.status_code == 303 and 'fulmen_session=""' in out.headers["set-cookie"]
    assert await site.page() == 303
    # The old id, replayed (copied before signing out), is refused too.
    site.http.cookies.set("fulmen_session", stolen, path="/ui")
    assert await site.page() == 303


def assert_protected(response: httpx2.Response) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert headers.get("content-security-policy") == CSP, where
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert headers.get("referrer-policy") == "same-origin", where
    assert headers.get("x-content-type-options") == "nosniff", where


async def test_every_dashboard_response_carries_the_policy_headers(site: Site) -> None:
    signed_out = [
        await site.http.get("/"),
        await site.http.get("/ui"),
        await site.http.get("/ui/login"),
        await site.http.get("/ui/runs/rows", headers={"x-fulmen-fetch": "1"}),
        await site.http.post("/ui/login", data={"token": "fmn_a_b"}, headers=site.origin),
        await site.http.get("/ui/static/dashboard.js"),
        await site.http.get("/ui/static/dashboard.css"),
        await site.http.get("/ui/static/missing.js"),
    ]
    run_id = await run_with_a_step(site)
    signed_in = [
        await site.sign_in(),
        await site.http.get("/ui"),
        await site.http.get("/ui/runs"),
        await site.http.get("/ui/runs/rows"),
        await site.http.get("/ui/status"),
        await site.http.get(f"/ui/runs/{run_id}"),
        await site.http.get(f"/ui/runs/{uuid4()}"),
        await site.http.post("/ui/logout", headers=site.origin),
    ]
    for response in signed_out + signed_in:
        assert_protected(response)
    api = await site.http.get("/api/runs")
    assert "content-security-policy" not in api.headers  # the API is JSON, not pages


class Inline(HTMLParser):
    """Whatever in a page a ``script-src 'self'; style-src 'self'`` policy refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…> handler")
            if name == "style":
                self.found.append(f"<{tag} style=…> attribute")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:…>")
        if tag == "script":
            self.scripts.append(names.get("src") or "")
            if not names.get("src"):
                self.found.append("<script> without src")
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.found.append(f"inline <{self._in}> body: {data.strip()[:40]!r}")


def inline_parts(html: str) -> Inline:
    parser = Inline()
    parser.feed(html)
    parser.close()
    return parser


async def run_with_a_step(site: Site) -> str:
    enqueued = await site.store.enqueue(EnqueueRequest(workflow_id=site.seeded.workflow_id))
    (claimed,) = await site.store.claim(1)
    await site.store.join_run(claimed.id)
    now = datetime.now(UTC)
    await site.store.start_run(claimed.id, timestamp=now)
    step = StepStart(str(uuid4()), site.seeded.job_ids[0], enqueued.dataclip_id, timestamp=now)
    await site.store.start_step(claimed.id, step)
    return claimed.id


async def test_no_page_holds_inline_script_handlers_or_styles(site: Site) -> None:
    login = (await site.http.get("/ui/login")).text
    await site.sign_in()
    run_id = await run_with_a_step(site)
    pages = {
        "login": login,
        "workflows": (await site.http.get("/ui")).text,
        "runs": (await site.http.get("/ui/runs")).text,
        "rows": (await site.http.get("/ui/runs/rows")).text,
        "run": (await site.http.get(f"/ui/runs/{run_id}")).text,
        "missing": (await site.http.get(f"/ui/runs/{uuid4()}")).text,
    }
    assert 'class="bar' in pages["run"]  # the step's bar is drawn without a style attribute
    for name, html in pages.items():
        parsed = inline_parts(html)
        assert parsed.found == [], (name, parsed.found)
    scripts = inline_parts(pages["runs"]).scripts
    assert scripts and all(src.startswith("/ui/static/") for src in scripts), scripts
