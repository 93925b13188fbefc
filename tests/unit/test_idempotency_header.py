"""The ``Idempotency-Key`` header's value (issue 14): what names a key, and the same key bare
or quoted as a Structured Field string; the coordinator's retention window for keys."""

from __future__ import annotations

import re

import pytest

from fulmen.config import CoordinatorSettings
from fulmen.coordinator.idempotency import PATTERN, KeyRefused, parse
from fulmen.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("4e1f6c2a-0d7b", "4e1f6c2a-0d7b"),
        ('"4e1f6c2a-0d7b"', "4e1f6c2a-0d7b"),
        ('"with space"', "with space"),
        ('"a \\"quoted\\" \\\\ key"', 'a "quoted" \\ key'),
        ("a'b:c/d=e~!", "a'b:c/d=e~!"),
        ("k" * 255, "k" * 255),
        ('"' + "k" * 255 + '"', "k" * 255),
    ],
)
def test_a_key_is_bare_or_quoted(value: str, key: str) -> None:
    assert parse(value) == key
    assert re.fullmatch(PATTERN, value)  # the OpenAPI document says what is taken


@pytest.mark.parametrize(
    "value",
    [
        "",
        '""',
        "k" * 256,
        '"' + "k" * 256 + '"',
        "two words",
        "tab\tin",
        "é",
        '"open',
        '"bad \\n"',
        '"\\"',
        "line\n",
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(KeyRefused) as refused:
        parse(value)
    assert refused.value.code == "idempotency_key_invalid"
    assert not re.fullmatch(PATTERN, value)


def test_keys_are_kept_a_day_unless_set() -> None:
    assert CoordinatorSettings.from_env({}).idempotency_key_ttl == 86_400
    chosen = {"FULMEN_IDEMPOTENCY_KEY_TTL_SECONDS": "3600"}
    assert CoordinatorSettings.from_env(chosen).idempotency_key_ttl == 3600
    with pytest.raises(ConfigError):
        CoordinatorSettings.from_env({"FULMEN_IDEMPOTENCY_KEY_TTL_SECONDS": "0"})
