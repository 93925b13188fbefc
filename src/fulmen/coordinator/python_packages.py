"""A workflow's Python packages at exact versions, before it is saved (issue 16).

The Python twin of fulmen.coordinator.resolution. A Python job names packages from a package
index: its adaptor when it is one (``pandas@latest``, ``pandas@>=2,<3``) and its
``requirements`` (``httpx>=0.27``); what each may be is fulmen.python_requirements' to say.
When the workflow is saved, each becomes the one version the index offers now, in the form a
saved job holds (``pandas@2.2.3``, ``httpx==0.28.1``), so that every run of that version
installs the same thing, months later too, and no run waits on the index to learn what
``latest`` means. Fulmen's own adaptors (``common``, ``http``) and a bare module installed
beside the worker need no index and are left as written.

How: the same uv the workers install with (fulmen.packages.pypi), asked once per save for
every package not already settled (``uv pip compile``: wheels only, for this interpreter),
so that two jobs asking for one package get one version: a workflow's Python jobs share one
environment. A package whose every mention is an exact pin that the version being replaced
already had (``checked``) was found when that version was saved and is not asked again, so
that editing a job's body does not depend on the index being up.

Everything is asked before anything is saved. What the index refuses is the user's to fix,
named by job and package with uv's reason (InputError, 422): a package it does not have
(``unknown_package``), a version it does not have (``unknown_package_version``), requirements
no version meets together (``conflicting_requirements``), a requirement uv reads otherwise
than ``packaging`` did (``bad_requirement``). An index that cannot be reached is the
operator's (RegistryError ``registry_unreachable``, 502, as for the npm registry), and so is a
coordinator without uv (ConfigError ``no_uv``, 503). The index is ``FULMEN_PYTHON_INDEX``,
else uv's own settings (``UV_DEFAULT_INDEX``, ``uv.toml``), else PyPI.

uv's failures come told apart by fulmen.packages.pypi, which runs it: the index or uv itself
failing (IndexUnreachable, UvMissing) is the operator's; anything else uv refuses, once
``packaging`` has read the requirement, is the requirement's, and its one-line reason names
the package at fault.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from fulmen import python_requirements
from fulmen.errors import AdaptorError, ConfigError, FulmenError, InputError, RegistryError
from fulmen.packages.pypi import IndexUnreachable, PythonRepo, UvMissing
from fulmen.plan import PYTHON, Job
from fulmen.store import Workflow, check_packages

__all__ = ["checked_pins", "index_shown", "resolve_jobs", "resolve_python"]

#: What uv says when the index answered and no version fits (the rest of what it refuses,
#: a requirement it reads otherwise than ``packaging`` does, is the requirement's fault).
_UNMET: Final = ("unsatisfiable", "does not allow any versions", "gave no version")
#: A package's name in uv's message (PEP 508: letters, digits, ``-``, ``_``, ``.``).
_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class _Package:
    """One package a Python job names: its adaptor (``number`` None) or a requirement."""

    #: The job's position in the workflow.
    job: int
    #: The requirement's position in the job's ``requirements``; None: the adaptor.
    number: int | None
    #: As the job has it: ``pandas@latest``, ``httpx>=0.27``.
    written: str
    #: The same as a PEP 508 requirement (``pandas``, ``httpx>=0.27``): what uv is asked.
    requirement: str
    #: The package's canonical name (PEP 503): what uv's answer is keyed by.
    name: str
    #: The one version it allows, if it is pinned.
    exact: str | None
    #: When pinned: the pin as an environment holds it (``python_requirements.pinned``), what
    #: ``checked`` is made of.
    pin: str | None

    @property
    def field(self) -> str:
        """The value's path in a workflow document: ``jobs[1].requirements[0]``."""
        own = "adaptor" if self.number is None else f"requirements[{self.number}]"
        return f"jobs[{self.job}].{own}"


async def resolve_python(
    workflow: Workflow, repo: PythonRepo, *, checked: Collection[str] = ()
) -> Workflow:
    """``workflow`` with each Python job's package adaptor and requirements at exact versions.

    Args:
        checked: pins known to exist (:func:`checked_pins` of the version being replaced).

    Raises:
        InputError: ``bad_adaptor``, ``bad_requirement``, ``conflicting_requirements``,
            ``unknown_package`` or ``unknown_package_version``; RegistryError:
            ``registry_unreachable`` or ``registry_error``; each naming the job.
    """
    jobs = await resolve_jobs(workflow.jobs, repo, checked=checked)
    return workflow if jobs == workflow.jobs else replace(workflow, jobs=jobs)


async def resolve_jobs(
    jobs: Sequence[Job], repo: PythonRepo, *, checked: Collection[str] = ()
) -> tuple[Job, ...]:
    """``jobs`` with each Python job's packages at exact versions (the others as they are):
    :func:`resolve_python` for the jobs of one workflow, and what ``fulmen deploy`` asks
    before it saves anything. Raises as :func:`resolve_python`."""
    check_packages(jobs)
    packages = _packages(jobs)
    asked_names = {p.name for p in packages if p.pin is None or p.pin not in checked}
    asked = [p for p in packages if p.name in asked_names]
    versions: dict[str, str] = {}
    if asked:
        texts = list(dict.fromkeys(p.requirement for p in asked))
        try:
            versions = await repo.resolve(
                [python_requirements.read_requirement(text) for text in texts]
            )
        except AdaptorError as error:
            raise _refusal(error, asked, jobs, index_shown(repo.index)) from None
    return _pinned(jobs, packages, versions)


def checked_pins(workflow: Workflow) -> frozenset[str]:
    """The exact pins of a saved workflow's Python jobs: they were on the index when it was
    saved. A job saved before issue 16 whose adaptor no longer reads adds none."""
    pins: set[str] = set()
    for job in workflow.jobs:
        try:
            pins.update(p.pin for p in _packages([job]) if p.pin is not None)
        except InputError:
            continue
    return frozenset(pins)


def index_shown(index: str | None) -> str:
    """The index as messages name it: its URL without a user or password; uv's own when
    Fulmen names none."""
    if index is None:
        return "(uv's default: PyPI unless uv's settings name another)"
    parts = urlsplit(index)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _packages(jobs: Sequence[Job]) -> list[_Package]:
    """Every package the Python jobs of ``jobs`` name, job by job, adaptor first.

    Raises:
        InputError: an adaptor or a requirement cannot be read (``check_packages`` names it).
    """
    found: list[_Package] = []
    for index, job in enumerate(jobs):
        if job.runs_in != PYTHON:
            continue
        adaptor = python_requirements.read_adaptor(job.adaptor)
        if adaptor.requirement is not None:
            found.append(_package(index, None, job.adaptor, str(adaptor.requirement)))
        for number, text in enumerate(job.requirements):
            as_read = str(python_requirements.read_requirement(text))
            found.append(_package(index, number, text, as_read))
    return found


def _package(job: int, number: int | None, written: str, requirement: str) -> _Package:
    read = python_requirements.read_requirement(requirement)
    exact = python_requirements.exact_version(read)
    pin = python_requirements.pinned([read])[0] if exact is not None else None
    name = python_requirements.canonical(read.name)
    return _Package(job, number, written, requirement, name, exact, pin)


def _pinned(
    jobs: Sequence[Job], packages: Iterable[_Package], versions: dict[str, str]
) -> tuple[Job, ...]:
    """``jobs`` with each package at the version uv gave its name, or at its own exact
    version when it was not asked about."""
    adaptors: dict[int, str] = {}
    requirements: dict[int, list[str]] = {}
    for p in packages:
        version = versions.get(p.name) or p.exact
        assert version is not None  # asked when not exact; uv answers for each or raises
        read = python_requirements.read_requirement(p.requirement)
        if p.number is None:
            adaptors[p.job] = python_requirements.saved_adaptor(read, version)
        else:
            requirements.setdefault(p.job, []).append(
                python_requirements.saved_requirement(read, version)
            )
    return tuple(
        replace(
            job,
            adaptor=adaptors.get(index, job.adaptor),
            requirements=tuple(requirements.get(index, job.requirements)),
        )
        if index in adaptors or index in requirements
        else job
        for index, job in enumerate(jobs)
    )


def _refusal(
    error: AdaptorError, asked: Sequence[_Package], jobs: Sequence[Job], where: str
) -> FulmenError:
    """What uv's failure means for the save: whose fault, and which job and package."""
    reason = error.message.partition(": uv failed: ")[2] or error.message
    if isinstance(error, IndexUnreachable):
        return RegistryError(
            f"the Python package index {where} could not be reached: {reason}",
            code="registry_unreachable",
        )
    if isinstance(error, UvMissing):
        return ConfigError(
            f"Python packages cannot be resolved on this coordinator: {reason}", code="no_uv"
        )
    named = {python_requirements.canonical(word) for word in _NAME.findall(reason)}
    culprits = [p for p in asked if p.name in named] or list(asked)
    who = ", ".join(dict.fromkeys(f"job {_label(jobs[p.job])}" for p in culprits))
    written = list(dict.fromkeys(p.written for p in culprits))
    if not any(marker in reason for marker in _UNMET):
        code = "bad_requirement"
    elif "not found in the package registry" in reason:
        code = "unknown_package"
    elif len({p.requirement for p in culprits}) == 1:
        code = "unknown_package_version"
    else:
        code = "conflicting_requirements"
    together = " together" if code == "conflicting_requirements" else ""
    return InputError(
        f"{who}: {', '.join(written)} cannot be installed{together} from the Python package "
        f"index {where}: {reason}",
        code=code,
        field=culprits[0].field,
    )


def _label(job: Job) -> str:
    return f"{job.name!r} ({job.id})" if job.name else job.id
