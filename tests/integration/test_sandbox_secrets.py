"""What job code must not reach, each tried for real from inside a child (issue 2, "Sandbox").

The worker's environment, its ``/proc/<pid>/environ`` and memory, files the worker can read
outside the run directory, and another run's directory. Plus: the isolation report claims
exactly what holds, with Landlock and without it, as uid 0 and as a separate uid.
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

from fulmen.sandbox import Limits, Zygote

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


@pytest.mark.parametrize("use_landlock", [True, False], ids=["landlock", "capabilities-only"])
def test_worker_proc_environ_and_memory_are_out_of_reach(
    secret_env: str, secret_file: Path, use_landlock: bool
) -> None:
    # Without Landlock too: a uid-0 child without capabilities (or a child under another uid)
    # fails the kernel's ptrace access check on its own.
    async def scenario(zygote: Zygote) -> None:
        seen = await observe(
            zygote,
            "secrets",
            {
                "worker_pid": os.getpid(),
                "secret_value": secret_env,
                "secret_file": str(secret_file),
            },
        )
        assert seen["environ_has_secret"] is False
        assert seen["own_environ_has_secret"] is False
        assert seen["worker_environ"] == "PermissionError"
        assert seen["worker_mem"] == "PermissionError"
        assert seen["zygote_environ"] == "PermissionError"
        assert seen["ptrace_worker"] == os.strerror(1)  # EPERM
        if use_landlock:
            assert seen["signal_worker"] == "PermissionError"  # Landlock ABI 6 scope

    with_zygote(scenario, use_landlock=use_landlock)


# -- files --------------------------------------------------------------------------------


def test_files_the_worker_can_read_are_out_of_reach(secret_file: Path) -> None:
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

    with_zygote(scenario)


def test_another_runs_directory_is_out_of_reach() -> None:
    async def scenario(zygote: Zygote) -> None:
        if not zygote.isolation.applied("landlock_fs"):
            pytest.skip(f"no Landlock here: {zygote.isolation.summary()}")
        keeper = await zygote.run(E + "keep_secret_then_wait", {"secret": "run A's"}, Limits())
        kept = await anext(keeper)
        assert kept["read_own"] == "run A's"
        seen = await observe(zygote, "read_file", {"path": kept["path"]})
        assert seen == {
            "read": "PermissionError",
            "list": "PermissionError",
            "write_beside": "PermissionError",
        }
        keeper.kill()
        assert (await keeper.wait()).kind == "killed"

    with_zygote(scenario)


# -- the report ---------------------------------------------------------------------------


def test_report_on_this_host_names_every_mechanism() -> None:
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
        ]
        assert report.level in ("L0", "L1")
        assert report.level == ("L1" if report.applied("landlock_fs") else "L0")
        assert report.summary().startswith(f"isolation {report.level}")
        if os.geteuid() == 0 and report.uid == 0:
            detail = next(m.detail for m in report.mechanisms if m.name == "privileges")
            assert "without any capability" in detail

    with_zygote(scenario)


def test_report_without_landlock_claims_no_landlock_and_it_really_is_off(
    secret_file: Path,
) -> None:
    async def scenario(zygote: Zygote) -> None:
        report = zygote.isolation
        assert report.level == "L0"
        assert not report.applied("landlock_fs")
        assert not report.applied("landlock_scope")
        seen = await observe(zygote, "read_file", {"path": str(secret_file)})
        assert seen["read"] == "ok"  # what the report says is what a job can do

    with_zygote(scenario, use_landlock=False)


def test_minimum_level_refuses_a_weaker_sandbox() -> None:
    async def scenario() -> None:
        with pytest.raises(Exception, match="below the required L1"):
            await Zygote.start(extra_sys_path=[TESTS], use_landlock=False, minimum_level="L1")

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


@pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")
def test_root_worker_runs_children_under_a_separate_uid(secret_file: Path) -> None:
    python = _system_python()
    if python is None:
        pytest.skip("no system Python 3.11 readable by an unprivileged uid")
    # The project's dependencies (orjson) from the venv, which lives outside /root.
    site_packages = sysconfig.get_paths()["purelib"]
    secret_file.chmod(0o600)

    async def scenario(zygote: Zygote) -> None:
        assert zygote.isolation.uid == 65534, zygote.isolation.describe()
        assert zygote.isolation.level in ("L0", "L1")
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

    with_zygote(scenario, python=python, path=[site_packages])
