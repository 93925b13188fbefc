"""OpenFn's JavaScript packages for the tests: one repository per test session, installed as a
worker installs them (``fulmen.packages.npm``), from the npm registry or npm's cache; and
what a test reads off a JavaScript run's events (:class:`Run`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Final

from fulmen.execution import JS_SOURCE, JavaScript
from fulmen.runtime.events import LogLine, RuntimeEvent, StepComplete, WorkflowComplete

__all__ = ["COMMON", "HTTP", "Run", "install"]

COMMON: Final = "@openfn/language-common@3.3.4"
HTTP: Final = "@openfn/language-http@7.2.10"


def install(repo: Path, *adaptors: str) -> JavaScript:
    """This host's Node.js with OpenFn's runtime and ``adaptors`` installed into ``repo``."""

    async def main() -> JavaScript:
        found, why_not = await JavaScript.find(repo)
        assert found is not None, why_not
        await found.repo.host(JS_SOURCE, lambda line: None)
        for spec in adaptors:
            name, _, version = spec.rpartition("@")
            await found.repo.adaptor(name, version, lambda line: None)
        return found

    return asyncio.run(main())


class Run:
    """The events of one run, and what a test reads off them."""

    def __init__(self, events: list[RuntimeEvent]) -> None:
        self.events = events
        complete = events[-1]
        assert isinstance(complete, WorkflowComplete), events[-3:]
        self.complete = complete

    @property
    def final(self) -> Any:
        return json.loads(self.complete.final_state) if self.complete.final_state else None

    @property
    def steps(self) -> list[StepComplete]:
        return [e for e in self.events if isinstance(e, StepComplete)]

    @property
    def outcomes(self) -> list[tuple[str, str, str | None]]:
        return [(s.job_id, s.reason, s.error_type) for s in self.steps]

    def lines(self, source: str | None = None) -> list[str]:
        return [
            " ".join(map(str, e.message))
            for e in self.events
            if isinstance(e, LogLine) and (source is None or e.source == source)
        ]
