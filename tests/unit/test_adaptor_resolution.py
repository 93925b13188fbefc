"""Which module an adaptor name means, and what a job gets from it."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fulmen.adaptors import common, http
from fulmen.errors import AdaptorError
from fulmen.runtime.adaptors import job_scope, load, module_name, scope

if TYPE_CHECKING:
    from conftest import RunFn


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("common", "fulmen.adaptors.common"),
        ("http", "fulmen.adaptors.http"),
        (" http ", "fulmen.adaptors.http"),
        ("@openfn/language-http@6.5.1", "fulmen.adaptors.http"),
        ("@openfn/language-common@2.1.1", "fulmen.adaptors.common"),
        ("@openfn/language-common@local", "fulmen.adaptors.common"),
        ("@openfn/language-http", "fulmen.adaptors.http"),
        ("http@1.2", "fulmen.adaptors.http"),
        ("common@latest", "fulmen.adaptors.common"),
    ],
)
def test_builtin_names(name: str, module: str) -> None:
    assert module_name(name) == module


def test_builtins_load() -> None:
    assert load("@openfn/language-http@6.5.1") is http
    assert load("common") is common


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "nothing_like_this_adaptor",
            "unknown adaptor 'nothing_like_this_adaptor': no module 'nothing_like_this_adaptor' "
            "is installed with this worker (name common, http, or a package at a version, such "
            "as pandas@2.2.3)",
        ),
        (
            "my-adaptor",
            "unknown adaptor 'my-adaptor': no module 'my-adaptor' is installed with this worker "
            "(name common, http, or a package at a version, such as pandas@2.2.3)",
        ),
        (
            "@openfn/language-dhis2@4.0.0",
            "unknown adaptor '@openfn/language-dhis2@4.0.0': of Lightning's adaptors a Python "
            "job can use common, http and collections (@openfn/language-common, "
            "@openfn/language-http, @openfn/language-collections); for the others make it a "
            "JavaScript job",
        ),
        (
            "mypkg@4.0.0",
            "adaptor 'mypkg@4.0.0': the package is not installed for this run (this worker "
            "installs no Python packages)",
        ),
    ],
)
def test_an_unknown_adaptor_is_an_adaptor_error_saying_what_works(name: str, message: str) -> None:
    with pytest.raises(AdaptorError) as caught:
        module_name(name)
    assert caught.value.code == "AdaptorError"
    assert caught.value.message == message


@pytest.mark.parametrize("name", ["", "../etc", "x @ https://example.org/x.whl", "a b"])
def test_a_name_that_is_no_adaptor_says_what_a_python_job_can_use(name: str) -> None:
    with pytest.raises(AdaptorError) as caught:
        module_name(name)
    assert f"{name!r} is not an adaptor a Python job can use" in caught.value.message
    assert "pandas@2.2.3" in caught.value.message


def test_the_job_scope_is_the_adaptors_all() -> None:
    names = scope(common)
    assert set(names) == set(common.__all__)
    assert names["fn"] is common.fn
    assert "logger" not in names


def test_http_puts_common_in_scope_too() -> None:
    names = scope(http)
    assert set(common.__all__) <= set(names)
    assert {"get", "post", "put", "patch", "delete", "request", "HTTPError"} <= set(names)


# -- third-party adaptors: plain modules on sys.path --------------------------------------------


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for adaptor modules; forgets them afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


GREETER = """
from fulmen.adaptors.common import fn

__all__ = ["greet", "fn"]

def greet(name):
    return fn(lambda state: {**state, "data": {"greeting": "hello " + name}})

def not_exported():
    pass
"""


def test_a_third_party_module_is_an_adaptor(site: Path, run: RunFn) -> None:
    (site / "fulmen_test_greeter.py").write_text(GREETER)

    assert module_name("fulmen_test_greeter") == "fulmen_test_greeter"
    module = load("fulmen_test_greeter")
    assert set(scope(module)) == {"greet", "fn"}

    plan = {"jobs": [{"id": "j", "adaptor": "fulmen_test_greeter", "body": "greet('you')"}]}
    events = run(plan)
    assert events.complete.reason == "success"
    assert events.final_state == {"data": {"greeting": "hello you"}}


def test_a_library_as_adaptor_brings_its_names_over_commons_operations(
    site: Path, run: RunFn
) -> None:
    (site / "fulmen_test_library.py").write_text("def double(x):\n    return 2 * x\n")
    names = job_scope(load("fulmen_test_library"))
    assert {"fn", "each", "double", "fulmen_test_library"} <= set(names)
    assert job_scope(common) == scope(common)

    body = "fn(lambda state: {**state, 'data': double(21)})"
    events = run({"jobs": [{"id": "j", "adaptor": "fulmen_test_library", "body": body}]})
    assert events.final_state == {"data": 42}


def test_without_all_every_public_name_is_in_scope(site: Path) -> None:
    (site / "fulmen_test_open.py").write_text("import json as _json\nVALUE = 1\ndef op(): pass\n")
    assert set(scope(load("fulmen_test_open"))) == {"VALUE", "op"}


def test_a_module_inside_a_package_is_an_adaptor(site: Path) -> None:
    package = site / "fulmen_test_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "adaptor.py").write_text(GREETER)
    assert module_name("fulmen_test_pkg.adaptor") == "fulmen_test_pkg.adaptor"
    assert "greet" in scope(load("fulmen_test_pkg.adaptor"))


def test_an_entry_point_names_an_adaptor(site: Path) -> None:
    (site / "fulmen_test_ep_impl.py").write_text(GREETER)
    dist = site / "fulmen_test_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fulmen-test-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[fulmen.adaptors]\nfulmen-greeter = fulmen_test_ep_impl\n"
    )
    assert module_name("fulmen-greeter") == "fulmen_test_ep_impl"
    assert "greet" in scope(load("fulmen-greeter"))


@pytest.mark.parametrize(
    ("files", "adaptor", "message"),
    [
        (
            {"fulmen_test_needs.py": "import fulmen_test_not_installed\n"},
            "fulmen_test_needs",
            "adaptor 'fulmen_test_needs' could not be imported: ModuleNotFoundError: "
            "No module named 'fulmen_test_not_installed'",
        ),
        (
            {"fulmen_test_raises.py": "raise RuntimeError('broken at import')\n"},
            "fulmen_test_raises",
            "adaptor 'fulmen_test_raises' could not be imported: RuntimeError: broken at import",
        ),
        (
            {"fulmen_test_pkg2/__init__.py": ""},
            "fulmen_test_pkg2.missing",
            "adaptor 'fulmen_test_pkg2.missing' could not be imported: ModuleNotFoundError: "
            "No module named 'fulmen_test_pkg2.missing'",
        ),
    ],
    ids=["missing-dependency", "raises", "missing-submodule"],
)
def test_an_adaptor_that_cannot_be_imported_crashes_before_any_step(
    site: Path, run: RunFn, files: dict[str, str], adaptor: str, message: str
) -> None:
    for name, text in files.items():
        (site / name).parent.mkdir(exist_ok=True)
        (site / name).write_text(textwrap.dedent(text))

    with pytest.raises(AdaptorError) as caught:
        load(adaptor)
    assert caught.value.message == message

    plan = {
        "jobs": [
            {"id": "first", "body": "print('ran')"},
            {"id": "second", "adaptor": adaptor, "body": ""},
        ],
        "edges": [{"source_job_id": "first", "target_job_id": "second"}],
    }
    events = run(plan)
    assert (events.complete.reason, events.complete.error_type) == ("crash", "AdaptorError")
    assert events.complete.error_message == message
    assert events.started == []
