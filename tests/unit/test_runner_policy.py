"""Identities and key policies (spec runner.md §3.8): pure decisions, as tables."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fulmen.errors import RunnerError
from fulmen.runner.policy import (
    ISOLATION_ORDER,
    Evidence,
    canonical_json,
    default_identity,
    evaluate,
    validate_policy,
)
from fulmen.runner.service import isolation_name
from fulmen.sandbox.isolation import IsolationReport, Mechanism

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
        ({"min_isolation": "L2"}, False, "gives landlock isolation, below L2"),
        ({"min_isolation": "L3"}, False, "below L3"),
        ({"max_instances": 2}, True, "allowed"),
        ({"max_instances": 1}, False, "more than 1"),
    ],
)
def test_evaluate(policy: dict[str, Any], allowed: bool, reason: str) -> None:
    verdict, why = evaluate(policy, EVIDENCE)
    assert verdict is allowed and reason in why


@pytest.mark.parametrize(
    ("isolation", "wanted", "allowed"),
    [
        ("L3", "process", True),
        ("L3", "uid", True),
        ("L3", "L2", True),
        ("L3", "L3", True),
        ("L2", "uid", True),
        ("L2", "L2", True),
        ("L2", "L3", False),
        ("uid", "L2", False),
        ("none", "process", False),
    ],
)
def test_the_namespaced_levels_rank_above_the_older_names(
    isolation: str, wanted: str, allowed: bool
) -> None:
    evidence = dataclasses.replace(EVIDENCE, isolation=isolation)
    assert evaluate({"min_isolation": wanted}, evidence)[0] is allowed
    assert validate_policy({"min_isolation": wanted}) == {"min_isolation": wanted}


def report(level: str, uid: int, *held: str) -> IsolationReport:
    return IsolationReport(level, tuple(Mechanism(m, True, "") for m in held), uid, 6)


@pytest.mark.parametrize(
    ("sandbox", "name"),
    [
        (report("L3", 200_000, "landlock_fs", "user_namespace", "cgroup"), "L3"),
        (report("L2", 200_000, "user_namespace"), "L2"),
        (report("L1", 65534, "landlock_fs"), "uid"),
        (report("L1", 0, "landlock_fs"), "landlock"),
        (report("L0", 65534), "process"),
        (report("none", 0), "none"),
    ],
)
def test_the_runner_names_its_sandbox_as_policies_rank_it(
    sandbox: IsolationReport, name: str
) -> None:
    assert isolation_name(sandbox) == name
    assert name == "none" or name in ISOLATION_ORDER


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
