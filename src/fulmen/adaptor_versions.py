"""A JavaScript job's adaptor: from what a person wrote to the exact npm version a worker runs.

Lightning saves a job's adaptor as an exact version (``@openfn/language-common@3.3.4``), so
that a run never waits on the npm registry to learn what ``@latest`` means today (ws-worker
asks it on every run otherwise, and fails the run when it cannot), and every run of one
workflow version runs the same adaptor. Fulmen does the same when a workflow is saved. This
module decides, without I/O, what a request means and which version of a package's packument
it picks; ``fulmen.coordinator.registry`` fetches the packument.

What a JavaScript job may name as its adaptor:

* ``common`` or ``http``, Fulmen's short names, for ``@openfn/language-common`` and
  ``@openfn/language-http`` (a version may follow: ``common@^3``);
* ``@openfn/language-<name>`` (any of OpenFn's adaptors: the worker installs it from npm),
  with an optional ``@<version>``: an exact version, a dist-tag (``latest``, the default) or
  an npm range (``3``, ``^3.2``, ``~1.4``, ``>=2 <4``, ``3.x``).

Ranges are npm's, matched by ``semantic_version``'s ``NpmSpec`` (npm's grammar, and its rule
that a prerelease matches only a range that names a prerelease of the same version). The pick
follows npm's own (npm-pick-manifest): the ``latest`` tag's version when it is in the range,
else the highest version in it that is not deprecated, else the highest deprecated one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import semantic_version

from fulmen.errors import InputError, RegistryError
from fulmen.plan import OPENFN_PREFIX

__all__ = [
    "SHORT_NAMES",
    "AdaptorRequest",
    "Packument",
    "Wanted",
    "is_resolved",
    "is_version",
    "kind_of",
    "parse_request",
    "pick",
]

#: Fulmen's names for its Python adaptors, as the OpenFn packages a JavaScript job runs.
SHORT_NAMES: Final = {
    "common": "@openfn/language-common",
    "http": "@openfn/language-http",
    "collections": "@openfn/language-collections",
}
#: The tag a request without a version means, as for ``npm install``.
LATEST: Final = "latest"

#: An OpenFn adaptor package's name: npm's rules for a name (lowercase, URL-safe).
_PACKAGE: Final = re.compile(r"@openfn/language-[a-z0-9][a-z0-9._-]*")
#: A dist-tag: npm refuses tags that are valid ranges, so what is left starts with a letter.
_TAG: Final = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")


class Wanted(StrEnum):
    """What the part after the package's ``@`` is."""

    VERSION = "version"
    RANGE = "range"
    TAG = "tag"


@dataclass(frozen=True, slots=True)
class AdaptorRequest:
    """A JavaScript job's adaptor as written, read: which package, and which version of it."""

    #: As the job had it, for messages.
    written: str
    #: ``@openfn/language-common``.
    package: str
    #: ``3.3.4``, ``^3.2`` or ``latest``.
    wanted: str
    kind: Wanted

    def exact(self, version: str) -> str:
        """The adaptor at ``version``, as a saved job holds it."""
        return f"{self.package}@{version}"


@dataclass(frozen=True, slots=True)
class Packument:
    """What the registry says of a package: its dist-tags and versions (whether each one is
    deprecated). Read from the abbreviated document (``application/vnd.npm.install-v1+json``)
    or the full one: both have these keys."""

    name: str
    dist_tags: Mapping[str, str]
    #: Every published version, and whether it is deprecated.
    versions: Mapping[str, bool]

    @classmethod
    def from_json(cls, name: str, document: object) -> Packument:
        """Raises RegistryError (``registry_error``) for a document without the keys."""
        if not isinstance(document, Mapping):
            raise _garbled(name, "not a JSON object")
        tags, versions = document.get("dist-tags"), document.get("versions")
        if not isinstance(tags, Mapping) or not isinstance(versions, Mapping):
            raise _garbled(name, "no dist-tags or versions")
        return cls(
            name=name,
            dist_tags={str(k): v for k, v in tags.items() if isinstance(v, str)},
            versions={
                str(version): isinstance(manifest, Mapping) and bool(manifest.get("deprecated"))
                for version, manifest in versions.items()
            },
        )

    @property
    def latest(self) -> str | None:
        return self.dist_tags.get(LATEST)


def parse_request(adaptor: str) -> AdaptorRequest:
    """Read a JavaScript job's adaptor (see the module docstring for what it may be).

    Raises:
        InputError: ``bad_adaptor``, saying what a JavaScript job's adaptor may be.
    """
    text = adaptor.strip()
    at = text.rfind("@")
    name, wanted = (text[:at], text[at + 1 :]) if at > 0 else (text, LATEST)
    package = SHORT_NAMES.get(name, name)
    if not _PACKAGE.fullmatch(package):
        hint = (
            f" (did you mean {OPENFN_PREFIX}{name}?)" if re.fullmatch(r"[a-z0-9-]+", name) else ""
        )
        raise InputError(
            f"{adaptor!r} is not an adaptor a JavaScript job can use: name one of OpenFn's "
            f"packages ({OPENFN_PREFIX}<name>, with an optional @version), or common or "
            f"http{hint}",
            code="bad_adaptor",
        )
    kind = kind_of(wanted)
    if kind is None:
        raise InputError(
            f"{adaptor!r}: {wanted!r} is not a version, an npm range or a dist-tag",
            code="bad_adaptor",
        )
    return AdaptorRequest(adaptor, package, wanted, kind)


def is_resolved(adaptor: str) -> bool:
    """Whether ``adaptor`` names one exact version of an OpenFn package, as every
    JavaScript job of a saved workflow does."""
    at = adaptor.rfind("@")
    return at > 0 and bool(_PACKAGE.fullmatch(adaptor[:at])) and is_version(adaptor[at + 1 :])


def pick(request: AdaptorRequest, packument: Packument) -> str:
    """The exact adaptor ``request`` means today, given its package's ``packument``.

    Raises:
        InputError: ``unknown_adaptor_version`` when no version fits, naming the latest.
    """
    if request.kind is Wanted.VERSION:
        if request.wanted in packument.versions:
            return request.exact(request.wanted)
        raise _no_version(request, packument, f"has no version {request.wanted}")
    if request.kind is Wanted.TAG:
        tagged = packument.dist_tags.get(request.wanted)
        if tagged is not None:
            return request.exact(tagged)
        raise _no_version(request, packument, f"has no dist-tag {request.wanted!r}")
    chosen = _highest(semantic_version.NpmSpec(request.wanted), packument)
    if chosen is None:
        raise _no_version(request, packument, f"has no version in the range {request.wanted!r}")
    return request.exact(chosen)


def _highest(spec: semantic_version.NpmSpec, packument: Packument) -> str | None:
    """npm's pick within a range: ``latest`` if it is in it, else the highest version."""
    latest = packument.latest
    if latest is not None and _in(spec, latest):
        return latest
    matching = [v for v in packument.versions if _in(spec, v)]
    fresh = [v for v in matching if not packument.versions[v]]
    best = max(fresh or matching, key=semantic_version.Version, default=None)
    return str(best) if best is not None else None


def _in(spec: semantic_version.NpmSpec, version: str) -> bool:
    return is_version(version) and bool(spec.match(semantic_version.Version(version)))


def kind_of(wanted: str) -> Wanted | None:
    """What the part after a package's ``@`` is, or None when it is none of an exact version,
    an npm range or a dist-tag (a path, a URL, a git repository: what npm would also take)."""
    if is_version(wanted):
        return Wanted.VERSION
    if wanted.strip():
        try:
            semantic_version.NpmSpec(wanted)
        except ValueError:
            pass
        else:
            return Wanted.RANGE
    return Wanted.TAG if _TAG.fullmatch(wanted) else None


def is_version(text: str) -> bool:
    """Whether ``text`` is one exact semantic version (``3.3.4``, ``2.0.0-rc.3``), and nothing
    around it (``semantic_version`` takes ``3.3.4\\n`` too, which would reach a path)."""
    if text != text.strip():
        return False
    try:
        semantic_version.Version(text)
    except ValueError:
        return False
    return True


def _no_version(request: AdaptorRequest, packument: Packument, what: str) -> InputError:
    latest = f" (its latest is {packument.latest})" if packument.latest else ""
    return InputError(
        f"adaptor {request.written!r}: {request.package} {what}{latest}",
        code="unknown_adaptor_version",
    )


def _garbled(name: str, why: str) -> RegistryError:
    return RegistryError(
        f"the npm registry's answer for {name} is not a package document ({why})",
        code="registry_error",
    )
