"""What ``fulmen up`` passes its coordinator from the caller's environment: none of our own
variables (the data directory decides keys, ports and the store), except the team settings
an operator alone knows (issue 18): alerts' SMTP, single sign-on, the sign-in limits, the
audit trail's retention, trusted proxies and the outbound allowance."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fulmen.cli.up.datadir import DataDir
from fulmen.cli.up.system import Options, System

CALLER = {
    "PATH": "/usr/bin",
    "WORKER_SECRET": "the caller's",
    "FULMEN_DATABASE_URL": "postgresql://elsewhere/db",
    "FULMEN_PORT": "9999",
    "FULMEN_SMTP_HOST": "smtp.example.org",
    "FULMEN_OIDC_ISSUER": "https://id.example.org",
    "FULMEN_OIDC_CLIENT_ID": "fulmen",
    "FULMEN_SIGN_IN_ACCOUNT_LIMIT": "3",
    "FULMEN_AUDIT_RETENTION_DAYS": "400",
    "FULMEN_TRUSTED_PROXIES": "10.0.0.0/8",
    "FULMEN_OUTBOUND_ALLOW": "hooks.internal",
}


def test_the_operators_team_settings_reach_the_coordinator_and_nothing_else_of_ours() -> None:
    data = DataDir(Path("/nowhere"), False, "secret", "private", "public", "token")
    system = System(data, Options(), CALLER, asyncio.Event())
    assert system.env == {"PATH": "/usr/bin"}
    assert system.operators == {
        key: value
        for key, value in CALLER.items()
        if key.startswith(("FULMEN_SMTP", "FULMEN_OIDC", "FULMEN_SIGN_IN", "FULMEN_AUDIT"))
        or key in ("FULMEN_TRUSTED_PROXIES", "FULMEN_OUTBOUND_ALLOW")
    }
