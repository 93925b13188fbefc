"""fulmen.adaptor_versions: what a JavaScript job's adaptor means, and the exact version it
picks from a packument, as npm would pick it."""

from __future__ import annotations

import pytest

from fulmen.adaptor_versions import Packument, Wanted, is_resolved, parse_request, pick
from fulmen.errors import InputError, RegistryError
from fulmen_testing.npm_registry import COMMON, HTTP, packument

COMMON_PACKUMENT = Packument.from_json("@openfn/language-common", COMMON)


@pytest.mark.parametrize(
    ("adaptor", "package", "wanted", "kind"),
    [
        ("common", "@openfn/language-common", "latest", Wanted.TAG),
        ("http", "@openfn/language-http", "latest", Wanted.TAG),
        ("common@^3", "@openfn/language-common", "^3", Wanted.RANGE),
        ("@openfn/language-common", "@openfn/language-common", "latest", Wanted.TAG),
        ("@openfn/language-common@latest", "@openfn/language-common", "latest", Wanted.TAG),
        ("@openfn/language-dhis2@5", "@openfn/language-dhis2", "5", Wanted.RANGE),
        ("@openfn/language-http@>=6 <7", "@openfn/language-http", ">=6 <7", Wanted.RANGE),
        ("@openfn/language-common@3.3.4", "@openfn/language-common", "3.3.4", Wanted.VERSION),
        ("@openfn/language-common@4.0.0-rc.1", "@openfn/language-common", "4.0.0-rc.1", "version"),
    ],
)
def test_what_a_request_names(adaptor: str, package: str, wanted: str, kind: str) -> None:
    request = parse_request(adaptor)
    assert (request.package, request.wanted, request.kind) == (package, wanted, kind)


@pytest.mark.parametrize(
    ("adaptor", "says"),
    [
        ("dhis2", "did you mean @openfn/language-dhis2?"),
        ("pandas@2.2.3", "is not an adaptor a JavaScript job can use"),
        ("@openfn/Language-Common@1", "is not an adaptor a JavaScript job can use"),
        ("@openfn/language-common@", "'' is not a version, an npm range or a dist-tag"),
        ("@openfn/language-common@a b", "'a b' is not a version, an npm range or a dist-tag"),
    ],
)
def test_what_a_javascript_job_cannot_name(adaptor: str, says: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_request(adaptor)
    assert refused.value.code == "bad_adaptor"
    assert says in refused.value.message


@pytest.mark.parametrize(
    ("adaptor", "exact"),
    [
        ("common", "@openfn/language-common@3.3.4"),
        ("@openfn/language-common@latest", "@openfn/language-common@3.3.4"),
        ("@openfn/language-common@next", "@openfn/language-common@4.0.0-rc.1"),
        ("@openfn/language-common@3.2.1", "@openfn/language-common@3.2.1"),
        # a range takes `latest` when it is in it, as npm does…
        ("@openfn/language-common@3", "@openfn/language-common@3.3.4"),
        ("@openfn/language-common@^3.2", "@openfn/language-common@3.3.4"),
        ("@openfn/language-common@*", "@openfn/language-common@3.3.4"),
        # …else the highest version in it
        ("@openfn/language-common@~3.2", "@openfn/language-common@3.2.3"),
        ("@openfn/language-common@^2", "@openfn/language-common@2.1.1"),
        ("@openfn/language-common@1.x || 2.0", "@openfn/language-common@2.0.1"),
        # a prerelease only for a range that names one
        ("@openfn/language-common@>=3.3", "@openfn/language-common@3.3.4"),
        ("@openfn/language-common@^4.0.0-rc.0", "@openfn/language-common@4.0.0-rc.1"),
    ],
)
def test_the_version_a_request_picks(adaptor: str, exact: str) -> None:
    assert pick(parse_request(adaptor), COMMON_PACKUMENT) == exact
    assert is_resolved(exact)


def test_a_deprecated_version_is_picked_only_when_nothing_else_fits() -> None:
    versions = ["2.0.0", "2.1.0", "2.2.0", "3.0.0"]
    document = packument("@openfn/language-x", versions, deprecated=["2.2.0", "2.1.0"])
    packages = Packument.from_json("@openfn/language-x", document)
    assert pick(parse_request("@openfn/language-x@^2"), packages) == "@openfn/language-x@2.0.0"
    assert pick(parse_request("@openfn/language-x@~2.2"), packages) == "@openfn/language-x@2.2.0"


@pytest.mark.parametrize(
    ("adaptor", "says"),
    [
        ("@openfn/language-common@9.9.9", "has no version 9.9.9 (its latest is 3.3.4)"),
        ("@openfn/language-common@^9", "has no version in the range '^9' (its latest is 3.3.4)"),
        ("@openfn/language-common@beta", "has no dist-tag 'beta' (its latest is 3.3.4)"),
    ],
)
def test_a_version_that_is_not_there_is_named(adaptor: str, says: str) -> None:
    with pytest.raises(InputError) as refused:
        pick(parse_request(adaptor), COMMON_PACKUMENT)
    assert refused.value.code == "unknown_adaptor_version"
    assert refused.value.message == f"adaptor {adaptor!r}: @openfn/language-common {says}"


@pytest.mark.parametrize(
    ("adaptor", "resolved"),
    [
        ("@openfn/language-common@3.3.4", True),
        ("@openfn/language-dhis2@5.0.0-beta.2", True),
        ("@openfn/language-common@latest", False),
        ("@openfn/language-common@^3", False),
        ("@openfn/language-common", False),
        ("common", False),
        ("lodash@4.17.21", False),
    ],
)
def test_only_an_exact_version_of_an_openfn_package_is_resolved(
    adaptor: str, resolved: bool
) -> None:
    assert is_resolved(adaptor) is resolved


@pytest.mark.parametrize("document", [[], {"versions": {}}, {"dist-tags": "latest"}])
def test_an_answer_that_is_not_a_packument_is_the_registrys_fault(document: object) -> None:
    with pytest.raises(RegistryError) as refused:
        Packument.from_json("@openfn/language-http", document)
    assert refused.value.code == "registry_error"
    assert "@openfn/language-http" in refused.value.message


def test_a_full_packument_reads_as_an_abbreviated_one() -> None:
    full = {**HTTP, "readme": "# http", "time": {"7.0.0": "2026-01-01T00:00:00Z"}}
    packages = Packument.from_json("@openfn/language-http", full)
    assert packages.latest == "7.0.0"
    assert set(packages.versions) == {"5.0.4", "6.4.3", "6.5.1", "7.0.0"}
