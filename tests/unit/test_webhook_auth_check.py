"""coordinator.webhook_auth.check: which requests prove one of a trigger's methods."""

from __future__ import annotations

import base64

import pytest

from fulmen.coordinator.webhook_auth import Decision, check
from fulmen.store import WebhookAuthType, WebhookSecret

KEY = "k" * 64
BASIC_OK = Decision(True, "m-basic")
WRONG = Decision(False, reason="wrong_credentials")
API = WebhookSecret("m-api", WebhookAuthType.API, api_key=KEY)
BASIC = WebhookSecret("m-basic", WebhookAuthType.BASIC, username="hook", password="pässwörd:x")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("methods", "headers", "expected"),
    [
        ([], {}, Decision(True)),  # no methods: open
        ([API], {"x-api-key": KEY}, Decision(True, "m-api")),
        ([API, BASIC], {"x-api-key": KEY}, Decision(True, "m-api")),
        ([API, BASIC], {"authorization": basic("hook", "pässwörd:x")}, BASIC_OK),
        ([BASIC], {"authorization": "basic" + basic("hook", "pässwörd:x")[5:]}, BASIC_OK),
        ([API], {}, Decision(False, reason="no_credentials")),
        ([API], {"x-api-key": KEY[:-1]}, WRONG),
        ([API], {"x-api-key": KEY.upper()}, WRONG),
        ([API], {"authorization": f"Bearer {KEY}"}, WRONG),
        ([BASIC], {"x-api-key": KEY}, WRONG),
        ([BASIC], {"authorization": basic("hook", "wrong")}, WRONG),
        ([BASIC], {"authorization": basic("other", "pässwörd:x")}, WRONG),
        ([BASIC], {"authorization": "Basic %%%"}, WRONG),
        ([BASIC], {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, WRONG),
        ([BASIC], {"authorization": "Basic " + base64.b64encode(b"\xff\xfe").decode()}, WRONG),
    ],
)  # fmt: skip
def test_check(methods: list[WebhookSecret], headers: dict[str, str], expected: Decision) -> None:
    assert check(methods, headers) == expected


def test_a_decision_never_carries_a_secret() -> None:
    decision = check([API, BASIC], {"x-api-key": "guess"})
    assert KEY not in repr(decision) and "pässwörd" not in repr(decision)
    assert KEY not in repr(API) and "pässwörd" not in repr(BASIC)  # the secrets' repr hides them
