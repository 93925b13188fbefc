"""Python jobs that pin packages: installed once with uv from a real package index into an
environment each run's sandboxed child reads and cannot change (issue 16).

The index is ``fulmen_testing.python_index``: a PEP 503 index on loopback serving real wheels
(``fulmen-probe`` 1.0.0 and 2.0.0, ``fulmen-adaptor-demo`` 0.1.0), so the tests do not depend
on PyPI's contents; one test installs a small package from the real index as an operator's
worker would. Every run goes through ``execution.start`` in a real zygote, at the isolation
the host gives, exactly as the worker's runs do.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fulmen.config import SandboxSettings
from fulmen.execution import Defaults, Execution, Python, RunRequest, start, start_zygote
from fulmen.packages.pypi import CacheLimits, PythonRepo
from fulmen.plan import Plan
from fulmen.python_requirements import pinned, read_requirement
from fulmen_testing.javascript import Run
from fulmen_testing.python_index import Index, python_index, wheel

#: A job that reports the version of fulmen-probe it imported, three ways.
REPORT = """
import importlib.metadata
import fulmen_probe
fn(lambda state: {"data": {
    "module": fulmen_probe.VERSION,
    "metadata": importlib.metadata.version("fulmen-probe"),
    "shout": fulmen_probe.shout("hi"),
}})
"""


@pytest.fixture(scope="module")
def index() -> Iterator[Index]:
    with python_index() as served:
        yield served


@pytest.fixture
def python(tmp_path: Path, index: Index) -> Python:
    repo = PythonRepo(tmp_path / "repo", index=index.url)
    repo.prepare()
    return Python(repo)


def plan(*jobs: dict[str, Any], edges: list[dict[str, Any]] | None = None) -> Plan:
    return Plan.from_wire(
        {"id": "run", "jobs": [{"adaptor": "common", **job} for job in jobs], "edges": edges or []}
    )


class Ran(Run):
    """A run's events and what its execution said of its packages."""

    def __init__(self, execution: Execution, events: list[Any]) -> None:
        super().__init__(events)
        self.packages = dict(execution.packages)


async def _one(zygote: Any, python: Python, wanted: Plan) -> Ran:
    execution = await start(zygote, RunRequest(wanted, {"data": {}}), Defaults(), None, python)
    return Ran(execution, [event async for event in execution])


def run(python: Python, *plans: Plan) -> list[Ran]:
    """Run ``plans`` at the same time in one zygote, as a worker with capacity does."""

    async def main() -> list[Ran]:
        async with await start_zygote(SandboxSettings(), None, python) as zygote:
            async with asyncio.timeout(120):
                return list(await asyncio.gather(*(_one(zygote, python, p) for p in plans)))

    return asyncio.run(main())


# -- what a job gets ----------------------------------------------------------------------------


def test_two_runs_pinning_two_versions_run_side_by_side_each_with_its_own(
    python: Python,
) -> None:
    as_adaptor = plan({"id": "old", "adaptor": "fulmen-probe@1.0.0", "body": REPORT})
    as_requirement = plan({"id": "new", "requirements": ["fulmen-probe==2.0.0"], "body": REPORT})

    old, new = run(python, as_adaptor, as_requirement)

    assert old.complete.reason == new.complete.reason == "success"
    assert old.final == {"data": {"module": "1.0.0", "metadata": "1.0.0", "shout": "HI!"}}
    assert new.final == {"data": {"module": "2.0.0", "metadata": "2.0.0", "shout": "HI!"}}
    # What the run reports (run:start's versions) is what the job imported.
    assert old.packages["fulmen-probe"] == "1.0.0"
    assert new.packages["fulmen-probe"] == "2.0.0"
    assert new.packages["common"]  # Fulmen's own adaptor, at Fulmen's version


def test_a_second_run_of_the_same_pins_installs_nothing(python: Python, index: Index) -> None:
    wanted = plan({"id": "j", "adaptor": "fulmen-probe@1.0.0", "body": REPORT})
    (first,) = run(python, wanted)
    asked = len(index.requests)
    (second,) = run(python, wanted)

    assert any(line.startswith("Installing Python packages") for line in first.lines("R/T"))
    assert "+ fulmen-probe==1.0.0" in first.lines("R/T")
    assert any(line.startswith("Installed Python packages in ") for line in first.lines("R/T"))
    assert not [line for line in second.lines("R/T") if "Install" in line]
    assert len(index.requests) == asked  # the index was not asked again
    assert second.final == first.final


def test_runs_starting_together_install_their_environment_once(
    python: Python, index: Index
) -> None:
    wanted = plan({"id": "j", "adaptor": "fulmen-probe@2.0.0", "body": REPORT})
    runs = run(python, wanted, wanted, wanted)

    installing = [r for r in runs if any("Installing" in line for line in r.lines("R/T"))]
    assert len(installing) == 1
    assert all(r.final["data"]["module"] == "2.0.0" for r in runs)
    assert len(python.repo.environments()) == 1


def test_a_version_not_pinned_yet_is_asked_of_the_index(python: Python) -> None:
    latest, older = run(
        python,
        plan({"id": "j", "adaptor": "fulmen-probe@latest", "body": REPORT}),
        plan({"id": "j", "adaptor": "common", "requirements": ["fulmen-probe<2"], "body": REPORT}),
    )
    assert latest.final["data"]["module"] == "2.0.0"
    assert older.final["data"]["module"] == "1.0.0"
    assert latest.packages["fulmen-probe"] == "2.0.0"


def test_a_third_party_adaptor_extends_common(python: Python) -> None:
    body = "greet('you')\nfn(lambda state: {**state, 'shouted': state['greeting'].upper()})\n"
    (ran,) = run(python, plan({"id": "j", "adaptor": "fulmen-adaptor-demo@0.1.0", "body": body}))

    assert ran.complete.reason == "success", ran.lines()[-6:]
    assert ran.final["greeting"] == "hello you"
    assert ran.final["shouted"] == "HELLO YOU"
    assert ran.packages["fulmen-adaptor-demo"] == "0.1.0"


def test_a_library_as_adaptor_puts_its_names_in_scope(python: Python) -> None:
    body = "fn(lambda state: {'data': shout(VERSION)})\n"
    (ran,) = run(python, plan({"id": "j", "adaptor": "fulmen-probe@1.0.0", "body": body}))
    assert ran.final == {"data": "1.0.0!"}


# -- what goes wrong, said clearly --------------------------------------------------------------


def test_a_pin_that_does_not_exist_crashes_the_run_naming_it(python: Python) -> None:
    wanted = plan({"id": "j", "adaptor": "fulmen-probe@9.9.9", "body": REPORT})
    (ran,) = run(python, wanted)

    assert (ran.complete.reason, ran.complete.error_type) == ("crash", "AdaptorError")
    message = ran.complete.error_message or ""
    assert message.startswith("fulmen-probe==9.9.9: uv failed: ")
    assert "there is no version of fulmen-probe==9.9.9" in message
    assert any("unsatisfiable" in line for line in ran.lines("R/T"))  # uv's own output
    assert ran.steps == []  # no step ran
    assert python.repo.environments() == []


def test_a_package_the_index_does_not_have_crashes_the_run_naming_it(python: Python) -> None:
    (ran,) = run(python, plan({"id": "j", "adaptor": "fulmen-nothing@1.0.0", "body": REPORT}))
    assert ran.complete.error_type == "AdaptorError"
    assert "fulmen-nothing was not found in the package registry" in (
        ran.complete.error_message or ""
    )


def test_two_jobs_pinning_one_package_at_two_versions_are_refused(python: Python) -> None:
    wanted = plan(
        {"id": "a", "name": "first", "adaptor": "fulmen-probe@1.0.0", "body": REPORT},
        {"id": "b", "name": "second", "requirements": ["fulmen-probe==2.0.0"], "body": REPORT},
        edges=[{"source_job_id": "a", "target_job_id": "b"}],
    )
    (ran,) = run(python, wanted)
    assert ran.complete.error_type == "AdaptorError"
    assert ran.complete.error_message == (
        "fulmen-probe is pinned at 1.0.0 by job 'first' and at 2.0.0 by job 'second': a "
        "workflow's Python jobs share one environment"
    )


def test_a_url_is_never_handed_to_the_installer(python: Python, index: Index) -> None:
    asked = len(index.requests)
    wanted = plan({"id": "j", "requirements": ["evil @ http://127.0.0.1:9/evil.whl"], "body": ""})
    (ran,) = run(python, wanted)
    assert ran.complete.error_type == "AdaptorError"
    assert "a URL or path is not accepted" in (ran.complete.error_message or "")
    assert len(index.requests) == asked


# -- the environment is the run's to read, not to change ----------------------------------------

ATTACK = """
import os, pathlib, fulmen_probe
site = pathlib.Path(fulmen_probe.where()).parent.parent
tried = {}
for name, attempt in [
    ("rewrite", lambda: pathlib.Path(fulmen_probe.where()).write_text("VERSION = 'evil'")),
    ("add", lambda: (site / "planted.py").write_text("x = 1")),
    ("remove", lambda: pathlib.Path(fulmen_probe.where()).unlink()),
    ("list", lambda: os.listdir(site.parent.parent)),
]:
    try:
        attempt()
        tried[name] = "done"
    except OSError as exc:
        tried[name] = type(exc).__name__
fn(lambda state: {"data": tried})
"""


def test_a_job_cannot_change_or_list_the_environments(python: Python) -> None:
    wanted = plan({"id": "j", "adaptor": "fulmen-probe@1.0.0", "body": ATTACK})
    (attack,) = run(python, wanted)
    (after,) = run(python, plan({"id": "j", "adaptor": "fulmen-probe@1.0.0", "body": REPORT}))

    assert attack.complete.reason == "success", attack.lines()
    assert "done" not in attack.final["data"].values(), attack.final
    assert after.final["data"]["module"] == "1.0.0"
    (environment,) = python.repo.environments()
    assert not (environment.site / "planted.py").exists()


# -- the cache ----------------------------------------------------------------------------------


def test_prune_removes_the_least_recently_used_and_never_one_in_use(python: Python) -> None:
    repo = python.repo

    async def install(*texts: str) -> Any:
        return await repo.environment(pinned([read_requirement(t) for t in texts]), print)

    old = asyncio.run(install("fulmen-probe==1.0.0"))
    held = asyncio.run(install("fulmen-probe==2.0.0"))
    new = asyncio.run(install("fulmen-adaptor-demo==0.1.0"))
    now = time.time()
    for environment, used in ((old, now - 300), (held, now - 200), (new, now - 100)):
        os.utime(repo.base / f"{environment.key}.lock", (used, used))

    # Over the size limit: the least recently used goes first, and only as many as needed.
    removed = repo.prune(CacheLimits(max_bytes=held.size + new.size, max_age_s=86_400), now=now)
    assert [e.key for e in removed] == [old.key]

    async def prune_while_held() -> list[Any]:
        async with repo.using(held):  # a run holds it: it stays, whatever the limits
            return repo.prune(CacheLimits(max_bytes=0, max_age_s=0), now=now)

    removed = asyncio.run(prune_while_held())
    assert [e.key for e in removed] == [new.key]
    assert [e.key for e in repo.environments()] == [held.key]

    later = time.time() + 200  # the run's hold marked it used: 200 s after that
    removed = repo.prune(CacheLimits(max_bytes=10**12, max_age_s=150), now=later)
    assert [e.key for e in removed] == [held.key]  # unused for longer than the age limit
    assert repo.environments() == []


def test_a_pruned_environment_is_installed_again_by_the_next_run(python: Python) -> None:
    wanted = plan({"id": "j", "adaptor": "fulmen-probe@1.0.0", "body": REPORT})
    run(python, wanted)
    assert len(python.repo.prune(CacheLimits(max_bytes=0, max_age_s=0))) == 1

    (again,) = run(python, wanted)
    assert any("Installing" in line for line in again.lines("R/T"))
    assert again.final["data"]["module"] == "1.0.0"


def test_a_prewarmed_environment_runs_with_the_index_gone(tmp_path: Path) -> None:
    wanted = plan({"id": "j", "adaptor": "fulmen-probe@2.0.0", "body": REPORT})
    with python_index() as short_lived:
        repo = PythonRepo(tmp_path / "repo", index=short_lived.url)
        repo.prepare()
        warm = Python(repo)
        asyncio.run(warm.setup_for(wanted, print))  # what `fulmen adaptors install` does
    # The index is gone (its port closed); the same pins need nothing from it.
    (ran,) = run(warm, wanted)
    assert ran.final["data"]["module"] == "2.0.0"
    assert not [line for line in ran.lines("R/T") if "Install" in line]


# -- the real package index ---------------------------------------------------------------------


def test_a_small_package_from_the_real_index(tmp_path: Path) -> None:
    """As an operator's worker does it: uv's own index settings, PyPI by default."""
    repo = PythonRepo(tmp_path / "repo")
    repo.prepare()
    body = (
        "import importlib.metadata\n"
        "fn(lambda state: {'data': [six.__version__, importlib.metadata.version('six')]})\n"
    )
    (ran,) = run(Python(repo), plan({"id": "j", "adaptor": "six@1.16.0", "body": body}))
    assert ran.complete.reason == "success", ran.lines()
    assert ran.final == {"data": ["1.16.0", "1.16.0"]}
    assert ran.packages["six"] == "1.16.0"


# -- warm spares --------------------------------------------------------------------------------

SEEN = """
import sys
fn(lambda state: {"data": {
    "imported": "fulmen_probe" in sys.modules,
    "version": sys.modules["fulmen_probe"].VERSION if "fulmen_probe" in sys.modules else None,
}})
"""


def test_a_spare_warmed_for_an_environment_serves_only_runs_of_that_environment(
    python: Python,
) -> None:
    """After a run of an environment, spares import its packages before their run arrives;
    a run of another environment, or of none, never gets such a spare."""
    first = plan({"id": "j", "requirements": ["fulmen-probe==1.0.0"], "body": SEEN})
    other = plan(
        {"id": "j", "adaptor": "common", "requirements": ["fulmen-probe==2.0.0"], "body": SEEN}
    )
    plain = plan({"id": "j", "adaptor": "common", "body": SEEN})

    async def main() -> list[Ran]:
        async with await start_zygote(SandboxSettings(), None, python) as zygote:
            if zygote.isolation.level != "L3":
                pytest.fail("spares are warmed only at L3 (namespaces), which this host lacks")
            runs = []
            for wanted in (first, first, other, other, plain, first):
                runs.append(await _one(zygote, python, wanted))
            return runs

    cold, warm, switched, warm_again, none, back = asyncio.run(main())
    assert seen(cold) == {"imported": False, "version": None}
    assert seen(warm) == {"imported": True, "version": "1.0.0"}
    assert seen(switched) == {"imported": False, "version": None}
    assert seen(warm_again) == {"imported": True, "version": "2.0.0"}
    assert seen(none) == {"imported": False, "version": None}
    assert seen(back) == {"imported": False, "version": None}


#: A package whose import lists the descriptors it was imported with, and writes every
#: eventfd among them (the zygote's OOM watch of another run, on cgroup v1).
HOSTILE = wheel(
    "fulmen-hostile",
    "1.0.0",
    {
        "fulmen_hostile/__init__.py": (
            "import os\n"
            "FOUND = {}\n"
            "for name in os.listdir('/proc/self/fd'):\n"
            "    try:\n"
            "        FOUND[name] = os.readlink('/proc/self/fd/' + name)\n"
            "    except OSError:\n"
            "        continue\n"
            "    if FOUND[name] == 'anon_inode:[eventfd]':\n"
            "        os.eventfd_write(int(name), 1)\n"
        )
    },
)


def test_a_pinned_package_imported_by_a_warm_spare_finds_nothing_of_the_sandbox_s(
    tmp_path: Path,
) -> None:
    """The spare warmed for an environment imports its packages before its run arrives:
    that import is the package author's code, and must find no descriptor of the zygote's
    (its epoll set, other runs' pidfds and OOM eventfds, its uid range's lock) nor the
    worker's stderr: only what the confined spare itself holds."""
    hostile = plan(
        {
            "id": "j",
            "requirements": ["fulmen-hostile==1.0.0"],
            "body": "import fulmen_hostile\nfn(lambda s: {'data': fulmen_hostile.FOUND})\n",
        }
    )
    with python_index({"fulmen-hostile": {"1.0.0": HOSTILE}}) as served:
        repo = PythonRepo(tmp_path / "repo", index=served.url)
        repo.prepare()
        environment = Python(repo)

        async def main() -> list[Ran]:
            async with await start_zygote(SandboxSettings(), None, environment) as zygote:
                assert zygote.isolation.level == "L3", "spares are warmed at L3 only"
                return [await _one(zygote, environment, hostile) for _ in range(2)]

        cold, warm = asyncio.run(main())
    # Imported by the run itself: its output on 1 and 2, its socket on 3.
    assert seen(cold)["3"].startswith("socket:")
    # Imported before the run: /dev/null, and the spare's own socket to the zygote, on a
    # descriptor above 3 (the zygote's number for it).
    found = seen(warm)
    (own,) = set(found) - {"0", "1", "2"}
    assert int(own) > 3, found
    assert found == {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null", own: found[own]}
    assert found[own].startswith("socket:")


def seen(ran: Ran) -> Any:
    assert ran.complete.reason == "success", ran.lines()
    return ran.final["data"]
