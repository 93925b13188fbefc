"""The users page and invitation links over real HTTP (issue 18): an instance admin disables
and enables users (a disabled user's session ends), makes and unmakes admins but never loses
the last one, and makes an invitation whose link is shown once; the link opens a form,
accepting it makes the account and signs it in, and an unknown, used or expired link gets
one clear page; someone who has an account proves it before the role is given; a project's
admin invites to their project from its members page. Each change is in the audit trail,
and no link is."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path

import httpx2
import pytest

from fulmen.coordinator.passwords import hash_password
from fulmen.store import AuditFilter, NewInvitation, NewUser, Project, Role, SQLStore, User
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import serve, sqlite_store

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
DAY = 86_400.0
WEEK = timedelta(days=7)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    store: SQLStore
    base_url: str
    clock: FakeClock
    admin: User

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.base_url}

    def browser(self) -> httpx2.AsyncClient:
        # Sign-in checks a password (argon2id): on a loaded two-core machine a request has
        # taken over httpx's default five seconds.
        return httpx2.AsyncClient(base_url=self.base_url, timeout=30)

    async def user(self, email: str, **given: bool) -> User:
        hashed = await hash_password(PASSWORD)
        return await self.store.create_user(NewUser(email, password_hash=hashed, **given))

    async def signed_in(self, email: str) -> httpx2.AsyncClient:
        browser = self.browser()
        signed = await browser.post(
            "/ui/login", data={"email": email, "password": PASSWORD}, headers=self.origin
        )
        assert signed.status_code == 303, signed.text
        return browser

    async def post(
        self, browser: httpx2.AsyncClient, path: str, data: dict[str, str]
    ) -> httpx2.Response:
        return await browser.post(path, data=data, headers=self.origin)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    clock = FakeClock()
    async with (
        sqlite_store(str(tmp_path / "fulmen.db"), clock=clock) as store,
        serve(store, clock=clock) as served,
    ):
        await store.create_project(Project("p1", "Billing"))
        hashed = await hash_password(PASSWORD)
        admin = await store.create_user(
            NewUser("admin@example.org", password_hash=hashed, instance_admin=True)
        )
        yield Site(store, served.base_url, clock, admin)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def invitation_link(html: str) -> str:
    found = re.search(r'value="(http://[^"]+/ui/invitations/[^"]+)"', html)
    assert found, html
    return unescape(found.group(1))


async def test_an_admin_disables_enables_and_makes_admins_never_the_last(site: Site) -> None:
    ada = await site.user("ada@example.org")
    admin = await site.signed_in("admin@example.org")
    ada_browser = await site.signed_in("ada@example.org")
    listed = await admin.get("/ui/users")
    assert listed.status_code == 200
    assert "ada@example.org" in listed.text and "admin@example.org you" in text_of(listed.text)

    disabled = await site.post(admin, f"/ui/users/{ada.id}", {"action": "disable"})
    assert disabled.status_code == 303
    assert "their sessions ended" in text_of((await admin.get(disabled.headers["location"])).text)
    assert (await ada_browser.get("/ui")).status_code == 303  # signed out
    await site.post(admin, f"/ui/users/{ada.id}", {"action": "enable"})
    await ada_browser.aclose()

    last = await site.post(admin, f"/ui/users/{site.admin.id}", {"action": "unmake_admin"})
    assert last.status_code == 409 and "last active instance admin" in text_of(last.text)
    last = await site.post(admin, f"/ui/users/{site.admin.id}", {"action": "disable"})
    assert last.status_code == 409
    assert (await admin.get("/ui")).status_code == 200

    await site.post(admin, f"/ui/users/{ada.id}", {"action": "make_admin"})
    assert (await site.store.get_user(ada.id)).instance_admin
    bogus = await site.post(admin, f"/ui/users/{ada.id}", {"action": "delete"})
    assert bogus.status_code == 422
    forged = await admin.post(
        f"/ui/users/{ada.id}", data={"action": "disable"}, headers={"Origin": "https://x.example"}
    )
    assert forged.status_code == 403 and (await site.store.get_user(ada.id)).active
    await admin.aclose()


async def test_the_users_page_is_an_instance_admins(site: Site) -> None:
    ada = await site.user("ada@example.org")
    browser = await site.signed_in("ada@example.org")
    page = await browser.get("/ui/users")
    assert page.status_code == 403 and "takes an instance admin" in page.text
    changed = await site.post(browser, f"/ui/users/{ada.id}", {"action": "make_admin"})
    assert changed.status_code == 403 and not (await site.store.get_user(ada.id)).instance_admin
    await browser.aclose()


async def test_an_invitation_link_makes_the_account_and_signs_it_in_once(site: Site) -> None:
    admin = await site.signed_in("admin@example.org")
    made = await site.post(
        admin,
        "/ui/invitations",
        {"email": "bob@example.org", "project_id": "p1", "role": "editor"},
    )
    assert made.status_code == 201, made.text
    link = invitation_link(made.text)
    assert "it is not shown again" in text_of(made.text)
    listed = (await admin.get("/ui/users")).text
    assert "bob@example.org" in listed and link not in listed  # open, but the link is gone
    await admin.aclose()

    async with site.browser() as bob:
        opened = await bob.get(link)
        assert opened.status_code == 200
        assert "editor of the project Billing" in text_of(opened.text)
        weak = await site.post(bob, link, {"name": "Bob", "password": "short", "repeat": "short"})
        assert weak.status_code == 422 and "at least 10 characters" in text_of(weak.text)
        differ = {"name": "Bob", "password": PASSWORD, "repeat": PASSWORD + "?"}
        assert (await site.post(bob, link, differ)).status_code == 422
        accepted = await site.post(
            bob, link, {"name": "Bob", "password": PASSWORD, "repeat": PASSWORD}
        )
        assert accepted.status_code == 303 and accepted.headers["location"] == "/ui"
        assert (await bob.get("/ui")).status_code == 200  # signed in
        user = await site.store.find_user("bob@example.org")
        assert user is not None and user.name == "Bob"
        assert await site.store.roles_of(user.id) == {"p1": Role.EDITOR}

        used = await bob.get(link)
        assert used.status_code == 404 and "used already" in text_of(used.text)
        again = await site.post(bob, link, {"password": "x" * 12, "repeat": "x" * 12})
        assert again.status_code == 404
        assert (await site.store.get_user(user.id)).password_hash == user.password_hash


async def test_unknown_and_expired_links_get_one_clear_page(site: Site) -> None:
    await site.store.create_invitation(
        NewInvitation("carol@example.org"), "0" * 64, site.clock.now()
    )
    async with site.browser() as browser:
        for secret in ("nothing-like-it", "a" * 5000, "%2e%2e"):
            unknown = await browser.get(f"/ui/invitations/{secret}")
            assert unknown.status_code == 404
            assert "This invitation link cannot be used" in unknown.text
            assert "not one this Fulmen made" in text_of(unknown.text)
        admin = await site.signed_in("admin@example.org")
        made = await site.post(admin, "/ui/invitations", {"email": "carol@example.org"})
        link = invitation_link(made.text)
        site.clock.advance(7 * DAY)
        expired = await browser.get(link)
        assert expired.status_code == 404 and "has expired" in text_of(expired.text)
        posted = await site.post(browser, link, {"password": PASSWORD, "repeat": PASSWORD})
        assert posted.status_code == 404
        assert await site.store.find_user("carol@example.org") is None
        await admin.aclose()


async def test_someone_with_an_account_proves_it_before_the_role_is_given(site: Site) -> None:
    dan = await site.user("dan@example.org")
    admin = await site.signed_in("admin@example.org")
    made = await site.post(
        admin, "/ui/invitations", {"email": "dan@example.org", "project_id": "p1", "role": "admin"}
    )
    link = invitation_link(made.text)
    await admin.aclose()
    async with site.browser() as browser:
        page = await browser.get(link)
        assert "has an account here" in text_of(page.text) and 'id="repeat"' not in page.text
        wrong = await site.post(browser, link, {"password": "not dan's password"})
        assert wrong.status_code == 401 and await site.store.roles_of(dan.id) == {}
        right = await site.post(browser, link, {"password": PASSWORD})
        assert right.status_code == 303 and (await browser.get("/ui")).status_code == 200
        assert await site.store.roles_of(dan.id) == {"p1": Role.ADMIN}
        assert (await site.store.get_user(dan.id)).password_hash == dan.password_hash


async def test_a_project_admin_invites_from_their_own_page(site: Site) -> None:
    await site.store.create_invitation(
        NewInvitation("padmin@example.org", "p1", Role.ADMIN), "d", site.clock.now() + WEEK
    )
    await site.store.accept_invitation("d", password_hash=await hash_password(PASSWORD))
    browser = await site.signed_in("padmin@example.org")
    members = (await browser.get("/ui/projects/p1/members")).text
    form = re.search(r'<form method="post" action="/ui/invitations".*?</form>', members, re.S)
    assert form, members
    back = re.search(r'name="back" value="([^"]+)"', form[0])
    assert back and back[1] == "/ui/projects/p1/members"
    offered = re.findall(r'<option value="([a-z0-9]+)"', form[0])
    assert offered == ["p1", "viewer", "editor", "admin"]  # this project; no owner, no "none"
    assert "instance_admin" not in form[0]

    made = await site.post(
        browser,
        "/ui/invitations",
        {"email": "eve@example.org", "project_id": "p1", "role": "viewer", "back": back[1]},
    )
    assert made.status_code == 201 and "/ui/invitations/" in invitation_link(made.text)
    assert 'href="/ui/projects/p1/members"' in made.text
    owner = await site.post(
        browser,
        "/ui/invitations",
        {"email": "eve@example.org", "project_id": "p1", "role": "owner"},
    )
    assert owner.status_code == 403 and "owner role" in text_of(owner.text)
    await browser.aclose()


#: What the Content-Security-Policy (script-src 'self'; style-src 'self') would refuse.
INLINE = re.compile(r"<script(?![^>]*\ssrc=)|<style|\son[a-z]+=|\sstyle=|javascript:", re.I)


async def test_the_new_pages_hold_no_inline_script_handler_or_style(site: Site) -> None:
    admin = await site.signed_in("admin@example.org")
    made = await site.post(admin, "/ui/invitations", {"email": "x@example.org"})
    ada = await site.user("ada@example.org")
    plain = await site.signed_in("ada@example.org")
    async with site.browser() as stranger:
        pages = {
            "login": (await stranger.get("/ui/login")).text,
            "users": (await admin.get("/ui/users")).text,
            "invited": made.text,
            "account": (await admin.get("/ui/account")).text,
            "forbidden": (await plain.get("/ui/users")).text,
            "invitation": (await stranger.get(invitation_link(made.text))).text,
            "gone": (await stranger.get("/ui/invitations/nothing")).text,
        }
    for name, html in pages.items():
        assert not INLINE.findall(html), (name, INLINE.findall(html))
    assert ada.email in pages["users"]
    await admin.aclose()
    await plain.aclose()


async def test_user_changes_and_invitations_are_in_the_audit_trail(site: Site) -> None:
    ada = await site.user("ada@example.org")
    admin = await site.signed_in("admin@example.org")
    await site.post(admin, f"/ui/users/{ada.id}", {"action": "disable"})
    made = await site.post(
        admin, "/ui/invitations", {"email": "bob@example.org", "project_id": "p1", "role": "editor"}
    )
    link = invitation_link(made.text)
    other = await site.post(admin, "/ui/invitations", {"email": "carol@example.org"})
    carol = next(i for i in await site.store.list_invitations() if i.email == "carol@example.org")
    await site.post(admin, f"/ui/invitations/{carol.digest}/revoke", {})
    await admin.aclose()
    async with site.browser() as bob:
        await site.post(bob, link, {"name": "Bob", "password": PASSWORD, "repeat": PASSWORD})

    records = (await site.store.list_audit(AuditFilter(), limit=50)).items[::-1]
    changes = [r for r in records if not r.action.startswith("sign_in.")]
    assert [(r.action, r.actor.name, r.target.name) for r in changes] == [
        ("user.updated", "admin@example.org", "ada@example.org"),
        ("invitation.created", "admin@example.org", "bob@example.org"),
        ("invitation.created", "admin@example.org", "carol@example.org"),
        ("invitation.revoked", "admin@example.org", "carol@example.org"),
        ("invitation.accepted", "bob@example.org", "bob@example.org"),
    ]
    disabled, to_bob, accepted = changes[0], changes[1], changes[4]
    assert (disabled.before or {})["active"] is True and (disabled.after or {})["active"] is False
    assert to_bob.project_id == accepted.project_id == "p1"
    assert (accepted.after or {})["role"] == "editor"
    assert (accepted.detail or {})["new_account"] is True
    secrets = [link.rsplit("/", 1)[1], invitation_link(other.text).rsplit("/", 1)[1]]
    assert not any(secret in repr(records) for secret in secrets)  # a link is never recorded
