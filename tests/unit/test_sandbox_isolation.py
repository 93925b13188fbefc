"""sandbox.isolation: the policy a host gets, and what a probe child's findings let us claim."""

from __future__ import annotations

from typing import Any

import pytest

import fulmen.sandbox
from fulmen.sandbox.isolation import HostFacts, Policy, assess, decide_policy

MIB = 1024 * 1024


def facts(**overrides: Any) -> HostFacts:
    values: dict[str, Any] = {
        "euid": 0,
        "landlock_abi": 7,
        "cap_last": 40,
        "unprivileged_uid": 65534,
        "uid_reachable": False,
        "uid_detail": "/root/.pyenv: Permission denied",
    }
    return HostFacts(**(values | overrides))


def test_root_with_a_reachable_interpreter_switches_uid() -> None:
    policy = decide_policy(facts(uid_reachable=True))
    assert (policy.uid, policy.drop_capabilities, policy.landlock_abi) == (65534, True, 7)


def test_root_with_an_unreachable_interpreter_keeps_uid_0_without_capabilities() -> None:
    policy = decide_policy(facts())
    assert (policy.uid, policy.drop_capabilities) == (None, True)
    assert "/root/.pyenv: Permission denied" in policy.reason


def test_non_root_keeps_its_uid() -> None:
    policy = decide_policy(facts(euid=1000))
    assert (policy.uid, policy.drop_capabilities) == (None, False)


@pytest.mark.parametrize(
    ("abi", "use", "expected_abi", "reason"),
    [
        (7, True, 7, ""),
        (7, False, 0, "turned off by configuration"),
        (0, True, 0, "the kernel does not offer Landlock"),
    ],
)
def test_landlock_follows_the_kernel_and_the_setting(
    abi: int, use: bool, expected_abi: int, reason: str
) -> None:
    policy = decide_policy(facts(landlock_abi=abi), use_landlock=use)
    assert (policy.landlock_abi, policy.landlock_reason) == (expected_abi, reason)


def test_policy_survives_the_control_socket() -> None:
    policy = decide_policy(facts())
    assert Policy.from_record(policy.to_record()) == policy


EXPECTED: dict[str, list[int | None] | None] = {
    "as": None,
    "cpu": [20, 21],
    "nofile": [64, 64],
    "nproc": [64, 64],
    "fsize": [8 * MIB, 8 * MIB],
    "core": [0, 0],
}


def findings(**overrides: Any) -> dict[str, Any]:
    """What a fully hardened uid-0 child reports on this kind of host."""
    values: dict[str, Any] = {
        "uid": 0,
        "env": ["HOME", "LANG", "PATH", "TMPDIR"],
        "sid_is_pid": True,
        "pgid_is_pid": True,
        "fds": [0, 1, 2, 3],
        "rlimits": {
            "as": [300 * MIB, 300 * MIB],
            "cpu": [20, 21],
            "nofile": [64, 64],
            "nproc": [64, 64],
            "fsize": [8 * MIB, 8 * MIB],
            "core": [0, 0],
        },
        "no_new_privs": 1,
        "dumpable": 0,
        "caps": {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0},
        "worker_environ": "denied",
        "worker_mem": "denied",
        "outside_read": "denied",
        "outside_write": "denied",
        "signal_worker": "denied",
        "abstract_connect": "denied",
    }
    return values | overrides


def test_everything_seen_to_hold_is_level_1() -> None:
    report = assess(decide_policy(facts()), findings(), EXPECTED)
    assert report.level == "L1"
    assert all(m.applied for m in report.mechanisms)
    assert report.uid == 0 and report.landlock_abi == 7


@pytest.mark.parametrize(
    ("overrides", "level", "failed"),
    [
        ({"outside_read": "allowed"}, "L0", "landlock_fs"),
        ({"outside_write": "allowed"}, "L0", "landlock_fs"),
        ({"signal_worker": "allowed"}, "L1", "landlock_scope"),
        ({"env": ["HOME", "PATH", "WORKER_SECRET"]}, "none", "environment"),
        ({"fds": [0, 1, 2, 3, 7]}, "none", "file_descriptors"),
        ({"worker_environ": "allowed"}, "none", "worker_process"),
        ({"dumpable": 1}, "none", "not_dumpable"),
        ({"caps": {"CapInh": 0, "CapPrm": 1, "CapEff": 1, "CapBnd": 0}}, "none", "privileges"),
        ({"sid_is_pid": False}, "none", "session"),
        ({"no_new_privs": 0}, "none", "no_new_privs"),
    ],
)
def test_a_mechanism_not_seen_is_not_claimed(
    overrides: dict[str, Any], level: str, failed: str
) -> None:
    report = assess(decide_policy(facts()), findings(**overrides), EXPECTED)
    assert report.level == level
    assert not report.applied(failed)
    assert [m.name for m in report.mechanisms if not m.applied] == [failed]


def test_rlimits_must_be_as_requested() -> None:
    seen = findings()
    seen["rlimits"] = seen["rlimits"] | {"nofile": [1024, 4096]}
    report = assess(decide_policy(facts()), seen, EXPECTED)
    detail = next(m.detail for m in report.mechanisms if m.name == "rlimits")
    assert report.level == "none" and "nofile=[1024, 4096]" in detail


def test_without_landlock_the_report_says_why() -> None:
    policy = decide_policy(facts(landlock_abi=0))
    report = assess(policy, findings(outside_read="allowed", outside_write="allowed"), EXPECTED)
    assert report.level == "L0"
    assert "the kernel does not offer Landlock" in report.describe()


def test_public_surface() -> None:
    assert sorted(fulmen.sandbox.__all__) == [
        "ChildExit",
        "DEFAULT_PRELOAD",
        "ExitKind",
        "IsolationReport",
        "LEVELS",
        "Limits",
        "Mechanism",
        "RunHandle",
        "Zygote",
    ]
