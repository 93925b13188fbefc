"""fulmen.coordinator.registry: each way the npm registry can fail a save becomes a Fulmen error
naming the package and the registry, never the registry's credentials. (Answers over real
HTTP, from a registry on loopback: tests/integration/test_job_languages.py.)"""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from fulmen.coordinator.registry import NpmRegistry
from fulmen.errors import FulmenError, InputError, RegistryError

BASE = "https://ci:s3cr3t-token@npm.example.org/api/npm/"


def fetched(transport: httpx2.MockTransport, base: str = BASE) -> FulmenError:
    async def main() -> None:
        registry = NpmRegistry(base, timeout=0.5, transport=transport)
        async with registry.session() as session:
            await session.packument("@openfn/language-common")

    with pytest.raises(FulmenError) as failed:
        asyncio.run(main())
    return failed.value


def answer(status: int, content: bytes = b"{}") -> httpx2.MockTransport:
    return httpx2.MockTransport(lambda request: httpx2.Response(status, content=content))


def test_the_package_is_asked_for_by_its_encoded_name_under_the_base_path() -> None:
    asked: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        asked.append(str(request.url.raw_path, "ascii"))
        return httpx2.Response(200, json={"dist-tags": {"latest": "1.0.0"}, "versions": {}})

    async def main() -> str | None:
        registry = NpmRegistry(
            "https://npm.example.org/api/npm", timeout=1, transport=httpx2.MockTransport(handler)
        )
        async with registry.session() as session:
            first = await session.packument("@openfn/language-common")
            await session.packument("@openfn/language-common")  # asked once per save
            return first.latest

    assert asyncio.run(main()) == "1.0.0"
    assert asked == ["/api/npm/@openfn%2Flanguage-common"]


def test_a_package_the_registry_does_not_have_is_the_users_input() -> None:
    error = fetched(answer(404))
    assert isinstance(error, InputError) and error.code == "unknown_adaptor"
    assert error.message == (
        "the npm registry https://npm.example.org/api/npm/ has no package @openfn/language-common"
    )


@pytest.mark.parametrize(
    ("transport", "code", "says"),
    [
        (answer(500), "registry_error", "answered 500 about @openfn/language-common"),
        (answer(200, b"<html>"), "registry_error", "with something that is not JSON"),
        (answer(200, b"[1, 2]"), "registry_error", "is not a package document"),
    ],
)
def test_an_answer_that_is_not_a_packument_is_the_registrys_fault(
    transport: httpx2.MockTransport, code: str, says: str
) -> None:
    error = fetched(transport)
    assert isinstance(error, RegistryError) and error.code == code
    assert says in error.message and "s3cr3t" not in error.message


def test_a_registry_that_does_not_answer_in_time() -> None:
    def slow(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    error = fetched(httpx2.MockTransport(slow))
    assert isinstance(error, RegistryError) and error.code == "registry_unreachable"
    assert error.message == (
        "the npm registry https://npm.example.org/api/npm/ did not answer within 0.5 s "
        "about @openfn/language-common"
    )
