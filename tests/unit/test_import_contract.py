"""The import contract (.importlinter) catches what it forbids, and leaves nothing out.

Each test copies the package to a temporary directory and runs ``lint-imports`` on the copy:
the unmodified copy passes; with one forbidden import planted per contract, every contract is
reported broken, each naming its planted import; a renamed top-level module is an error, not a
layer that quietly stops being checked. A last test holds that every third-party package the
code imports has a contract saying where (or is one of the few allowed anywhere).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"

#: Third-party packages that any module may import: the JSON codec of every wire and record,
#: the cryptography under tokens, keys and sealed records, and typing's backports.
ANYWHERE = frozenset({"orjson", "cryptography", "typing_extensions"})


@dataclass(frozen=True)
class Plant:
    """One forbidden import, added at the end of ``path`` (under ``src/fulmen``)."""

    path: str
    importer: str
    imported: str
    statement: str


#: One planted import per contract id of .importlinter, each breaking that contract alone.
PLANTS: dict[str, Plant] = {
    # the store reaching up into the coordinator
    "layers": Plant(
        "store/paging.py",
        "fulmen.store.paging",
        "fulmen.coordinator.nudges",
        "from fulmen.coordinator import nudges",
    ),
    # issue 20's two examples, which the old contract kept
    "coordinator": Plant(
        "coordinator/hub.py",
        "fulmen.coordinator.hub",
        "fulmen.sandbox.libc",
        "from fulmen.sandbox import libc",
    ),
    "worker": Plant(
        "worker/outbox.py",
        "fulmen.worker.outbox",
        "fulmen.store.models",
        "from fulmen.store import models",
    ),
    "sans-io": Plant("phoenix/frames.py", "fulmen.phoenix.frames", "asyncio", "import asyncio"),
    "http-edge": Plant("store/models.py", "fulmen.store.models", "pydantic", "import pydantic"),
    "web": Plant("worker/run.py", "fulmen.worker.run", "starlette", "import starlette"),
    "sql": Plant("coordinator/hub.py", "fulmen.coordinator.hub", "sqlite3", "import sqlite3"),
    "websockets": Plant(
        "runner/channel.py", "fulmen.runner.channel", "websockets", "import websockets"
    ),
    "http-client": Plant("runtime/engine.py", "fulmen.runtime.engine", "httpx2", "import httpx2"),
    "http-parser": Plant("worker/health.py", "fulmen.worker.health", "h11", "import h11"),
    "smtp": Plant(
        "coordinator/reaper.py", "fulmen.coordinator.reaper", "aiosmtplib", "import aiosmtplib"
    ),
    "cli": Plant("config.py", "fulmen.config", "click", "import click"),
    "cronsim": Plant("runner/scheduler.py", "fulmen.runner.scheduler", "cronsim", "import cronsim"),
    "cron-descriptor": Plant(
        "coordinator/dashboard/triggers.py",
        "fulmen.coordinator.dashboard.triggers",
        "cron_descriptor",
        "import cron_descriptor",
    ),
    "fastapi-offline": Plant(
        "coordinator/api/catalog.py",
        "fulmen.coordinator.api.catalog",
        "fastapi_offline",
        "import fastapi_offline",
    ),
    "jwt": Plant("worker/run.py", "fulmen.worker.run", "jwt", "import jwt"),
    "yaml": Plant(
        "coordinator/api/catalog.py", "fulmen.coordinator.api.catalog", "yaml", "import yaml"
    ),
    "metrics": Plant(
        "runner/service.py",
        "fulmen.runner.service",
        "prometheus_client",
        "import prometheus_client",
    ),
    "uvloop": Plant("worker/main.py", "fulmen.worker.main", "uvloop", "import uvloop"),
    "msgspec": Plant("phoenix/frames.py", "fulmen.phoenix.frames", "msgspec", "import msgspec"),
    "tree-sitter": Plant(
        "project/spec.py", "fulmen.project.spec", "tree_sitter", "import tree_sitter"
    ),
    "semver": Plant(
        "coordinator/hub.py",
        "fulmen.coordinator.hub",
        "semantic_version",
        "import semantic_version",
    ),
    "packaging": Plant(
        "coordinator/hub.py", "fulmen.coordinator.hub", "packaging", "import packaging"
    ),
    "graph-layout": Plant(
        "coordinator/dashboard/pages.py",
        "fulmen.coordinator.dashboard.pages",
        "fast_sugiyama",
        "import fast_sugiyama",
    ),
    "round-trip-yaml": Plant(
        "project/render.py", "fulmen.project.render", "ruamel", "import ruamel.yaml"
    ),
    "password-hash": Plant(
        "coordinator/api/auth.py", "fulmen.coordinator.api.auth", "argon2", "import argon2"
    ),
    "totp": Plant("store/users.py", "fulmen.store.users", "pyotp", "import pyotp"),
    "qr": Plant(
        "coordinator/dashboard/pages.py",
        "fulmen.coordinator.dashboard.pages",
        "segno",
        "import segno",
    ),
}


def contracts() -> dict[str, configparser.SectionProxy]:
    """The contracts of .importlinter by id (``[importlinter:contract:<id>]``)."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    prefix = "importlinter:contract:"
    return {name.removeprefix(prefix): parser[name] for name in parser if name.startswith(prefix)}


def copy_package(tmp_path: Path) -> Path:
    """A copy of ``fulmen`` and the contract in ``tmp_path``, which lint-imports runs in."""
    shutil.copytree(
        ROOT / "src" / "fulmen",
        tmp_path / "fulmen",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    return tmp_path / "fulmen"


def lint_imports(directory: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the copy in ``directory`` (its working directory comes first on
    ``sys.path``, before the installed package), one line per contract however long."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=directory,
        env={**os.environ, "COLUMNS": "1000", "PYTHONPATH": str(directory)},
        capture_output=True,
        text=True,
        check=False,
    )


def broken_sections(output: str, names: dict[str, str]) -> dict[str, str]:
    """The text under each broken contract's heading, by contract id (colours removed: some
    versions of import-linter colour their output even into a pipe)."""
    _, _, report = re.sub(r"\x1b\[[0-9;]*m", "", output).partition("Broken contracts")
    headings = sorted(
        (report.index(f"\n{name}\n"), key) for key, name in names.items() if f"\n{name}\n" in report
    )
    ends = [start for start, _ in headings[1:]] + [len(report)]
    return {key: report[start:end] for (start, key), end in zip(headings, ends, strict=False)}


def test_unmodified_copy_passes(tmp_path: Path) -> None:
    copy_package(tmp_path)
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


def test_every_contract_has_a_planted_import() -> None:
    assert set(PLANTS) == set(contracts())


def test_each_planted_import_breaks_its_contract(tmp_path: Path) -> None:
    package = copy_package(tmp_path)
    for plant in PLANTS.values():
        with (package / plant.path).open("a", encoding="utf-8") as source:
            source.write(f"\n{plant.statement}  # planted by test_import_contract\n")
    # A new top-level module, given no layer: the layers contract is exhaustive.
    (package / "newcomer.py").write_text('"""Not in any layer."""\n', encoding="utf-8")

    result = lint_imports(tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    names = {key: section["name"] for key, section in contracts().items()}
    sections = broken_sections(result.stdout, names)
    assert set(sections) == set(PLANTS), output
    for key, plant in PLANTS.items():
        assert f"{plant.importer} -> {plant.imported} " in sections[key], (key, sections[key])
    assert "- fulmen.newcomer" in sections["layers"]


def test_a_renamed_module_is_an_error(tmp_path: Path) -> None:
    package = copy_package(tmp_path)
    (package / "backoff.py").rename(package / "delays.py")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "module fulmen.backoff does not exist" in result.stdout + result.stderr


def test_no_layer_is_optional() -> None:
    """A layer in parentheses is skipped when its module is missing: a rename would drop it."""
    assert not re.search(r"\(", contracts()["layers"]["layers"])


def test_every_third_party_package_has_a_place() -> None:
    graph = grimp.build_graph("fulmen", include_external_packages=True, cache_dir=None)
    imported = {
        module
        for module in graph.modules
        if not module.startswith("fulmen") and module not in sys.stdlib_module_names
    }
    placed = {
        name
        for section in contracts().values()
        if section["type"] == "protected"
        for name in section["protected_modules"].split()
    }
    unplaced = imported - placed - ANYWHERE
    assert not unplaced, f"give these a protected contract in .importlinter: {sorted(unplaced)}"


def test_every_module_named_exists() -> None:
    """No contract names a module that is gone (a rename would leave a rule guarding nothing)."""
    graph = grimp.build_graph("fulmen", include_external_packages=False, cache_dir=None)
    named = {
        name
        for section in contracts().values()
        for option in ("source_modules", "forbidden_modules", "allowed_importers")
        for name in section.get(option, "").split()
        if name.startswith("fulmen")
    } | {
        line.partition(" -> ")[0].strip()
        for section in contracts().values()
        for line in section.get("ignore_imports", "").splitlines()
        if line.strip()
    }
    assert named - graph.modules == set()
