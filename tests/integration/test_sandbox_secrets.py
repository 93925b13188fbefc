"""What job code must not reach, each tried for real from inside a child (issue 2, "Sandbox").

The worker's environment, its ``/proc/<pid>/environ`` and memory, files the worker can read
outside the run directory, and another run's directory. Plus: the isolation report claims
exactly what holds, with Landlock and without it, as uid 0 and as a separate uid.

By default a run has namespaces of its own (namespaces.py): what it must not reach is mostly
not there at all (ENOENT, ESRCH) rather than refused. ``use_namespaces=False`` gives the
older barriers, Landlock and the uid, whose refusals the tests check too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sysconfig
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fulmen.errors import SandboxError
from fulmen.sandbox import IsolationReport, Limits, Zygote
from fulmen.sandbox.isolation import L0_MECHANISMS, L2_MECHANISMS, L3_MECHANISMS
from fulmen.sandbox.namespaces import SANDBOX_RUN_DIR

TESTS = str(Path(__file__).resolve().parents[1])
E = "sandbox_entries.entries:"
T = TypeVar("T")


def with_zygote(scenario: Callable[[Zygote], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with await Zygote.start(
            extra_sys_path=[TESTS, *options.pop("path", ())], **options
        ) as zygote:
            async with asyncio.timeout(30):
                return await scenario(zygote)

    return asyncio.run(main())


async def observe(zygote: Zygote, entry: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``entry`` and return its single event, checking that it ended well."""
    handle = await zygote.run(E + entry, payload, Limits(timeout_s=20))
    events = [event async for event in handle]
    assert handle.exit.kind == "ok", handle.exit
    assert len(events) == 1
    return events[0]


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"s3cret-{secrets.token_hex(8)}"
    monkeypatch.setenv("FULMEN_TEST_WORKER_SECRET", value)
    return value


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file the worker can read (world-readable, even), outside any run directory."""
    path = tmp_path / "worker-secret.txt"
    path.write_text("the worker's secret\n")
    path.chmod(0o644)
    return path


# -- the worker's environment and process -------------------------------------------------


def test_worker_environment_reaches_neither_zygote_nor_child(secret_env: str) -> None:
    async def scenario(zygote: Zygote) -> None:
        me = await observe(zygote, "whoami", {})
        assert "FULMEN_TEST_WORKER_SECRET" not in me["environ"]
        assert secret_env not in repr(me["environ"])
        assert set(me["environ"]) <= {"PATH", "LANG", "HOME", "TMPDIR"}
        # And the zygote, which every child is a copy of, never had it either.
        assert zygote.pid is not None
        with open(f"/proc/{zygote.pid}/environ", "rb") as f:
            assert secret_env.encode() not in f.read()

    with_zygote(scenario)


@pytest.mark.parametrize(
    ("use_namespaces", "use_landlock"),
    [(True, True), (False, True), (False, False)],
    ids=["namespaces", "landlock", "capabilities-only"],
)
def test_worker_proc_environ_and_memory_are_out_of_reach(
    secret_env: str, secret_file: Path, use_namespaces: bool, use_landlock: bool
) -> None:
    # Without Landlock too: a uid-0 child without capabilities (or a child under another uid)
    # fails the kernel's ptrace access check on its own.
    async def scenario(zygote: Zygote) -> None:
        seen = await observe(
            zygote,
            "secrets",
            {
                "worker_pid": os.getpid(),
                "zygote_pid": zygote.pid,
                "secret_value": secret_env,
                "secret_file": str(secret_file),
            },
        )
        assert seen["environ_has_secret"] is False
        assert seen["own_environ_has_secret"] is False
        assert seen["ptrace_worker"] == os.strerror(1)  # EPERM (with namespaces: seccomp)
        if use_namespaces:  # the worker and the zygote have no pid in the run's namespace
            assert seen["worker_environ"] == "FileNotFoundError"
            assert seen["worker_mem"] == "FileNotFoundError"
            assert seen["zygote_environ"] == "FileNotFoundError"
            assert seen["signal_worker"] == "ProcessLookupError"
            return
        assert seen["worker_environ"] == "PermissionError"
        assert seen["worker_mem"] == "PermissionError"
        assert seen["zygote_environ"] == "PermissionError"
        if use_landlock:
            assert seen["signal_worker"] == "PermissionError"  # Landlock ABI 6 scope

    with_zygote(scenario, use_namespaces=use_namespaces, use_landlock=use_landlock)


# -- files --------------------------------------------------------------------------------


def test_files_the_worker_can_read_are_out_of_reach(secret_file: Path) -> None:
    # The run's root holds the interpreter and the libraries: the worker's files are not there.
    async def scenario(zygote: Zygote) -> None:
        if not zygote.isolation.applied("mount_namespace"):
            pytest.skip(f"no mount namespace here: {zygote.isolation.summary()}")
        seen = await observe(zygote, "read_file", {"path": str(secret_file)})
        assert seen == {
            "read": "FileNotFoundError",
            "list": "FileNotFoundError",
            "write_beside": "FileNotFoundError",
        }
        etc = await observe(zygote, "read_file", {"path": "/etc/passwd"})
        assert etc["read"] == "FileNotFoundError"
        assert etc["list"] == "PermissionError"  # Landlock: /etc is only a path to binds
        assert etc["write_beside"] == "OSError"  # EROFS: the root is read-only

    with_zygote(scenario)


def test_without_namespaces_landlock_keeps_the_worker_files_out_of_reach(
    secret_file: Path,
) -> None:
    async def scenario(zygote: Zygote) -> None:
        if not zygote.isolation.applied("landlock_fs"):
            pytest.skip(f"no Landlock here: {zygote.isolation.summary()}")
        seen = await observe(zygote, "read_file", {"path": str(secret_file)})
        assert seen == {
            "read": "PermissionError",
            "list": "PermissionError",
            "write_beside": "PermissionError",
        }
        etc = await observe(zygote, "read_file", {"path": "/etc/passwd"})
        assert etc["read"] == "PermissionError"

    with_zygote(scenario, use_namespaces=False)


@pytest.mark.parametrize("use_namespaces", [True, False], ids=["namespaces", "landlock"])
def test_another_runs_directory_is_out_of_reach(use_namespaces: bool) -> None:
    async def scenario(zygote: Zygote) -> None:
        if not zygote.isolation.applied("landlock_fs"):
            pytest.skip(f"no Landlock here: {zygote.isolation.summary()}")
        keeper = await zygote.run(E + "keep_secret_then_wait", {"secret": "run A's"}, Limits())
        kept = await anext(keeper)
        assert kept["read_own"] == "run A's"
        seen = await observe(zygote, "read_file", {"path": kept["path"]})
        if use_namespaces:
            # The same path in every run, each its own tmpfs: run A's file is not in B's, and
            # a third run, while A still holds its file, sees neither A's nor B's.
            assert os.path.dirname(kept["path"]) == SANDBOX_RUN_DIR
            assert seen == {"read": "FileNotFoundError", "list": "ok", "write_beside": "ok"}
            listed = await observe(zygote, "listdir", {"path": SANDBOX_RUN_DIR})
            assert listed == {"names": []}
        else:
            assert seen == {
                "read": "PermissionError",
                "list": "PermissionError",
                "write_beside": "PermissionError",
            }
        keeper.kill()
        assert (await keeper.wait()).kind == "killed"

    with_zygote(scenario, use_namespaces=use_namespaces)


# -- the report ---------------------------------------------------------------------------


def _level_of(report: IsolationReport) -> str:
    """The level the mechanisms seen to hold make (isolation.py's module docstring)."""
    held = {m.name for m in report.mechanisms if m.applied}
    if not held.issuperset(L0_MECHANISMS):
        return "none"
    if held.issuperset(L2_MECHANISMS + L3_MECHANISMS):
        return "L3"
    if held.issuperset(L2_MECHANISMS):
        return "L2"
    return "L1" if "landlock_fs" in held else "L0"


@pytest.mark.parametrize("use_namespaces", [True, False], ids=["namespaces", "no-namespaces"])
def test_report_on_this_host_names_every_mechanism(use_namespaces: bool) -> None:
    async def scenario(zygote: Zygote) -> None:
        report = zygote.isolation
        names = [m.name for m in report.mechanisms]
        assert names == [
            "environment",
            "session",
            "file_descriptors",
            "rlimits",
            "no_new_privs",
            "not_dumpable",
            "privileges",
            "worker_process",
            "landlock_fs",
            "landlock_scope",
            "user_namespace",
            "pid_namespace",
            "mount_namespace",
            "seccomp",
            "cgroup",
            "network",
        ]
        assert report.level == _level_of(report), report.describe()
        assert report.summary().startswith(f"isolation {report.level}")
        privileges = next(m for m in report.mechanisms if m.name == "privileges")
        if report.applied("user_namespace"):
            assert report.uid >= 200_000  # Zygote.start's uid_base
            assert privileges.detail == f"host uid {report.uid}, no capabilities"
        elif os.geteuid() == 0 and report.uid == 0:
            # Without capabilities, but still the owner of root's files: not unprivileged.
            assert not privileges.applied and "without any capability" in privileges.detail
            assert report.level == "none"
        if not use_namespaces:
            assert not any(report.applied(name) for name in L2_MECHANISMS + L3_MECHANISMS)

    with_zygote(scenario, use_namespaces=use_namespaces)


@pytest.mark.parametrize("use_namespaces", [True, False], ids=["namespaces", "no-namespaces"])
def test_report_without_landlock_claims_no_landlock_and_it_really_is_off(
    secret_file: Path, use_namespaces: bool
) -> None:
    async def scenario(zygote: Zygote) -> None:
        report = zygote.isolation
        assert not report.applied("landlock_fs")
        assert not report.applied("landlock_scope")
        assert report.level == _level_of(report)
        if use_namespaces:
            # The levels above L1 do not count Landlock; and with it off, the directories of
            # the run's root it would refuse to list can be listed.
            etc = await observe(zygote, "read_file", {"path": "/etc/passwd"})
            assert etc["list"] == "ok"  # what the report says is what a job can do
        else:
            assert report.level in ("L0", "none")
            seen = await observe(zygote, "read_file", {"path": str(secret_file)})
            assert seen["read"] == "ok"  # what the report says is what a job can do

    with_zygote(scenario, use_landlock=False, use_namespaces=use_namespaces)


def test_minimum_level_refuses_a_weaker_sandbox() -> None:
    async def scenario() -> None:
        with pytest.raises(SandboxError, match="isolation none, below the L1 asked for"):
            await Zygote.start(
                extra_sys_path=[TESTS],
                use_landlock=False,
                use_namespaces=False,
                minimum_level="L1",
            )
        with pytest.raises(SandboxError, match=r"isolation L2, below the L3 .* Missing: cgroup"):
            await Zygote.start(extra_sys_path=[TESTS], use_cgroups=False, minimum_level="L3")

    asyncio.run(scenario())


# -- a separate uid, when the interpreter is reachable by it ------------------------------


def _system_python() -> str | None:
    """A 3.11 interpreter outside /root, which uid 65534 can read, or None."""
    python = shutil.which("python3.11", path="/usr/bin")
    if python is None:
        return None
    probe = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return python if probe.stdout.strip() == "True" else None


def _others_can_read(path: str) -> bool:
    """Every folder from / down to ``path`` lets any uid through, and ``path`` be read."""
    parts = Path(path).resolve().parts
    for depth in range(1, len(parts) + 1):
        mode = Path(*parts[:depth]).stat().st_mode
        if not mode & 0o001 or (depth == len(parts) and not mode & 0o004):
            return False
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")
def test_root_worker_runs_children_under_a_separate_uid(secret_file: Path) -> None:
    python = _system_python()
    if python is None:
        pytest.skip("no system Python 3.11 readable by an unprivileged uid")
    # The project's dependencies (orjson) from the venv, when it lives where uid 65534 can
    # read it (not in a checkout under /root, which is 0700 here).
    site_packages = sysconfig.get_paths()["purelib"]
    if not _others_can_read(site_packages):
        pytest.skip(f"uid 65534 cannot read {site_packages}: the venv lies under a 0700 folder")
    secret_file.chmod(0o600)

    async def scenario(zygote: Zygote) -> None:
        assert zygote.isolation.uid == 65534, zygote.isolation.describe()
        assert zygote.isolation.level in ("L0", "L1")  # the uid switch needs no namespace
        me = await observe(zygote, "whoami", {})
        assert me["uid"] == 65534
        assert me["fds"] == [0, 1, 2, 3]
        seen = await observe(zygote, "read_file", {"path": str(secret_file)})
        assert seen["read"] == "PermissionError"
        probe = await observe(
            zygote,
            "secrets",
            {"worker_pid": os.getpid(), "secret_value": "x" * 40, "secret_file": "/nope"},
        )
        assert probe["worker_environ"] == probe["worker_mem"] == "PermissionError"

    with_zygote(scenario, python=python, path=[site_packages], use_namespaces=False)
