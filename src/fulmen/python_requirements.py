"""A Python job's adaptor and requirements: from what a person wrote to the exact pins a worker
installs.

What a Python job may name as its adaptor:

* ``common`` or ``http`` (also as Lightning names them, ``@openfn/language-common@3.3.4``):
  Fulmen's own adaptors, shipped with it; nothing is installed and a version is ignored.
* a package from the Python package index at a version: ``pandas@2.2.3``, ``pandas@latest``,
  ``pandas@>=2,<3``, or the same as a requirement (``pandas==2.2.3``, ``pandas[sql]>=2``). The
  worker installs it; the job sees its module's public names (its ``__all__``).
* a bare name, without a version (``yaml``, ``mycompany.adaptor``, ``acme-adaptor``): a
  module installed next to the worker by its operator, or a ``fulmen.adaptors`` entry point
  of that name, run as installed. A version is what asks for the index.

A job may also list requirements (``httpx==0.28.1``): packages its code imports itself.

When a workflow is saved, every package is resolved to one exact version (``pandas@latest``
becomes ``pandas@2.2.3``), so that a run months later installs what was tested. A workflow's
Python jobs run in one environment, so two of them may not pin one package at two versions.

Only what a package index serves is accepted: a requirement that names a URL or a path would
make the worker fetch or build something of the job's choosing outside the sandbox.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from fulmen.errors import InputError
from fulmen.plan import OPENFN_PREFIX, PYTHON, Job, Plan

__all__ = [
    "BUILTIN",
    "AdaptorKind",
    "PythonAdaptor",
    "canonical",
    "conflicts",
    "environment_key",
    "exact_version",
    "is_resolved",
    "package_requirements",
    "pinned",
    "read_adaptor",
    "read_requirement",
    "saved_adaptor",
    "saved_requirement",
    "with_version",
]

#: Fulmen's own Python adaptors, by the short names jobs use.
BUILTIN: Final = {
    "common": "fulmen.adaptors.common",
    "http": "fulmen.adaptors.http",
    "collections": "fulmen.adaptors.collections",
}
#: What ``@latest`` asks for: the newest version the index offers.
LATEST: Final = "latest"

#: A bare name: a module's (``a.b``) or an entry point's (``acme-adaptor``).
_BARE: Final = re.compile(r"[A-Za-z_][\w.-]*")
#: This interpreter, as far as which wheels fit it goes.
_INTERPRETER: Final = (
    f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}-"
    f"{sys.platform}-{platform.machine()}"
)


class AdaptorKind(StrEnum):
    BUILTIN = "builtin"
    MODULE = "module"
    PACKAGE = "package"


@dataclass(frozen=True, slots=True)
class PythonAdaptor:
    """A Python job's adaptor as written, read."""

    written: str
    kind: AdaptorKind
    #: BUILTIN: the module Fulmen ships; MODULE: the module's name; PACKAGE: None (the
    #: installed distribution tells which module it is).
    module: str | None = None
    #: PACKAGE only: the package and the versions asked for.
    requirement: Requirement | None = None


def read_adaptor(adaptor: str) -> PythonAdaptor:
    """Read a Python job's adaptor (see the module docstring for what it may be).

    Raises:
        InputError: ``bad_adaptor``, saying what a Python job's adaptor may be.
    """
    text = adaptor.strip()
    base = text[: text.rfind("@")] if text.rfind("@") > 0 else text
    short = base.removeprefix(OPENFN_PREFIX)
    if short in BUILTIN and (base == short or base.startswith(OPENFN_PREFIX)):
        return PythonAdaptor(adaptor, AdaptorKind.BUILTIN, module=BUILTIN[short])
    if base.startswith(OPENFN_PREFIX):
        raise InputError(
            f"unknown adaptor {adaptor!r}: of Lightning's adaptors a Python job can use "
            "common, http and collections (@openfn/language-common, @openfn/language-http, "
            "@openfn/language-collections); for the others "
            "make it a JavaScript job",
            code="bad_adaptor",
        )
    if _BARE.fullmatch(text):
        return PythonAdaptor(adaptor, AdaptorKind.MODULE, module=text)
    try:
        requirement = _requirement(text, at_version=True)
    except InputError as exc:
        raise InputError(
            f"{adaptor!r} is not an adaptor a Python job can use: {exc.message} (name common, "
            "http, a package at a version such as pandas@2.2.3 or pandas@latest, or an "
            "installed module)",
            code="bad_adaptor",
        ) from None
    return PythonAdaptor(adaptor, AdaptorKind.PACKAGE, requirement=requirement)


def read_requirement(text: str) -> Requirement:
    """Read one of a job's requirements: ``httpx==0.28.1``, ``httpx>=0.27``, ``httpx@0.28.1``.

    Raises:
        InputError: ``bad_requirement``, naming what is wrong.
    """
    try:
        return _requirement(text.strip(), at_version=True)
    except InputError as exc:
        raise InputError(f"requirement {text!r}: {exc.message}", code="bad_requirement") from None


def _requirement(text: str, *, at_version: bool) -> Requirement:
    at = text.find("@")
    if at_version and at > 0 and "://" not in text and not text[at + 1 :].startswith(" "):
        name, wanted = text[:at].strip(), text[at + 1 :].strip()
        if not wanted:
            raise InputError("no version after the @ (a version, a range, or latest)")
        if wanted == LATEST:
            text = name
        elif _is_version(wanted):
            text = f"{name}=={wanted}"
        else:
            text = f"{name}{wanted}"
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise InputError(str(exc).splitlines()[0], code="bad_requirement") from None
    if requirement.url is not None:
        raise InputError(
            "a URL or path is not accepted, only a package the index serves",
            code="bad_requirement",
        )
    return requirement


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def canonical(name: str) -> str:
    """A distribution's name as indexes compare them (PEP 503: ``PyYAML`` is ``pyyaml``)."""
    return canonicalize_name(name)


def exact_version(requirement: Requirement) -> str | None:
    """The one version ``requirement`` allows (``==2.2.3``, ``===2.2.3``), or None (also for
    ``===`` with text that is no version, which ``packaging`` reads but no index serves)."""
    specifiers = list(requirement.specifier)
    if len(specifiers) != 1 or specifiers[0].operator not in ("==", "==="):
        return None
    version = specifiers[0].version
    return None if "*" in version or not _is_version(version) else version


def with_version(requirement: Requirement, version: str) -> Requirement:
    """``requirement`` pinned to ``version`` (extras and markers kept)."""
    pinned_ = Requirement(str(requirement))
    pinned_.specifier = SpecifierSet(f"=={version}")
    return pinned_


def saved_adaptor(requirement: Requirement, version: str) -> str:
    """How a saved job holds a package adaptor at ``version``: ``pandas@2.2.3``."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}@{version}"


def saved_requirement(requirement: Requirement, version: str) -> str:
    """How a saved job holds a requirement at ``version``: ``httpx==0.28.1``."""
    return str(with_version(requirement, version))


def is_resolved(job: Job) -> bool:
    """Whether every package ``job`` needs is pinned to one version (as in a saved workflow);
    False too when its adaptor or a requirement cannot be read."""
    try:
        return all(exact_version(r) is not None for r in package_requirements(job))
    except InputError:
        return False


def package_requirements(job: Job) -> list[Requirement]:
    """What a Python job needs installed: its adaptor if it is a package, and its requirements.

    Raises:
        InputError: the adaptor or a requirement cannot be read.
    """
    if job.runs_in != PYTHON:
        return []
    found = [read_requirement(text) for text in job.requirements]
    adaptor = read_adaptor(job.adaptor)
    if adaptor.requirement is not None:
        found.insert(0, adaptor.requirement)
    return found


def conflicts(plan: Plan) -> list[str]:
    """Why ``plan``'s Python jobs cannot share one environment: each package pinned at two
    versions, naming the jobs (empty when they can)."""
    seen: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for job in plan.jobs:
        for requirement in package_requirements(job):
            version = exact_version(requirement)
            if version is None:
                continue
            name = canonicalize_name(requirement.name)
            label = job.name or job.id
            earlier = seen.setdefault(name, (version, label))
            if Version(earlier[0]) != Version(version):
                problems.append(
                    f"{name} is pinned at {earlier[0]} by job {earlier[1]!r} and at {version} "
                    f"by job {label!r}: a workflow's Python jobs share one environment"
                )
    return problems


def pinned(requirements: Iterable[Requirement]) -> tuple[str, ...]:
    """The canonical text of exact pins, sorted and without repeats: what an environment is
    made of. Every requirement must have an exact version (``exact_version``)."""
    texts: set[str] = set()
    for requirement in requirements:
        version = exact_version(requirement)
        if version is None:
            raise ValueError(f"{requirement} is not pinned to one version")
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        marker = f"; {requirement.marker}" if requirement.marker is not None else ""
        texts.add(f"{canonicalize_name(requirement.name)}{extras}=={version}{marker}")
    return tuple(sorted(texts))


def environment_key(pins: Iterable[str], index: str | None = None) -> str:
    """The name of the environment ``pins`` make on this interpreter: the same pins on the
    same Python (version and platform) from the same index are one environment."""
    digest = hashlib.sha256()
    for part in (_INTERPRETER, index or "", *sorted(pins)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:20]
