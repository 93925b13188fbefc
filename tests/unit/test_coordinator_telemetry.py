"""FastAPI's native OpenTelemetry: off in a process that has no OpenTelemetry providers (its
per-request look-ups then cost every webhook for nothing), left as FastAPI has it when
FastAPI is told to configure them itself."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI

from fulmen.coordinator.telemetry import OFF, telemetry_settings

native = pytest.mark.skipif(
    "telemetry" not in inspect.signature(FastAPI.__init__).parameters,
    reason="this FastAPI has no native telemetry",
)


@native
def test_without_providers_the_instrumentation_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    assert telemetry_settings() == {"telemetry": OFF}
    app = FastAPI(**telemetry_settings())
    assert app._native_telemetry.enabled() is False


@native
def test_fastapi_configuring_providers_keeps_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert telemetry_settings() == {}


def test_a_fastapi_without_native_telemetry_is_given_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def plain(self: object, *, title: str = "") -> None: ...

    monkeypatch.setattr(FastAPI, "__init__", plain)
    assert telemetry_settings() == {}
