"""``fulmen run -a/-r`` and ``fulmen adaptors`` as a user runs them: real subprocesses, real
sandboxed children, packages from a real package index on loopback (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulmen_testing.python_index import Index, python_index

ROOT = Path(__file__).resolve().parents[2]

REPORT = """import importlib.metadata
import fulmen_probe
fn(lambda state: {"data": [fulmen_probe.VERSION, importlib.metadata.version("fulmen-probe")]})
"""


@pytest.fixture(scope="module")
def index() -> Iterator[Index]:
    with python_index() as served:
        yield served


@pytest.fixture
def env(tmp_path: Path, index: Index) -> dict[str, str]:
    """A worker's settings on this host: its repository, and the index."""
    return {
        **os.environ,
        "WORKER_REPO_DIR": str(tmp_path / "repo"),
        "FULMEN_PYTHON_INDEX": index.url,
    }


def fulmen(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fulmen", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_run_installs_the_pinned_adaptor_and_requirements(
    tmp_path: Path, env: dict[str, str]
) -> None:
    job = tmp_path / "job.py"
    job.write_text(REPORT)

    pinned = fulmen("run", job, "-a", "fulmen-probe@1.0.0", env=env)
    required = fulmen("run", job, "-a", "common", "-r", "fulmen-probe==2.0.0", env=env)

    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout) == {"data": ["1.0.0", "1.0.0"]}
    assert "Installing Python packages: fulmen-probe==1.0.0" in pinned.stderr
    assert required.returncode == 0, required.stderr
    assert json.loads(required.stdout) == {"data": ["2.0.0", "2.0.0"]}


def test_run_with_a_version_the_index_lacks_says_so_in_one_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    job = tmp_path / "job.py"
    job.write_text(REPORT)
    result = fulmen("run", job, "-a", "fulmen-probe@3.0.0", env=env)

    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fulmen run: run ended with crash: AdaptorError: fulmen-probe==3.0.0")
    assert "there is no version of fulmen-probe==3.0.0" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-a", "probe @ https://example.org/probe.whl"], "a URL or path is not accepted"),
        (["-r", "fulmen-probe>>1"], "requirement 'fulmen-probe>>1': "),
        (["-a", "fulmen-probe@1.0.0", "-r", "fulmen-probe==2.0.0"], "pinned at 1.0.0"),
    ],
)
def test_run_refuses_what_cannot_be_installed_before_starting(
    tmp_path: Path, env: dict[str, str], arguments: list[str], message: str
) -> None:
    job = tmp_path / "job.py"
    job.write_text(REPORT)
    result = fulmen("run", job, *arguments, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "repo" / "python").exists() or not any(
        (tmp_path / "repo" / "python").glob("*/site")
    )


def test_adaptors_install_list_and_prune(tmp_path: Path, env: dict[str, str], index: Index) -> None:
    installed = fulmen("adaptors", "install", "fulmen-probe@latest", env=env)
    again = fulmen("adaptors", "install", "fulmen-probe@2.0.0", env=env)
    listed = fulmen("adaptors", "list", env=env)
    as_json = fulmen("adaptors", "list", "--json", env=env)

    assert installed.returncode == 0, installed.stderr
    assert ": installed in " in installed.stdout
    assert "fulmen-probe 2.0.0" in installed.stdout
    assert "was ready: fulmen-probe 2.0.0" in again.stdout  # same pins, same environment
    assert "fulmen-probe==2.0.0" in listed.stdout
    assert listed.stdout.split()[:5] == ["ENVIRONMENT", "SIZE", "LAST", "USED", "PACKAGES"]
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert record["pins"] == ["fulmen-probe==2.0.0"]
    assert record["installed"] == {"fulmen-probe": "2.0.0"}

    # A run of those pins needs nothing from the index: an offline host can run it.
    job = tmp_path / "job.py"
    job.write_text(REPORT)
    asked = len(index.requests)
    ran = fulmen("run", job, "-a", "fulmen-probe@2.0.0", env={**env, "UV_OFFLINE": "1"})
    assert ran.returncode == 0, ran.stderr
    assert "Installing" not in ran.stderr
    assert len(index.requests) == asked

    pruned = fulmen("adaptors", "prune", "--all", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1, kept 0" in pruned.stdout
    assert "no Python environments" in fulmen("adaptors", "list", env=env).stdout


def test_adaptors_install_of_a_builtin_says_there_is_nothing_to_install(
    env: dict[str, str],
) -> None:
    result = fulmen("adaptors", "install", "common", env=env)
    assert result.returncode == 2
    assert "common: nothing to install" in result.stderr
