"""Shared fixtures: run a whole workflow through the runtime, in this process.

``run_workflow`` normally runs in a throwaway child and takes over ``sys.stdout``,
``sys.stderr`` and the root logger; the ``run`` fixture puts them back after each call so
that the tests can use the real engine without a subprocess.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import settings

from fulmen.execution import JavaScript
from fulmen.runtime.entry import run_workflow
from fulmen.runtime.events import (
    LogLine,
    RuntimeEvent,
    StepComplete,
    StepStart,
    WorkflowComplete,
    decode,
)
from fulmen_testing.javascript import COMMON, HTTP, install

#: scripts/test runs tests/unit again with every dependency at its declared floor: that run
#: looks for an API a floor lacks, not for a rare input, so its property tests try fewer.
settings.register_profile("minimum-versions", max_examples=10)


class Events(list[RuntimeEvent]):
    """The decoded events of one run, with shortcuts for the common assertions."""

    @property
    def complete(self) -> WorkflowComplete:
        last = self[-1]
        assert isinstance(last, WorkflowComplete), f"the run did not end with completion: {last}"
        return last

    @property
    def final_state(self) -> Any:
        text = self.complete.final_state
        return None if text is None else json.loads(text)

    @property
    def started(self) -> list[StepStart]:
        return [e for e in self if isinstance(e, StepStart)]

    @property
    def steps(self) -> list[StepComplete]:
        return [e for e in self if isinstance(e, StepComplete)]

    def step(self, job_id: str) -> StepComplete:
        """The one completed step of ``job_id``."""
        found = [s for s in self.steps if s.job_id == job_id]
        assert len(found) == 1, f"{job_id} completed {len(found)} times"
        return found[0]

    def output(self, job_id: str) -> Any:
        return json.loads(self.step(job_id).output)

    @property
    def ran(self) -> list[str]:
        """Job ids in the order their steps started."""
        return [s.job_id for s in self.started]

    def logs(self, source: str | None = None) -> list[LogLine]:
        return [e for e in self if isinstance(e, LogLine) and source in (None, e.source)]

    def messages(self, source: str | None = None) -> list[str]:
        return [" ".join(map(str, line.message)) for line in self.logs(source)]

    def everything(self) -> str:
        """Every event as JSON text: what would leave the child, for leak checks."""
        from fulmen.runtime.events import to_dict

        return "\n".join(json.dumps(to_dict(e)) for e in self)


RunFn = Callable[..., Events]


def single_job(body: str, adaptor: str = "common", **job: Any) -> dict[str, Any]:
    return {"jobs": [{"id": "job", "body": body, "adaptor": adaptor, **job}]}


@pytest.fixture(scope="session")
def javascript(tmp_path_factory: pytest.TempPathFactory) -> JavaScript:
    """Node.js with OpenFn's runtime and both adaptors the tests use, once per session."""
    if shutil.which("node") is None:  # scripts/test installs it: a missing one is a failure
        pytest.fail("these tests need Node.js and npm (Debian's nodejs and npm)")
    return install(tmp_path_factory.mktemp("repo"), COMMON, HTTP)


@pytest.fixture
def run() -> Iterator[RunFn]:
    """``run(plan, input=None, credentials=None, collections=None) -> Events``.

    ``plan`` is a Lightning plan dict, or a job body (one job, adaptor ``common``).
    """
    root = logging.getLogger()

    def _run(
        plan: Mapping[str, Any] | str,
        input: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        collections: Mapping[str, str] | None = None,
    ) -> Events:
        payload = {
            "plan": single_job(plan) if isinstance(plan, str) else plan,
            "input": dict(input or {}),
            "credentials": dict(credentials or {}),
            "collections": dict(collections or {}),
        }
        raw: list[dict[str, Any]] = []
        stdout, stderr = sys.stdout, sys.stderr
        handlers, level = list(root.handlers), root.level
        try:
            run_workflow(payload, raw.append)
        finally:
            sys.stdout, sys.stderr = stdout, stderr
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
        # Every event must survive the pipe: JSON-encodable and decodable.
        return Events(decode(json.loads(json.dumps(e))) for e in raw)

    yield _run
