"""The runs list's filters, read from the URL and written back into it (so that a search
is a link to share); the list, its live rows and its exports all read them here.

They combine: workflow, status group, text in the runs' logs and dataclips (the store's
bounded search, fulmen.store.reads), queued from / to (UTC, as the browser's
``datetime-local`` sends it, or with an offset) and work order. A value that cannot be read
is an InputError with a stable code and a message to show, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from fulmen.coordinator.dashboard.views import BAD_STATES
from fulmen.coordinator.moments import moment
from fulmen.errors import InputError
from fulmen.lifecycle import RunState
from fulmen.store import RunFilter
from fulmen.store.reads import MAX_SEARCH_TEXT

__all__ = ["STATUS_FILTERS", "RunQuery"]

#: The runs list's status filter: a few groups a person thinks in, each a set of states.
STATUS_FILTERS: Final[dict[str, frozenset[RunState]]] = {
    "queued": frozenset({RunState.AVAILABLE}),
    "running": frozenset({RunState.CLAIMED, RunState.STARTED}),
    "success": frozenset({RunState.SUCCESS}),
    "failed": frozenset(BAD_STATES),
    "cancelled": frozenset({RunState.CANCELLED}),
}
_MAX_ID: Final = 200


@dataclass(frozen=True, slots=True)
class RunQuery:
    """The runs list's filters, as the URL holds them (empty: not filtered)."""

    workflow_id: str = ""
    state: str = ""
    q: str = ""
    since: str = ""
    until: str = ""
    work_order_id: str = ""

    @classmethod
    def read(cls, params: Mapping[str, str]) -> RunQuery:
        """The filters of a query string, each checked (InputError naming the field)."""
        query = cls(**{name: params.get(name, "").strip() for name in cls.__slots__})
        query.filter()  # every value is checked here, before any page or export starts
        return query

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in self.__slots__)

    def filter(self) -> RunFilter:
        if self.state and self.state not in STATUS_FILTERS:
            known = ", ".join(STATUS_FILTERS)
            raise InputError(f"status is one of {known}", code="bad_state", field="state")
        if len(self.q) > MAX_SEARCH_TEXT:
            raise InputError(
                f"search for at most {MAX_SEARCH_TEXT} characters, not {len(self.q)}",
                code="search_too_long",
                field="q",
            )
        for name in ("workflow_id", "work_order_id"):
            if len(getattr(self, name)) > _MAX_ID:
                raise InputError(f"{name} is not an id", code="bad_id", field=name)
        since, until = moment(self.since, "since"), moment(self.until, "until")
        if since and until and since >= until:
            raise InputError("from must be before to", code="bad_time_range", field="until")
        return RunFilter(
            workflow_id=self.workflow_id or None,
            work_order_id=self.work_order_id or None,
            states=STATUS_FILTERS.get(self.state),
            inserted_from=since,
            inserted_until=until,
            text=self.q or None,
        )

    def url_query(self, **more: str) -> str:
        """The query string of these filters (and ``more``), without empty values."""
        values = {name: getattr(self, name) for name in self.__slots__} | more
        return urlencode({name: value for name, value in values.items() if value})
