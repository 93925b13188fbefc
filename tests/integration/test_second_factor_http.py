"""The TOTP second factor over HTTP on loopback: enrolling from the account (a QR code and
the key, a current code to confirm, ten recovery codes shown once), signing in with a code
(a new session id), a code taken once, a recovery code taken once, five wrong codes locking
the account for the window, and an instance that requires a second factor sending a user
without one to enrol first. Codes are computed with pyotp at the coordinator's (fake) clock."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pyotp
import pytest

from fulmen.store import AuditFilter, SQLStore, User, open_store
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import serve, sqlite_store
from fulmen_testing.sign_in import PASSWORD, open_session, personal_token, user

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    store: SQLStore
    http: httpx2.AsyncClient
    clock: FakeClock
    ada: User

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}

    def holding(self, session_id: str) -> None:
        self.http.cookies.clear()
        host = urlsplit(str(self.http.base_url)).hostname or ""
        self.http.cookies.set("fulmen_session", session_id, domain=host, path="/ui")

    async def post(self, path: str, **data: str) -> httpx2.Response:
        return await self.http.post(path, data=data, headers=self.origin)

    def code(self, secret: str, seconds: float = 0) -> str:
        return pyotp.TOTP(secret).at(self.clock.now().timestamp() + seconds)

    async def enrol(self) -> tuple[str, list[str]]:
        """Enrol ada through the account page: her secret and recovery codes."""
        self.holding(await open_session(self.store, self.ada.id))
        shown = await self.http.get("/ui/account/mfa")
        secret = re.search(r'<code id="secret" class="mono">([A-Z2-7]+)</code>', shown.text)
        assert secret, shown.text
        confirmed = await self.post("/ui/account/mfa", code=self.code(secret[1]))
        assert confirmed.status_code == 201, confirmed.text
        return secret[1], re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", confirmed.text)

    async def at_second_factor(self) -> str:
        """A session past the password, waiting for the second factor: its cookie."""
        session_id = await open_session(self.store, self.ada.id, stage="mfa")
        self.holding(session_id)
        return session_id

    async def give(self, code: str, next: str = "/ui/runs") -> httpx2.Response:
        return await self.post("/ui/login/mfa", code=code, next=next)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    clock = FakeClock()
    async with (
        sqlite_store(str(tmp_path / "fulmen.db"), clock=clock) as store,
        serve(store, clock=clock) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        yield Site(store, http, clock, await user(store, "ada@example.org"))


async def test_enrolment_shows_a_qr_code_and_takes_a_current_code(site: Site) -> None:
    other = await open_session(site.store, site.ada.id)  # ada's other browser
    site.holding(await open_session(site.store, site.ada.id))
    shown = await site.http.get("/ui/account/mfa")
    assert shown.status_code == 200
    assert 'src="data:image/svg+xml' in shown.text and 'id="qr"' in shown.text
    secret = re.search(r'<code id="secret" class="mono">([A-Z2-7]{32})</code>', shown.text)
    assert secret is not None
    # the page shows the same secret until it is confirmed
    assert secret[1] in (await site.http.get("/ui/account/mfa")).text

    wrong = await site.post("/ui/account/mfa", code="000000")
    assert wrong.status_code == 401 and "not the code your app shows" in wrong.text
    assert not (await site.store.get_user(site.ada.id)).totp_enabled

    confirmed = await site.post("/ui/account/mfa", code=site.code(secret[1]))
    assert confirmed.status_code == 201
    twice = await site.post("/ui/account/mfa", code=site.code(secret[1]))  # a second click
    assert twice.status_code == 303 and twice.headers["location"] == "/ui/account/mfa"
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", confirmed.text)
    assert len(set(codes)) == 10
    assert (await site.store.get_user(ada_id := site.ada.id)).totp_enabled
    # shown once: the page after lists none, and the key is no longer shown
    again = await site.http.get("/ui/account/mfa")
    assert codes[0] not in again.text and secret[1] not in again.text
    assert "10 unused recovery codes left" in again.text
    # ada's other session ended; this one goes on
    site.holding(other)
    assert (await site.http.get("/ui/runs")).status_code == 303
    assert ada_id


async def test_a_code_moves_the_session_on_under_a_new_id(site: Site) -> None:
    secret, _ = await site.enrol()
    waiting = await site.at_second_factor()
    # the password alone opens nothing but the second factor's page
    assert (await site.http.get("/ui/runs")).status_code == 303
    fetched = await site.http.get("/ui/status", headers={"x-fulmen-fetch": "1"})
    assert fetched.status_code == 401
    assert (await site.http.get("/ui/login/mfa?next=/ui/runs")).status_code == 200

    site.clock.advance(seconds=30)
    passed = await site.give(site.code(secret))
    assert passed.status_code == 303 and passed.headers["location"] == "/ui/runs"
    assert site.http.cookies["fulmen_session"] != waiting
    assert (await site.http.get("/ui/runs")).status_code == 200
    site.holding(waiting)  # the id seen before the second factor is worth nothing after
    assert (await site.http.get("/ui/runs")).status_code == 303
    # the audit trail: the second factor turned on, then the sign-in it finished
    found = (await site.store.list_audit(AuditFilter())).items
    assert [(r.action, (r.detail or {}).get("method")) for r in found] == [
        ("sign_in.succeeded", "totp"),
        ("user.second_factor_enabled", None),
    ]


async def test_a_code_is_taken_once(site: Site) -> None:
    secret, _ = await site.enrol()
    site.clock.advance(seconds=30)
    await site.at_second_factor()
    code = site.code(secret)
    assert (await site.give(code)).status_code == 303

    await site.at_second_factor()  # a second sign-in, the same code replayed
    replayed = await site.give(code)
    assert replayed.status_code == 401 and "used already" in replayed.text
    # nor the one before it, now that a later one was taken
    earlier = await site.give(site.code(secret, -30))
    assert earlier.status_code == 401
    site.clock.advance(seconds=30)
    assert (await site.give(site.code(secret))).status_code == 303


async def test_a_recovery_code_is_taken_once(site: Site) -> None:
    _, codes = await site.enrol()
    await site.at_second_factor()
    assert (await site.give(codes[3].upper().replace("-", " "))).status_code == 303
    await site.at_second_factor()
    again = await site.give(codes[3])
    assert again.status_code == 401 and "unused recovery code" in again.text
    assert (await site.give(codes[4])).status_code == 303
    factor = await site.store.get_second_factor(site.ada.id)
    assert factor is not None and factor.recovery_codes_left == 8


async def test_five_wrong_codes_lock_the_second_factor_for_the_window(site: Site) -> None:
    secret, _ = await site.enrol()
    site.clock.advance(seconds=60)
    await site.at_second_factor()
    for _ in range(5):
        assert (await site.give("123456")).status_code == 401
    locked = await site.give(site.code(secret))  # right, but locked
    assert locked.status_code == 429 and "try again in 15 minutes" in locked.text
    # another session (another address) of the same user is locked too
    await site.at_second_factor()
    assert (await site.give(site.code(secret))).status_code == 429
    site.clock.advance(minutes=9)  # the session at this stage is young enough still
    await site.at_second_factor()
    assert "try again in 6 minutes" in (await site.give(site.code(secret))).text
    site.clock.advance(minutes=6)
    assert (await site.give(site.code(secret))).status_code == 303


async def test_a_session_waiting_too_long_for_the_code_starts_again(site: Site) -> None:
    secret, _ = await site.enrol()
    await site.at_second_factor()
    site.clock.advance(minutes=10)
    answer = await site.give(site.code(secret))
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    assert (await site.http.get("/ui/login/mfa")).status_code == 303


async def test_a_code_posted_from_another_site_is_refused(site: Site) -> None:
    secret, _ = await site.enrol()
    await site.at_second_factor()
    forged = await site.http.post(
        "/ui/login/mfa", data={"code": site.code(secret)}, headers={"Origin": "http://evil.test"}
    )
    assert forged.status_code == 403
    refused = await site.http.post(
        "/ui/account/mfa/off", data={"answer": PASSWORD}, headers={"Origin": "http://evil.test"}
    )
    assert refused.status_code == 401  # the session at this stage opens no account page
    assert (await site.store.get_user(site.ada.id)).totp_enabled


async def test_turning_it_off_takes_a_code_or_the_password(site: Site) -> None:
    await site.enrol()
    wrong = await site.post("/ui/account/mfa/off", answer="not my password")
    assert wrong.status_code == 401 and "neither your password" in wrong.text
    assert (await site.store.get_user(site.ada.id)).totp_enabled
    off = await site.post("/ui/account/mfa/off", answer=PASSWORD)
    assert off.status_code == 303
    assert not (await site.store.get_user(site.ada.id)).totp_enabled
    assert await site.store.get_second_factor(site.ada.id) is None


async def test_new_recovery_codes_replace_the_old(site: Site) -> None:
    secret, old = await site.enrol()
    site.clock.advance(seconds=30)
    renewed = await site.post("/ui/account/mfa/codes", answer=site.code(secret))
    assert renewed.status_code == 201
    new = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", renewed.text)
    assert len(new) == 10 and not set(new) & set(old)
    await site.at_second_factor()
    assert (await site.give(old[0])).status_code == 401
    assert (await site.give(new[0])).status_code == 303


async def test_required_mfa_sends_a_user_without_it_to_enrol_first(site: Site) -> None:
    admin = await user(site.store, "root@example.org", admin=True)
    admin_token = await personal_token(site.store, admin.id)
    ada_token = await personal_token(site.store, site.ada.id)
    api = {"Authorization": f"Bearer {admin_token}"}

    refused = await site.http.put(
        "/api/instance/settings",
        json={"require_mfa": True},
        headers={"Authorization": f"Bearer {ada_token}"},
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    put = await site.http.put("/api/instance/settings", json={"require_mfa": True}, headers=api)
    assert put.status_code == 200 and put.json() == {"require_mfa": True}
    assert (await site.http.get("/api/instance/settings", headers=api)).json()["require_mfa"]

    site.holding(await open_session(site.store, site.ada.id))
    sent = await site.http.get("/ui/runs?state=failed")
    assert sent.status_code == 303
    assert sent.headers["location"] == "/ui/account/mfa?next=/ui/runs%3Fstate%3Dfailed"
    fetched = await site.http.get("/ui/status", headers={"x-fulmen-fetch": "1"})
    assert fetched.status_code == 403 and fetched.json()["error"]["code"] == "mfa_required"
    page = await site.http.get(sent.headers["location"])
    assert page.status_code == 200 and "requires two-factor sign-in" in page.text
    # a personal API token is not affected
    projects = await site.http.get(
        "/api/projects", headers={"Authorization": f"Bearer {ada_token}"}
    )
    assert projects.status_code == 200

    secret = re.search(r'<code id="secret" class="mono">([A-Z2-7]+)</code>', page.text)
    assert secret is not None
    done = await site.post(
        "/ui/account/mfa?next=/ui/runs%3Fstate%3Dfailed", code=site.code(secret[1])
    )
    assert done.status_code == 201 and 'href="/ui/runs?state=failed" id="continue"' in done.text
    assert (await site.http.get("/ui/runs")).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [({"require_mfa": "yes"}, 422), ({"colour": "red"}, 422), ({}, 200)],
)
async def test_instance_settings_refuse_what_they_do_not_take(
    site: Site, body: dict[str, object], code: int
) -> None:
    admin = await user(site.store, "root@example.org", admin=True)
    api = {"Authorization": f"Bearer {await personal_token(site.store, admin.id)}"}
    answer = await site.http.put("/api/instance/settings", json=body, headers=api)
    assert answer.status_code == code, answer.text
    assert not (await site.store.get_instance_settings()).require_mfa


async def test_the_instance_page_is_an_admins(site: Site) -> None:
    site.holding(await open_session(site.store, site.ada.id))
    assert (await site.http.get("/ui/instance")).status_code == 403
    assert (await site.post("/ui/instance", require_mfa="on")).status_code == 403
    assert not (await site.store.get_instance_settings()).require_mfa

    admin = await user(site.store, "root@example.org", admin=True)
    site.holding(await open_session(site.store, admin.id))
    page = await site.http.get("/ui/instance")
    assert page.status_code == 200 and "/ui/login/sso/callback" in page.text
    saved = await site.post("/ui/instance", require_mfa="on")
    assert saved.status_code == 303
    assert (await site.store.get_instance_settings()).require_mfa
    # the admin has no second factor either: off to enrol
    assert (await site.http.get("/ui/instance")).headers["location"].startswith("/ui/account/mfa")


async def test_without_a_credential_key_the_page_says_why(tmp_path: Path) -> None:
    async with (
        await open_store(f"sqlite:///{tmp_path / 'fulmen.db'}") as store,
        serve(store) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        ada = await user(store, "ada@example.org")
        http.cookies.set("fulmen_session", await open_session(store, ada.id), path="/ui")
        page = await http.get("/ui/account/mfa")
    assert page.status_code == 503 and "without a credential key" in page.text
    assert 'id="qr"' not in page.text
