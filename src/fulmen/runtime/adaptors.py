"""Which Python module an adaptor name means, and the names it puts in a job's scope.

What a name may be is ``fulmen.python_requirements``'s to say: Fulmen's ``common`` and
``http`` (also by Lightning's names), a package the worker installed for the run (its module
is the environment's to tell: ``fulmen.runtime.pyenv``), or a module installed next to the
worker, found by a ``fulmen.adaptors`` entry point or by its import name.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Final

from fulmen.adaptors import common
from fulmen.errors import AdaptorError, InputError
from fulmen.python_requirements import BUILTIN, AdaptorKind, read_adaptor
from fulmen.runtime.pyenv import PyEnv

__all__ = ["collections_scope", "job_scope", "load", "module_name", "scope"]

_MODULE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def module_name(name: str, environment: PyEnv | None = None) -> str:
    """The module an adaptor name resolves to; AdaptorError if it names none (no import).

    ``environment``: the run's installed packages, where a package adaptor's module is.
    """
    try:
        adaptor = read_adaptor(name)
    except InputError as exc:
        raise AdaptorError(exc.message) from None
    if adaptor.kind is AdaptorKind.BUILTIN and adaptor.module is not None:
        return adaptor.module
    if adaptor.requirement is not None:
        if environment is None:
            raise AdaptorError(
                f"adaptor {name!r}: the package is not installed for this run (this worker "
                "installs no Python packages)"
            )
        return environment.adaptor_module(adaptor.requirement.name)
    base = adaptor.module or name
    for entry in entry_points(group="fulmen.adaptors", name=base):
        return entry.value
    if _MODULE.fullmatch(base) and importlib.util.find_spec(base.split(".")[0]) is not None:
        return base
    raise AdaptorError(
        f"unknown adaptor {name!r}: no module {base!r} is installed with this worker (name "
        "common, http, or a package at a version, such as pandas@2.2.3)"
    )


def load(name: str, environment: PyEnv | None = None) -> ModuleType:
    """Import the adaptor's module; AdaptorError when it cannot be imported."""
    target = module_name(name, environment)
    try:
        return importlib.import_module(target)
    except Exception as exc:  # ImportError, or anything the module's own code raised
        raise AdaptorError(
            f"adaptor {name!r} could not be imported: {type(exc).__name__}: {exc}"
        ) from exc


def scope(module: ModuleType) -> dict[str, Any]:
    """A module's names for a job: its ``__all__``, else its public names."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return {name: getattr(module, name) for name in names}


def job_scope(module: ModuleType) -> dict[str, Any]:
    """The names a job sees: its adaptor's (``scope``), over the common adaptor's operations
    (``fn``, ``each``…) and the adaptor's package itself (``pandas``, as ``import pandas``
    would bind it), so that any library can be a job's adaptor, and an adaptor package that
    extends common sees no difference."""
    if module is common:
        return scope(common)
    top = module.__name__.partition(".")[0]
    return {**scope(common), top: sys.modules.get(top, module), **scope(module)}


def collections_scope() -> dict[str, Any]:
    """The collections adaptor's names (``collections``), which a job on another adaptor
    gets when its body names ``collections.`` (issue 19)."""
    return scope(importlib.import_module(BUILTIN["collections"]))
