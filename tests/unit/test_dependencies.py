"""The declared dependencies are the ones the code needs, at floors it works with.

scripts/test runs tests/unit a second time in .venv-min, where constraints/minimum.txt pins
every dependency to its declared floor: there, the import of every module below is what fails
first when a floor is too low (websockets 14 and 15 did). The other tests keep the declaration
and the constraints file in step.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp

import fulmen

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT = re.compile(r"(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])?>=(?P<floor>[0-9][0-9.]*)")
PIN = re.compile(r"(?P<name>[A-Za-z0-9._-]+)==(?P<version>[0-9][0-9.]*)")


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """``8.1`` and ``8.1.0`` alike: the release numbers without trailing zeros."""
    numbers = [int(part) for part in version.split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def floors(requirements: list[str]) -> dict[str, str]:
    """Each requirement's ``>=`` floor, by normalized name (every one must have one)."""
    result = {}
    for requirement in requirements:
        match = REQUIREMENT.fullmatch(requirement)
        assert match, f"{requirement!r}: declare a dependency as name>=floor"
        result[normalized(match["name"])] = match["floor"]
    return result


def project() -> dict[str, dict[str, str]]:
    """The runtime and dev floors of pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        table = tomllib.load(file)["project"]
    return {
        "runtime": floors(table["dependencies"]),
        "dev": floors(table["optional-dependencies"]["dev"]),
    }


def pins() -> dict[str, str]:
    """The versions constraints/minimum.txt pins, by normalized name."""
    result = {}
    for line in (ROOT / "constraints" / "minimum.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            match = PIN.fullmatch(line.strip())
            assert match, f"{line!r}: pin each dependency as name==version"
            result[normalized(match["name"])] = match["version"]
    return result


def test_every_module_imports() -> None:
    names = [
        module.name
        for module in pkgutil.walk_packages(fulmen.__path__, "fulmen.")
        if module.name != "fulmen.__main__"
    ]
    for name in names:
        importlib.import_module(name)


def test_the_minimum_constraints_pin_every_runtime_floor() -> None:
    declared, pinned = project(), pins()
    missing = set(declared["runtime"]) - set(pinned)
    assert not missing, f"pin these in constraints/minimum.txt: {sorted(missing)}"
    for name, version in pinned.items():
        floor = declared["runtime"].get(name) or declared["dev"].get(name)
        assert floor is not None, f"{name} is pinned but not declared in pyproject.toml"
        assert release(version) == release(floor), f"{name}: pinned {version}, declared >={floor}"


def test_every_third_party_package_imported_is_declared() -> None:
    graph = grimp.build_graph("fulmen", include_external_packages=True, cache_dir=None)
    imported = {
        module
        for module in graph.modules
        if not module.startswith("fulmen") and module not in sys.stdlib_module_names
    }
    distributions = packages_distributions()
    declared = set(project()["runtime"])
    undeclared = {
        module
        for module in imported
        if not {normalized(name) for name in distributions.get(module, [module])} & declared
    }
    assert not undeclared, f"declare these in pyproject.toml's dependencies: {sorted(undeclared)}"
