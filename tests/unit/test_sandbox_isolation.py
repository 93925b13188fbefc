"""sandbox.isolation: the policy a host gets, and what a probe child's findings let us claim."""

from __future__ import annotations

from typing import Any

import pytest

import fulmen.sandbox
from fulmen.sandbox.isolation import HostFacts, IsolationReport, Policy, assess, decide_policy

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
    """What a fully hardened child under a separate uid reports (no namespaces)."""
    values: dict[str, Any] = {
        "uid": 65534,
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


UID_POLICY = decide_policy(facts(uid_reachable=True))
NOT_WITHOUT_NAMESPACES = [
    "user_namespace",
    "pid_namespace",
    "mount_namespace",
    "seccomp",
    "cgroup",
    "network",
]


def not_applied(report: IsolationReport) -> list[str]:
    return [m.name for m in report.mechanisms if not m.applied]


def test_everything_seen_to_hold_is_level_1() -> None:
    report = assess(UID_POLICY, findings(), EXPECTED)
    assert report.level == "L1"
    assert not_applied(report) == NOT_WITHOUT_NAMESPACES
    assert report.uid == 65534 and report.landlock_abi == 7
    assert "missing for L3: user_namespace" in report.summary()


def test_a_uid_0_child_does_not_hold_privileges_even_without_capabilities() -> None:
    report = assess(decide_policy(facts()), findings(uid=0), EXPECTED)
    assert report.level == "none"
    assert not report.applied("privileges")
    assert "owns root's files" in report.describe()


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
    report = assess(UID_POLICY, findings(**overrides), EXPECTED)
    assert report.level == level
    assert not report.applied(failed)
    assert not_applied(report) == sorted(
        [failed, *NOT_WITHOUT_NAMESPACES], key=[m.name for m in report.mechanisms].index
    )


def test_rlimits_must_be_as_requested() -> None:
    seen = findings()
    seen["rlimits"] = seen["rlimits"] | {"nofile": [1024, 4096]}
    report = assess(UID_POLICY, seen, EXPECTED)
    detail = next(m.detail for m in report.mechanisms if m.name == "rlimits")
    assert report.level == "none" and "nofile=[1024, 4096]" in detail


def test_without_landlock_the_report_says_why() -> None:
    policy = decide_policy(facts(landlock_abi=0, uid_reachable=True))
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


NAMESPACED = Policy.from_record(
    decide_policy(facts(userns_detail="")).to_record()
    | {
        "cgroup": "cgroup v1 (/sys/fs/cgroup/pids/fulmen-7)",
        "seccomp": True,
        "network": "outside",
        "network_detail": "outside world through pasta",
    }
)


def namespaced_findings(**overrides: Any) -> dict[str, Any]:
    """What a level-3 child reports: uid 0 of its namespace, mapped to host uid 200000."""
    values = findings(uid=0, rlimits={k: v for k, v in findings()["rlimits"].items() if k != "as"})
    return (
        values
        | {
            "pid": 1,
            "visible_pids": [1],
            "uid_map": "0 200000 1",
            "host_uid": 200000,
            "chmod_host": "error: EROFS",
            "root_writable": "error: EROFS",
            "list_etc": "denied",
            "seccomp_mode": 2,
            "unshare": "denied",
            "worker_port": "error: ECONNREFUSED",
            "cgroup_check": "held",
            "outside_read": "error: ENOENT",
            "signal_worker": "error: ESRCH",
        }
        | overrides
    )


L3_EXPECTED = {k: v for k, v in EXPECTED.items() if k != "as"}


def test_namespaces_are_chosen_when_the_host_allows_them() -> None:
    assert decide_policy(facts(userns_detail="")).namespaces
    refused = decide_policy(facts(userns_detail="the kernel refused"))
    assert not refused.namespaces and refused.namespaces_reason == "the kernel refused"
    off = decide_policy(facts(userns_detail=""), use_namespaces=False)
    assert not off.namespaces and off.namespaces_reason == "turned off by configuration"


def test_landlock_counts_only_when_it_is_landlock_that_refused() -> None:
    report = assess(NAMESPACED, namespaced_findings(list_etc="allowed"), L3_EXPECTED)
    assert not report.applied("landlock_fs")
    assert report.level == "L3"  # the namespaces hold; Landlock is a second layer


def test_everything_seen_to_hold_with_namespaces_is_level_3() -> None:
    report = assess(NAMESPACED, namespaced_findings(), L3_EXPECTED)
    assert report.level == "L3", report.describe()
    # Behind the namespaces the worker is out of sight before Landlock's scoping is asked:
    # it is not claimed, having not been seen.
    assert not_applied(report) == ["landlock_scope"]
    assert "not observed" in report.describe()
    assert report.uid == 200000
    assert report.missing("L3") == []


@pytest.mark.parametrize(
    ("policy_changes", "overrides", "level", "failed"),
    [
        ({"cgroup": "", "cgroup_reason": "no cgroup controller for pids is mounted"}, {}, "L2",
         "cgroup"),
        ({}, {"cgroup_check": "a process could still fork"}, "L2", "cgroup"),
        ({"network": "host", "network_detail": "asked for"}, {}, "L2", "network"),
        ({}, {"worker_port": "allowed"}, "L2", "network"),
        ({"seccomp": False, "seccomp_reason": "cannot build the filter"}, {}, "L1", "seccomp"),
        ({}, {"unshare": "allowed"}, "L1", "seccomp"),
        ({}, {"pid": 4242}, "L1", "pid_namespace"),
        ({}, {"visible_pids": [1, 2, 3, 57, 99]}, "L1", "pid_namespace"),
        ({}, {"chmod_host": "allowed"}, "L1", "mount_namespace"),
        ({}, {"uid_map": "0 0 4294967295", "host_uid": 0}, "none", "user_namespace"),
    ],
)  # fmt: skip
def test_at_lower_levels_the_report_names_what_is_missing(
    policy_changes: dict[str, Any], overrides: dict[str, Any], level: str, failed: str
) -> None:
    policy = Policy.from_record(NAMESPACED.to_record() | policy_changes)
    report = assess(policy, namespaced_findings(**overrides), L3_EXPECTED)
    assert report.level == level, report.describe()
    assert failed in [m.name for m in report.missing("L3")]
    if "reason" in " ".join(policy_changes):
        assert next(iter(v for k, v in policy_changes.items() if k.endswith("reason"))) in (
            report.describe()
        )
