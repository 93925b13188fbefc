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
- ``L2``: L0 plus a user namespace mapping to an unprivileged host id that no other run
  uses, a pid namespace, a mount namespace holding only the interpreter, the libraries and
  the run's own tmpfs, and a seccomp filter (issue 12).
- ``L3``: L2 plus a cgroup per run (memory for all its processes, pids, CPU weight) and a
  network namespace that does not reach the host's loopback.
- ``none``: some L0 mechanism was not seen to hold; do not run untrusted code.

A level is reached only when each of its mechanisms was seen to hold; :meth:`missing` names
what keeps a report from the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "L0_MECHANISMS",
    "L2_MECHANISMS",
    "L3_MECHANISMS",
    "LEVELS",
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
L2_MECHANISMS: Final = (
    "user_namespace",
    "pid_namespace",
    "mount_namespace",
    "seccomp",
)
L3_MECHANISMS: Final = ("cgroup", "network")
LEVELS: Final = ("none", "L0", "L1", "L2", "L3")
"""Isolation levels, weakest first."""


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
    userns_detail: str = "not probed"
    """Empty when a user namespace can be made; otherwise why not."""


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
    namespaces: bool = False
    """Each spare enters its own user, pid, mount, IPC and UTS namespaces (``namespaces.py``)."""
    namespaces_reason: str = ""
    uid_base: int = 0
    """Run *n* of those alive at once is host uid ``uid_base + n`` (namespaces only)."""
    cgroup: str = ""
    """Where the runs' cgroups are (``cgroups.CgroupTree.describe``), or empty."""
    cgroup_reason: str = ""
    seccomp: bool = False
    seccomp_reason: str = ""
    network: str = "host"
    """``outside``, ``none`` or ``host`` (``network.py``)."""
    network_detail: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "drop_capabilities": self.drop_capabilities,
            "landlock_abi": self.landlock_abi,
            "cap_last": self.cap_last,
            "reason": self.reason,
            "landlock_reason": self.landlock_reason,
            "namespaces": self.namespaces,
            "namespaces_reason": self.namespaces_reason,
            "uid_base": self.uid_base,
            "cgroup": self.cgroup,
            "cgroup_reason": self.cgroup_reason,
            "seccomp": self.seccomp,
            "seccomp_reason": self.seccomp_reason,
            "network": self.network,
            "network_detail": self.network_detail,
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
            namespaces=bool(record.get("namespaces", False)),
            namespaces_reason=str(record.get("namespaces_reason", "")),
            uid_base=int(record.get("uid_base", 0)),
            cgroup=str(record.get("cgroup", "")),
            cgroup_reason=str(record.get("cgroup_reason", "")),
            seccomp=bool(record.get("seccomp", False)),
            seccomp_reason=str(record.get("seccomp_reason", "")),
            network=str(record.get("network", "host")),
            network_detail=str(record.get("network_detail", "")),
        )


def decide_policy(
    facts: HostFacts, *, use_landlock: bool = True, use_namespaces: bool = True
) -> Policy:
    """The strongest policy the host allows (Landlock and namespaces can be turned off).

    With namespaces the child never changes uid itself: uid 0 of its user namespace is an
    unprivileged host id. Cgroups, seccomp and the network are settled by the zygote once it
    knows namespaces are on (they need the namespaces to mean anything).
    """
    if use_namespaces and not facts.userns_detail:
        abi, landlock_reason = _landlock(facts, use_landlock)
        return Policy(
            None,
            True,
            abi,
            facts.cap_last,
            "uid 0 of the run's own user namespace, an unprivileged host uid",
            landlock_reason,
            namespaces=True,
        )
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
    abi, landlock_reason = _landlock(facts, use_landlock)
    namespaces_reason = facts.userns_detail if use_namespaces else "turned off by configuration"
    return Policy(
        uid, drop, abi, facts.cap_last, reason, landlock_reason, namespaces_reason=namespaces_reason
    )


def _landlock(facts: HostFacts, use_landlock: bool) -> tuple[int, str]:
    if not use_landlock:
        return 0, "turned off by configuration"
    if facts.landlock_abi == 0:
        return 0, "the kernel does not offer Landlock"
    return facts.landlock_abi, ""


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

    def missing(self, level: str) -> list[Mechanism]:
        """The mechanisms ``level`` needs that did not hold here (none when it is reached)."""
        needed = list(L0_MECHANISMS)
        if level == "L1":
            needed.append("landlock_fs")
        elif level in ("L2", "L3"):
            needed += L2_MECHANISMS
        if level == "L3":
            needed += L3_MECHANISMS
        by_name = {m.name: m for m in self.mechanisms}
        return [
            by_name.get(name, Mechanism(name, False, "not reported"))
            for name in needed
            if not self.applied(name)
        ]

    def summary(self) -> str:
        """One line: the level, the mechanisms that hold, and what keeps it from L3."""
        held = ", ".join(m.name for m in self.mechanisms if m.applied) or "nothing"
        line = f"isolation {self.level} (host uid {self.uid}; {held})"
        if self.level != "L3":
            short = ", ".join(m.name for m in self.missing("L3"))
            line += f"; missing for L3: {short}"
        return line

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
    namespaced = policy.namespaces
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
        *_namespaces(policy, findings),
        _seccomp(policy, findings),
        _cgroup(policy, findings),
        _network(policy, findings),
    )
    applied = {m.name for m in mechanisms if m.applied}
    if not applied.issuperset(L0_MECHANISMS):
        level = "none"
    elif applied.issuperset(L2_MECHANISMS + L3_MECHANISMS):
        level = "L3"
    elif applied.issuperset(L2_MECHANISMS):
        level = "L2"
    elif "landlock_fs" in applied:
        level = "L1"
    else:
        level = "L0"
    host_uid = (
        int(findings.get("host_uid", findings["uid"])) if namespaced else int(findings["uid"])
    )
    return IsolationReport(level, mechanisms, host_uid, policy.landlock_abi)


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
    if findings.get("host_uid", findings["uid"]) == 0:
        detail += " (the kernel does not apply NPROC to uid 0)"
    return Mechanism("rlimits", True, detail)


def _privileges(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    """Held only with no capability *and* a host uid other than 0: uid 0 without
    capabilities still owns root's files, so it can chmod them (issue 12)."""
    caps: Mapping[str, int] = findings["caps"]
    held = ", ".join(f"{k}={v:#x}" for k, v in sorted(caps.items()) if v)
    host_uid = findings.get("host_uid", findings["uid"])
    if held:
        return Mechanism("privileges", False, f"host uid {host_uid} holds capabilities ({held})")
    if host_uid == 0:
        return Mechanism(
            "privileges",
            False,
            "the child is host uid 0: without capabilities it still owns root's files "
            f"({policy.reason})",
        )
    return Mechanism("privileges", True, f"host uid {host_uid}, no capabilities")


def _worker_process(findings: Mapping[str, Any]) -> Mechanism:
    environ, mem = findings["worker_environ"], findings["worker_mem"]
    ok = _denied(environ) and _denied(mem)
    return Mechanism(
        "worker_process", ok, f"/proc/<worker>/environ: {environ}, /proc/<worker>/mem: {mem}"
    )


def _denied(result: str) -> bool:
    """An attempt failed for want of permission, or because the target is not there to see
    (a namespace hides it: ENOENT, or ECONNREFUSED for a port that exists only outside)."""
    return result in (
        "denied",
        "error: ENOENT",
        "error: ESRCH",
        "error: ECONNREFUSED",
        "error: ENETUNREACH",
        "error: EROFS",
    )


def _namespaces(policy: Policy, findings: Mapping[str, Any]) -> tuple[Mechanism, ...]:
    if not policy.namespaces:
        reason = policy.namespaces_reason or "not available"
        return tuple(
            Mechanism(name, False, reason)
            for name in ("user_namespace", "pid_namespace", "mount_namespace")
        )
    uid_map = str(findings.get("uid_map", "")).split()
    host_uid = findings.get("host_uid")
    user = Mechanism(
        "user_namespace",
        len(uid_map) == 3 and uid_map[0] == "0" and host_uid not in (None, 0),
        f"uid_map {' '.join(uid_map) or 'absent'}",
    )
    pids = findings.get("visible_pids")
    listed = "cannot be listed" if pids is None else f"lists {len(pids)} process(es)"
    pid = Mechanism(
        "pid_namespace",
        findings.get("pid") == 1
        and (pids is None or (1 in pids and len(pids) <= 2))
        and _denied(findings["signal_worker"]),
        f"pid {findings.get('pid')}, /proc {listed}, "
        f"signalling the worker: {findings['signal_worker']}",
    )
    outside = findings["outside_read"]
    chmod = findings.get("chmod_host", "allowed")
    mount = Mechanism(
        "mount_namespace",
        _denied(outside) and _denied(chmod) and _denied(findings.get("root_writable", "")),
        f"a worker file: {outside}; chmod of a host file: {chmod}; "
        f"writing the root: {findings.get('root_writable')}",
    )
    return user, pid, mount


def _seccomp(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    if not policy.seccomp:
        return Mechanism("seccomp", False, policy.seccomp_reason or "not available")
    mode, unshare = findings.get("seccomp_mode"), findings.get("unshare", "allowed")
    return Mechanism(
        "seccomp",
        mode == 2 and _denied(unshare),
        f"mode {mode}; a new user namespace: {unshare}",
    )


def _cgroup(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    if not policy.cgroup:
        return Mechanism("cgroup", False, policy.cgroup_reason or "not available")
    check = findings.get("cgroup_check", "")
    return Mechanism("cgroup", check == "held", f"{policy.cgroup}: {check}")


def _network(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    if policy.network == "host":
        return Mechanism(
            "network", False, policy.network_detail or "the host's network, loopback included"
        )
    loopback = findings.get("worker_port", "allowed")
    return Mechanism(
        "network",
        _denied(loopback) or loopback.startswith("error"),
        f"{policy.network}: {policy.network_detail}; the worker's loopback port: {loopback}",
    )


def _landlock_fs(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    """Only Landlock's own refusal counts (EACCES): with namespaces the worker's files are
    simply not there, which says nothing about Landlock, so the probe lists ``/etc``, which
    is there and which no rule grants."""
    if policy.landlock_abi == 0:
        return Mechanism("landlock_fs", False, policy.landlock_reason)
    if policy.namespaces:
        listing = findings.get("list_etc", "allowed")
        return Mechanism(
            "landlock_fs",
            listing == "denied",
            f"ABI {policy.landlock_abi}; listing /etc, which no rule grants: {listing}",
        )
    read, write = findings["outside_read"], findings["outside_write"]
    ok = read == "denied" and write == "denied"
    return Mechanism(
        "landlock_fs",
        ok,
        f"ABI {policy.landlock_abi}; reading outside the run directory: {read}, "
        f"writing outside: {write}",
    )


def _landlock_scope(policy: Policy, findings: Mapping[str, Any]) -> Mechanism:
    """Only Landlock's own refusal counts; behind pid and network namespaces the worker is
    out of sight (ESRCH, ECONNREFUSED) before Landlock is asked, and nothing is claimed."""
    if policy.landlock_abi == 0:
        return Mechanism("landlock_scope", False, policy.landlock_reason)
    if policy.landlock_abi < 6:
        return Mechanism(
            "landlock_scope", False, f"needs Landlock ABI 6, have {policy.landlock_abi}"
        )
    signal, unix = findings["signal_worker"], findings["abstract_connect"]
    ok = signal == "denied" and unix == "denied"
    detail = f"signalling the worker: {signal}, connecting to its abstract socket: {unix}"
    if not ok and _denied(signal) and _denied(unix):
        detail += " (refused by the namespaces first: Landlock's scoping not observed)"
    return Mechanism("landlock_scope", ok, detail)
