"""What isolation a child gets: the policy the zygote applies, and the report of what held.

Two pure decisions (STYLE.md P4), kept apart from the code that gathers their inputs:

- :func:`decide_policy`: from the host's facts (probed once by the zygote at start), which
  mechanisms every child will apply.
- :func:`assess`: from what a real probe child *observed* about itself after hardening, what
  to claim. A mechanism is reported as applied only when its effect was seen, e.g. Landlock
  counts only if reading a file outside the run directory actually failed. Never claim more
  (issue 2, "Sandbox").

Levels follow stack-research §3.4:

- ``L0``: process isolation every Linux host allows: own session, scrubbed environment, no
  inherited descriptors, rlimits, no-new-privileges, not dumpable, and no privilege over the
  worker (separate uid, or uid 0 with every capability dropped), so ``/proc/<worker>`` is shut.
- ``L1``: L0 plus a Landlock filesystem allowlist (read-only interpreter and libraries,
  read-write run directory only).
- ``none``: some L0 mechanism was not seen to hold; do not run untrusted code.

Namespaces (L2) and cgroups (L3) are not implemented yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "L0_MECHANISMS",
    "RUN_ENVIRONMENT_NAMES",
    "ZYGOTE_ENVIRONMENT",
    "HostFacts",
    "IsolationReport",
    "Mechanism",
    "Policy",
    "assess",
    "decide_policy",
]

ZYGOTE_ENVIRONMENT: Final[Mapping[str, str]] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",  # so Python does not coerce the C locale and set LC_CTYPE itself
}
"""The zygote's whole environment: nothing of the worker's, which holds its secrets."""

RUN_ENVIRONMENT_NAMES: Final = ("HOME", "TMPDIR")
"""Variables each child adds, both pointing at its run directory."""

L0_MECHANISMS: Final = (
    "environment",
    "session",
    "file_descriptors",
    "rlimits",
    "no_new_privs",
    "not_dumpable",
    "privileges",
    "worker_process",
)


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the zygote found about the host at start."""

    euid: int
    landlock_abi: int
    cap_last: int
    unprivileged_uid: int
    uid_reachable: bool
    """Whether ``unprivileged_uid`` can read the interpreter and every ``sys.path`` entry."""
    uid_detail: str


@dataclass(frozen=True, slots=True)
class Policy:
    """What every child applies to itself after fork."""

    uid: int | None
    """Switch to this uid (and gid), or stay as we are."""
    drop_capabilities: bool
    """Empty bounding, ambient, effective, permitted and inheritable sets (root only)."""
    landlock_abi: int
    """Landlock ABI to use; 0 for none."""
    cap_last: int
    reason: str
    """Why this uid choice, for the report."""
    landlock_reason: str = ""
    """Why Landlock is off, when it is."""

    def to_record(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "drop_capabilities": self.drop_capabilities,
            "landlock_abi": self.landlock_abi,
            "cap_last": self.cap_last,
            "reason": self.reason,
            "landlock_reason": self.landlock_reason,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Policy:
        uid = record["uid"]
        return cls(
            uid=None if uid is None else int(uid),
            drop_capabilities=bool(record["drop_capabilities"]),
            landlock_abi=int(record["landlock_abi"]),
            cap_last=int(record["cap_last"]),
            reason=str(record["reason"]),
            landlock_reason=str(record["landlock_reason"]),
        )


def decide_policy(facts: HostFacts, *, use_landlock: bool = True) -> Policy:
    """The strongest policy the host allows (Landlock can be turned off by configuration)."""
    if facts.euid != 0:
        uid, drop, reason = None, False, "worker is not root: the child keeps the worker's uid"
    elif facts.uid_reachable:
        uid, drop = facts.unprivileged_uid, True
        reason = f"worker is root: the child runs as uid {facts.unprivileged_uid}"
    else:
        uid, drop = None, True
        reason = (
            f"worker is root but uid {facts.unprivileged_uid} cannot reach the interpreter "
            f"({facts.uid_detail}): the child keeps uid 0 without any capability"
        )
    if not use_landlock:
        abi, landlock_reason = 0, "turned off by configuration"
    elif facts.landlock_abi == 0:
        abi, landlock_reason = 0, "the kernel does not offer Landlock"
    else:
        abi, landlock_reason = facts.landlock_abi, ""
    return Policy(uid, drop, abi, facts.cap_last, reason, landlock_reason)


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One isolation mechanism: whether its effect was observed, and the evidence."""

    name: str
    applied: bool
    detail: str


@dataclass(frozen=True, slots=True)
class IsolationReport:
    """The isolation each child gets on this host, as verified by a probe child."""

    level: str
    mechanisms: tuple[Mechanism, ...]
    uid: int
    landlock_abi: int

    def applied(self, name: str) -> bool:
        """Whether mechanism ``name`` was seen to hold (False for unknown names)."""
        return any(m.name == name and m.applied for m in self.mechanisms)

    def summary(self) -> str:
        """One line: the level and the mechanisms that hold."""
        held = ", ".join(m.name for m in self.mechanisms if m.applied) or "nothing"
        return f"isolation {self.level} (uid {self.uid}; {held})"

    def describe(self) -> str:
        """Several lines for a log or the dashboard."""
        lines = [f"sandbox isolation level {self.level}"]
        for m in self.mechanisms:
            lines.append(f"  [{'x' if m.applied else ' '}] {m.name}: {m.detail}")
        return "\n".join(lines)


def assess(
    policy: Policy,
    findings: Mapping[str, Any],
    expected_rlimits: Mapping[str, list[int | None] | None],
) -> IsolationReport:
    """Turn a probe child's observations into a report; see the module docstring for levels.

    Args:
        policy: what the children were told to apply (only used to explain).
        findings: what ``fulmen.sandbox.probe.verify`` emitted.
        expected_rlimits: ``{name: [soft, hard]}`` the probe run's limits should give
            (``None`` for infinity); a value of ``None`` means "any finite limit".
    """
    mechanisms = (
        _environment(findings),
        _session(findings),
        _descriptors(findings),
        _rlimits(findings, expected_rlimits),
        _flag("no_new_privs", findings["no_new_privs"] == 1, "PR_SET_NO_NEW_PRIVS is set"),
        _flag("not_dumpable", findings["dumpable"] == 0, "PR_SET_DUMPABLE is 0"),
        _privileges(policy, findings),
        _worker_process(findings),
        _landlock_fs(policy, findings),
        _landlock_scope(policy, findings),
    )
    applied = {m.name for m in mechanisms if m.applied}
    if not applied.issuperset(L0_MECHANISMS):
        level = "none"
    elif "landlock_fs" in applied:
        level = "L1"
    else:
        level = "L0"
    return IsolationReport(level, mechanisms, int(findings["uid"]), policy.landlock_abi)


def _flag(name: str, ok: bool, detail: str) -> Mechanism:
    return Mechanism(name, ok, detail if ok else f"not in effect (expected: {detail})")


def _environment(findings: Mapping[str, Any]) -> Mechanism:
    names = set(findings["env"])
    allowed = set(ZYGOTE_ENVIRONMENT) | set(RUN_ENVIRONMENT_NAMES)
    extra = sorted(names - allowed)
    if extra:
        return Mechanism("environment", False, f"unexpected variables: {', '.join(extra)}")
    return Mechanism("environment", True, f"only {', '.join(sorted(names))}")


def _session(findings: Mapping[str, Any]) -> Mechanism:
    ok = bool(findings["sid_is_pid"] and findings["pgid_is_pid"])
    return _flag("session", ok, "own session and process group")


def _descriptors(findings: Mapping[str, Any]) -> Mechanism:
    fds = sorted(findings["fds"])
    return _flag("file_descriptors", fds == [0, 1, 2, 3], f"open descriptors {fds}")


def _rlimits(
    findings: Mapping[str, Any], expected: Mapping[str, list[int | None] | None]
) -> Mechanism:
    seen: Mapping[str, list[int | None]] = findings["rlimits"]
    wrong = []
    for name, value in expected.items():
        soft, hard = seen.get(name, [None, None])
        # None expected: the value depends on the child's baseline; it must just be finite.
        ok = soft is not None and hard is not None if value is None else [soft, hard] == value
        if not ok:
            wrong.append(f"{name}={[soft, hard]}")
    if wrong:
        return Mechanism("rlimits", False, f"not as requested: {', '.join(wrong)}")
    detail = ", ".join(sorted(expected))
    if findings["uid"] == 0:
        detail += " (the kernel does not apply NPROC to uid 0)"
    return Mechanism("rlimits", True, detail)


def _privileges(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    caps: Mapping[str, int] = findings["caps"]
    no_caps = not any(caps.values())
    if findings["uid"] != 0:
        return _flag("privileges", no_caps, f"uid {findings['uid']}, no capabilities")
    if no_caps:
        return Mechanism("privileges", True, policy.reason)
    held = ", ".join(f"{k}={v:#x}" for k, v in sorted(caps.items()) if v)
    return Mechanism("privileges", False, f"uid 0 still holds capabilities ({held})")


def _worker_process(findings: Mapping[str, Any]) -> Mechanism:
    environ, mem = findings["worker_environ"], findings["worker_mem"]
    ok = environ == "denied" and mem == "denied"
    return Mechanism(
        "worker_process", ok, f"/proc/<worker>/environ: {environ}, /proc/<worker>/mem: {mem}"
    )


def _landlock_fs(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    if policy.landlock_abi == 0:
        return Mechanism("landlock_fs", False, policy.landlock_reason)
    read, write = findings["outside_read"], findings["outside_write"]
    ok = read == "denied" and write == "denied"
    return Mechanism(
        "landlock_fs",
        ok,
        f"ABI {policy.landlock_abi}; reading outside the run directory: {read}, "
        f"writing outside: {write}",
    )


def _landlock_scope(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    if policy.landlock_abi == 0:
        return Mechanism("landlock_scope", False, policy.landlock_reason)
    if policy.landlock_abi < 6:
        return Mechanism(
            "landlock_scope", False, f"needs Landlock ABI 6, have {policy.landlock_abi}"
        )
    signal, unix = findings["signal_worker"], findings["abstract_connect"]
    ok = signal == "denied" and unix == "denied"
    return Mechanism(
        "landlock_scope",
        ok,
        f"signalling the worker: {signal}, connecting to its abstract socket: {unix}",
    )
