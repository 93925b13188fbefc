"""The Jinja2 templates (autoescaped: every value from a run is text, never markup) and the
few filters they use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from fulmen.coordinator.dashboard.session import PREFIX
from fulmen.coordinator.dashboard.views import package_pins, state_class
from fulmen.plan import LANGUAGE_NAMES

__all__ = ["fragment", "page", "templates"]

#: Bumped with the static files, so that browsers fetch the new ones.
ASSETS_VERSION: Final = "10"


def _when(moment: datetime | None) -> str:
    """UTC, to the second; the page's script shows it in the reader's own zone."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment else ""


def _clock(moment: datetime) -> str:
    """A log line's time: to the millisecond (the day is the run's)."""
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


templates: Final = Environment(
    loader=PackageLoader("fulmen.coordinator.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(when=_when, iso=_iso, clock=_clock)
templates.globals.update(
    prefix=PREFIX,
    assets=ASSETS_VERSION,
    state_class=state_class,
    language_names=LANGUAGE_NAMES,
    package_pins=package_pins,
)


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A whole page. Pages are never cached: they show live state."""
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code, headers={"Cache-Control": "no-store"})


def fragment(name: str, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """Part of a page, for the page's script to put in place."""
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store", **(headers or {})})
