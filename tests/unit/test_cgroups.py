"""sandbox.cgroups: reading where this process's cgroups are, and what a run's cgroup is told.

The v1 path runs for real in the escape suite (this machine is cgroup v1). A cgroup v2
hierarchy with controllers cannot be had here (they are all bound to v1), so its logic is
checked on a directory that stands in for one: the files a v2 cgroup has, as plain files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen.sandbox import cgroups
from fulmen.sandbox.cgroups import RunCgroup

HYBRID = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/f4fd
1:cpu,cpuacct:/
0::/
"""


def test_membership_names_each_controller_and_the_unified_entry() -> None:
    assert cgroups._parse_membership(HYBRID) == {
        "name=systemd": "",
        "pids": "",
        "memory": "/process_api/f4fd",
        "cpu": "",
        "cpuacct": "",
        "": "",
    }


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    own = tmp_path / "worker.service"
    own.mkdir()
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("")
    return own


def test_v2_enables_the_controllers_for_the_runs_beneath_the_workers_cgroup(
    tmp_path: Path,
) -> None:
    own = fake_v2(tmp_path)
    (own / "fulmen-4242").mkdir()  # the kernel fills a new cgroup with its files
    (own / "fulmen-4242" / "cgroup.subtree_control").write_text("")
    tree, reason = cgroups._discover_v2(str(own), 4242)
    assert reason == "" and tree is not None
    assert tree.parents == {"": str(own / "fulmen-4242")}
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (own / "fulmen-4242" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_v2_without_the_memory_controller_says_what_to_delegate(tmp_path: Path) -> None:
    tree, reason = cgroups._discover_v2(str(fake_v2(tmp_path, "cpu io pids")), 1)
    assert tree is None
    assert "memory are not delegated" in reason and "subtree_control" in reason


def test_a_v2_run_is_limited_as_a_whole(tmp_path: Path) -> None:
    run = tmp_path / "run-0-1"
    run.mkdir()
    for name in ("pids.max", "memory.max", "memory.swap.max", "memory.oom.group"):
        (run / name).write_text("")
    cgroup = RunCgroup(2, {"": str(run)})
    cgroup.limit(500, 256)
    assert (run / "memory.max").read_text() == str(500 * 1024 * 1024)
    assert (run / "memory.swap.max").read_text() == "0"
    assert (run / "memory.oom.group").read_text() == "1"  # an OOM kill takes every process
    assert (run / "pids.max").read_text() == "256"
    assert cgroup.watch_oom() is None
    (run / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.oom_kills() == 1


@pytest.mark.parametrize("first", [256, 1024])
def test_v1_memory_limits_go_up_and_down(tmp_path: Path, first: int) -> None:
    """Real v1 cgroups refuse memory > memsw; a stand-in directory cannot, so this only
    checks that both files end up with the new limit whichever way it moved."""
    memory, pids = tmp_path / "memory", tmp_path / "pids"
    memory.mkdir()
    pids.mkdir()
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (memory / name).write_text("")
    (pids / "pids.max").write_text("")
    cgroup = RunCgroup(1, {"memory": str(memory), "pids": str(pids)})
    cgroup.limit(first, 64)
    cgroup.limit(500, 256)
    assert (memory / "memory.limit_in_bytes").read_text() == str(500 * 1024 * 1024)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(500 * 1024 * 1024)
    assert (pids / "pids.max").read_text() == "256"
