"""Which Python module an adaptor name means, and the names it puts in a job's scope.

Accepted names: ``common`` and ``http`` (shipped with Fulmen), Lightning's
``@openfn/language-<name>@<version>`` for those two, and any importable module name or
``fulmen.adaptors`` entry point, so a third-party adaptor is just a pip-installed package.
A version suffix is accepted and ignored: the installed package is what runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from fulmen.errors import AdaptorError
from fulmen.plan import OPENFN_PREFIX

__all__ = ["load", "module_name", "scope"]

BUILTIN = {"common": "fulmen.adaptors.common", "http": "fulmen.adaptors.http"}
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _base(name: str) -> str:
    """``@openfn/language-http@6.5.1`` -> ``http``; ``mypkg@1.0`` -> ``mypkg``."""
    text = name.strip()
    at = text.rfind("@")
    if at > 0:
        text = text[:at]
    if text.startswith(OPENFN_PREFIX):
        text = text[len(OPENFN_PREFIX) :]
    return text


def module_name(name: str) -> str:
    """The module an adaptor name resolves to; AdaptorError if it names none (no import)."""
    base = _base(name)
    if base in BUILTIN:
        return BUILTIN[base]
    for entry in entry_points(group="fulmen.adaptors", name=base):
        return entry.value
    if _MODULE.match(base) and importlib.util.find_spec(base.split(".")[0]) is not None:
        return base
    raise AdaptorError(
        f"unknown adaptor {name!r}: use common, http, or the name of an installed Python module"
    )


def load(name: str) -> ModuleType:
    """Import the adaptor's module; AdaptorError when it cannot be imported."""
    target = module_name(name)
    try:
        return importlib.import_module(target)
    except Exception as exc:  # ImportError, or anything the module's own code raised
        raise AdaptorError(
            f"adaptor {name!r} could not be imported: {type(exc).__name__}: {exc}"
        ) from exc


def scope(module: ModuleType) -> dict[str, Any]:
    """The names a job sees: the module's ``__all__``, else its public names."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return {name: getattr(module, name) for name in names}
