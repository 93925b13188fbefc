"""What a Python job's adaptor and requirements mean, before anything is installed (issue 16)."""

from __future__ import annotations

import pytest

from fulmen.errors import InputError
from fulmen.plan import Plan
from fulmen.python_requirements import (
    AdaptorKind,
    conflicts,
    environment_key,
    exact_version,
    is_resolved,
    package_requirements,
    pinned,
    read_adaptor,
    read_requirement,
    saved_adaptor,
    saved_requirement,
)


@pytest.mark.parametrize(
    ("written", "kind", "module", "requirement"),
    [
        ("common", AdaptorKind.BUILTIN, "fulmen.adaptors.common", None),
        ("http@6.5.1", AdaptorKind.BUILTIN, "fulmen.adaptors.http", None),
        ("@openfn/language-common@3.3.4", AdaptorKind.BUILTIN, "fulmen.adaptors.common", None),
        ("yaml", AdaptorKind.MODULE, "yaml", None),
        ("acme.adaptors.crm", AdaptorKind.MODULE, "acme.adaptors.crm", None),
        ("acme-adaptor", AdaptorKind.MODULE, "acme-adaptor", None),
        ("pandas@2.2.3", AdaptorKind.PACKAGE, None, "pandas==2.2.3"),
        ("pandas@latest", AdaptorKind.PACKAGE, None, "pandas"),
        ("pandas@>=2,<3", AdaptorKind.PACKAGE, None, "pandas<3,>=2"),
        ("pandas@~=2.2", AdaptorKind.PACKAGE, None, "pandas~=2.2"),
        ("pandas==2.2.3", AdaptorKind.PACKAGE, None, "pandas==2.2.3"),
        ("pandas[sql]@2.2.3", AdaptorKind.PACKAGE, None, "pandas[sql]==2.2.3"),
        (" PyYAML@6.0.2 ", AdaptorKind.PACKAGE, None, "PyYAML==6.0.2"),
    ],
)
def test_what_an_adaptor_means(
    written: str, kind: AdaptorKind, module: str | None, requirement: str | None
) -> None:
    adaptor = read_adaptor(written)
    assert adaptor.kind is kind
    assert adaptor.module == module
    assert (str(adaptor.requirement) if adaptor.requirement else None) == requirement


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("@openfn/language-dhis2@4.0.0", "for the others make it a JavaScript job"),
        ("probe @ https://example.org/probe.whl", "a URL or path is not accepted"),
        ("probe @ file:///etc/passwd", "a URL or path is not accepted"),
        ("", "is not an adaptor a Python job can use"),
        ("pandas@", "is not an adaptor a Python job can use"),
        ("../etc", "is not an adaptor a Python job can use"),
    ],
)
def test_an_adaptor_that_cannot_be_is_refused_saying_why(written: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        read_adaptor(written)
    assert caught.value.code == "bad_adaptor"
    assert says in caught.value.message


@pytest.mark.parametrize(
    "written",
    [
        "--index-url=http://evil.example/simple",
        "-r /etc/passwd",
        "-e .",
        "six==1.0 --hash=sha256:00",
        'six==1.0; os_name=="posix"\n--index-url http://evil.example',
        "six[--x]==1",
    ],
)
def test_a_requirement_never_carries_an_installer_option(written: str) -> None:
    """Requirements reach uv's command line and a requirements file: nothing in one may read
    as an option there."""
    with pytest.raises(InputError) as caught:
        read_requirement(written)
    assert caught.value.code == "bad_requirement"
    assert caught.value.message.startswith(f"requirement {written!r}: ")


def test_exact_versions_and_the_saved_forms() -> None:
    assert exact_version(read_requirement("httpx==0.28.1")) == "0.28.1"
    assert exact_version(read_requirement("httpx@0.28.1")) == "0.28.1"
    assert exact_version(read_requirement("httpx===0.28.1")) == "0.28.1"
    for loose in ("httpx", "httpx>=0.27", "httpx==0.28.*", "httpx>=0.27,<1"):
        assert exact_version(read_requirement(loose)) is None
    wanted = read_requirement("httpx[http2]>=0.27; python_version >= '3.11'")
    assert saved_requirement(wanted, "0.28.1") == ('httpx[http2]==0.28.1; python_version >= "3.11"')
    assert saved_adaptor(read_requirement("Pandas[sql]>=2"), "2.2.3") == "Pandas[sql]@2.2.3"


def test_pins_are_canonical_sorted_and_make_one_key_whatever_their_order() -> None:
    pins = pinned(
        [
            read_requirement("PyYAML==6.0.2"),
            read_requirement("six==1.16.0"),
            read_requirement("pyyaml@6.0.2"),
        ]
    )
    assert pins == ("pyyaml==6.0.2", "six==1.16.0")
    assert environment_key(pins) == environment_key(tuple(reversed(pins)))
    assert environment_key(pins) != environment_key(("six==1.17.0", "pyyaml==6.0.2"))
    assert environment_key(pins) != environment_key(pins, index="http://127.0.0.1/simple")
    with pytest.raises(ValueError, match="not pinned"):
        pinned([read_requirement("six>=1")])


def plan(*jobs: dict[str, object]) -> Plan:
    return Plan.from_wire({"id": "p", "jobs": [{"body": "", **job} for job in jobs]})


def test_a_job_needs_its_adaptor_package_and_its_requirements() -> None:
    (job,) = plan({"id": "a", "adaptor": "pandas@2.2.3", "requirements": ["httpx>=0.27"]}).jobs
    assert [str(r) for r in package_requirements(job)] == ["pandas==2.2.3", "httpx>=0.27"]
    assert not is_resolved(job)
    (common,) = plan({"id": "b", "adaptor": "common"}).jobs
    assert package_requirements(common) == [] and is_resolved(common)
    (js,) = plan({"id": "c", "adaptor": "@openfn/language-common@3.3.4"}).jobs
    assert package_requirements(js) == []


def test_jobs_pinning_one_package_at_two_versions_conflict_and_equal_pins_do_not() -> None:
    assert conflicts(
        plan(
            {"id": "a", "name": "load", "adaptor": "PyYAML@6.0.2"},
            {"id": "b", "requirements": ["pyyaml==6.0.1"]},
            {"id": "c", "requirements": ["pyyaml==6.0.2", "six==1.16.0"]},
        )
    ) == [
        "pyyaml is pinned at 6.0.2 by job 'load' and at 6.0.1 by job 'b': a workflow's "
        "Python jobs share one environment"
    ]
    assert (
        conflicts(plan({"id": "a", "adaptor": "six@1.16"}, {"id": "b", "adaptor": "six@1.16.0"}))
        == []
    )
