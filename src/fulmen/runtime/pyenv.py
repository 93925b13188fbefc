"""The run's Python environment, inside its child: the packages its jobs pinned, importable.

The worker installed them (``fulmen.packages.pypi``) into a folder this child may read and
not write; the payload says where, and what is in it. :meth:`PyEnv.activate` puts that folder
on ``sys.path`` where a virtual environment's packages would be (after the standard library,
before the packages installed with the worker), so a job imports its pinned version of a
package even when the worker has another. A module the zygote had already imported (Fulmen's
own dependencies: ``idna``, ``anyio``…) that the environment also provides is forgotten first,
so that the job's ``import`` loads the environment's; Fulmen keeps the copy it holds. The
folder is added as a plain path, never with ``site.addsitedir``, so no ``.pth`` file of a
package runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from fulmen.errors import AdaptorError
from fulmen.python_requirements import canonical

__all__ = ["PyEnv"]


@dataclass(frozen=True, slots=True)
class PyEnv:
    """What ``Environment.payload`` says of the run's environment."""

    site: str
    #: The distributions the jobs pinned (the rest came with them).
    pinned: tuple[str, ...]
    #: Every distribution in it (canonical name) and its version.
    installed: Mapping[str, str]
    #: Each distribution's top-level modules.
    modules: Mapping[str, tuple[str, ...]]
    #: Distributions that name their adaptor module (a ``fulmen.adaptors`` entry point).
    adaptors: Mapping[str, str]

    @classmethod
    def from_payload(cls, payload: object) -> PyEnv | None:
        if not isinstance(payload, Mapping) or not isinstance(payload.get("site"), str):
            return None
        return cls(
            site=payload["site"],
            pinned=tuple(payload.get("pinned") or ()),
            installed=dict(payload.get("installed") or {}),
            modules={k: tuple(v) for k, v in (payload.get("modules") or {}).items()},
            adaptors=dict(payload.get("adaptors") or {}),
        )

    def activate(self) -> None:
        """Make the environment's packages the ones this process imports."""
        if self.site in sys.path:
            return
        provided = {m for names in self.modules.values() for m in names}
        provided -= sys.stdlib_module_names
        for name in [n for n in sys.modules if n.partition(".")[0] in provided]:
            del sys.modules[name]
        sys.path.insert(_site_position(), self.site)
        importlib.invalidate_caches()

    def warm_up(self) -> None:
        """Activate, and import each pinned package's module, in a spare waiting for a run
        of this environment (``entry.warm_up``): that run then starts with them imported.
        A module that fails here is left for the run to report."""
        self.activate()
        for name in self.pinned:
            try:
                importlib.import_module(self.adaptor_module(name))
            except Exception:  # the run imports it again, and says why it fails
                continue

    def adaptor_module(self, package: str) -> str:
        """The module of ``package`` (a distribution's name) that a job's scope comes from:
        the one its ``fulmen.adaptors`` entry point names, else its only public top-level
        module, else the one named like the package.

        Raises:
            AdaptorError: the package is not in the environment, or has no such module.
        """
        name = canonical(package)
        if name not in self.installed:
            raise AdaptorError(f"adaptor {package!r}: the package is not installed for this run")
        entry = self.adaptors.get(name)
        if entry:
            return entry.partition(":")[0].strip()
        public = [m for m in self.modules.get(name, ()) if not m.startswith("_")]
        if len(public) == 1:
            return public[0]
        alike = name.replace("-", "_")
        if alike in public:
            return alike
        raise AdaptorError(
            f"adaptor {package!r}: the package has "
            + (f"several modules ({', '.join(public)})" if public else "no module to import")
            + "; name one of them in a fulmen.adaptors entry point, or import it in the job"
        )


def _site_position() -> int:
    """Where site packages start on ``sys.path`` (after the standard library)."""
    for index, entry in enumerate(sys.path):
        if entry.endswith(("site-packages", "dist-packages")):
            return index
    return len(sys.path)
