"""FastAPI's native OpenTelemetry, on only when there is somewhere for it to go.

Newer FastAPI releases instrument every request and WebSocket themselves when the process has
OpenTelemetry providers, and find out by looking the global providers up again on each
request: a few environment reads and provider checks that cost about 35 µs of every
webhook (measured with 32 in flight: 0.605-0.625 ms of coordinator CPU per webhook with
the look-ups, 0.570-0.590 without). Fulmen configures no OpenTelemetry itself, so unless the
process was given providers before the app is built (``opentelemetry-instrument``, an
SDK configured by the operator) or FastAPI is told to configure them at startup
(``FASTAPI_OTEL_AUTO_CONFIGURE``), the instrumentation is turned off and the look-ups with
it. With providers, nothing changes. Providers set up only after the app is built are
not seen.

FastAPI releases without native telemetry (the declared minimum among them) take no such
setting: nothing is passed to them.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from fastapi import FastAPI

__all__ = ["telemetry_settings"]

#: Every kind of FastAPI's native instrumentation, off.
OFF: dict[str, bool] = {"tracing": False, "metrics": False, "logs": False}


def telemetry_settings() -> dict[str, Any]:
    """The keyword arguments for ``FastAPI(...)``: ``telemetry`` off when nothing would use
    it, else none (FastAPI's defaults)."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return {}
    try:  # FastAPI's own test, with its defaults; its module is private, hence the guard
        from fastapi.telemetry._asgi import NativeTelemetry

        configured = NativeTelemetry(
            {
                "tracer_provider": None,
                "meter_provider": None,
                "logger_provider": None,
                "tracing": True,
                "metrics": True,
                "logs": True,
                "operation_spans": True,
                "auto_configure": False,
                "exclude": None,
            }
        ).enabled()
    except Exception:  # another FastAPI than the one measured: leave it as it is
        return {}
    return {} if configured else {"telemetry": dict(OFF)}
