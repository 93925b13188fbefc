"""Users and dashboard sessions made straight in the store (issue 18), for the tests of what
comes after a sign-in (the second factor, single sign-on, roles) without going through the
password form: a user made as ``fulmen users create`` would make one, and a session opened as
the sign-in page opens one, whose cookie a test sets in its HTTP client or browser."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from fulmen.coordinator import passwords
from fulmen.coordinator.api.auth import mint
from fulmen.coordinator.dashboard.session import COOKIE, PREFIX
from fulmen.store import NewUser, SessionLimits, SQLStore, User
from fulmen.store.dashboard_sessions import SessionStage

__all__ = ["LIMITS", "PASSWORD", "browser_cookie", "open_session", "personal_token", "user"]

#: Every test user's password (long enough for passwords.check_strength).
PASSWORD: Final = "correct horse battery staple"
#: A session's limits as the default settings have them (12 hours idle, 7 days in all).
LIMITS: Final = SessionLimits(idle=timedelta(hours=12), absolute=timedelta(days=7))


async def user(store: SQLStore, email: str, *, admin: bool = False) -> User:
    """A user with :data:`PASSWORD` (an argon2id hash, as a real sign-in checks)."""
    password_hash = await passwords.hash_password(PASSWORD)
    return await store.create_user(
        NewUser(email, password_hash=password_hash, instance_admin=admin)
    )


async def open_session(store: SQLStore, user_id: str, *, stage: SessionStage = "full") -> str:
    """A new dashboard session of ``user_id``: the cookie's value. The store keeps its SHA-256,
    as session.start does."""
    session_id = secrets.token_urlsafe(32)
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    await store.open_dashboard_session(digest, LIMITS, user_id=user_id, stage=stage)
    return session_id


def browser_cookie(base_url: str, session_id: str) -> dict[str, Any]:
    """The session cookie as Playwright's ``context.add_cookies`` takes it."""
    return {
        "name": COOKIE,
        "value": session_id,
        "domain": urlsplit(base_url).hostname,
        "path": PREFIX,  # as session.start sets it, so that a new session's cookie replaces it
        "httpOnly": True,
        "sameSite": "Strict",
    }


async def personal_token(store: SQLStore, user_id: str, name: str = "tests") -> str:
    """A personal API token of ``user_id`` (acting with that user's roles)."""
    token, row = mint(name, user_id=user_id)
    await store.put_api_token(row)
    return token
