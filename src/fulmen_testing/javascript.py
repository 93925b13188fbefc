"""OpenFn's JavaScript packages for the tests: one repository per test session, installed as a
worker installs them (``fulmen.packages.npm``), from the npm registry or npm's cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from fulmen.execution import JS_SOURCE, JavaScript

__all__ = ["COMMON", "HTTP", "install"]

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
