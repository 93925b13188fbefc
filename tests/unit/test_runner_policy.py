"""Identities and key policies (spec runner.md §3.8): pure decisions, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from fulmen.errors import RunnerError
from fulmen.runner.policy import (
    Evidence,
    canonical_json,
    default_identity,
    evaluate,
    validate_policy,
)

SHA = "a" * 64
EVIDENCE = Evidence(worker_id="w", script_sha256=SHA, type="module", isolation="landlock",
                    now=1000.0, live_instances=2)  # fmt: skip


def test_the_default_identity_is_a_hash_of_script_type_and_policy() -> None:
    base = default_identity(SHA, "module", {"types": ["module"], "max_instances": 3})
    assert base == default_identity(SHA, "module", {"max_instances": 3, "types": ["module"]})
    assert len(base) == 32
    assert base != default_identity("b" * 64, "module", {"types": ["module"], "max_instances": 3})
    assert base != default_identity(SHA, "classic", {"types": ["module"], "max_instances": 3})
    assert base != default_identity(SHA, "module", {"types": ["module"], "max_instances": 4})
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


@pytest.mark.parametrize(
    ("policy", "allowed", "reason"),
    [
        ({}, True, "allowed"),
        ({"scripts": [SHA]}, True, "allowed"),
        ({"scripts": ["b" * 64]}, False, "does not list this script"),
        ({"types": ["classic"]}, False, "does not allow module"),
        ({"not_before": 2000}, False, "not valid yet"),
        ({"not_after": 999}, False, "expired"),
        ({"not_before": 1000, "not_after": 1000}, True, "allowed"),
        ({"min_isolation": "process"}, True, "allowed"),
        ({"min_isolation": "landlock"}, True, "allowed"),
        ({"min_isolation": "uid"}, False, "below uid"),
        ({"max_instances": 2}, True, "allowed"),
        ({"max_instances": 1}, False, "more than 1"),
    ],
)
def test_evaluate(policy: dict[str, Any], allowed: bool, reason: str) -> None:
    verdict, why = evaluate(policy, EVIDENCE)
    assert verdict is allowed and reason in why


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ([], "JSON object"),
        ({"who": 1}, "unknown policy field"),
        ({"scripts": ["ABC"]}, "SHA-256"),
        ({"scripts": "a" * 64}, "list"),
        ({"types": ["esm"]}, "'module' or 'classic'"),
        ({"not_after": "tomorrow"}, "must be a number"),
        ({"max_instances": True}, "must be a number"),
        ({"min_isolation": "vm"}, "min_isolation"),
    ],
)
def test_bad_policies_are_refused(policy: object, message: str) -> None:
    with pytest.raises(RunnerError, match=message) as caught:
        validate_policy(policy)
    assert caught.value.code == "bad_request"


def test_a_named_identity_must_list_its_scripts() -> None:
    with pytest.raises(RunnerError, match="must list its scripts"):
        validate_policy({"types": ["module"]}, named=True)
    assert validate_policy({"scripts": [SHA]}, named=True) == {"scripts": [SHA]}
