"""Decoding anything a worker sends on ``run:<id>``, whichever part of the contract it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeAlias

from fulmen.contract.fetches import FetchCredential, FetchDataclip, FetchPlan
from fulmen.contract.logs import RunBatchLogs, RunLog
from fulmen.contract.reports import RunReports
from fulmen.contract.run import RunComplete, RunStart, StepComplete, StepStart
from fulmen.contract.vocabulary import JSON, Event
from fulmen.errors import ContractError

__all__ = ["RunRequest", "decode_run_request"]

RunRequest: TypeAlias = (
    FetchPlan
    | FetchDataclip
    | FetchCredential
    | RunStart
    | StepStart
    | StepComplete
    | RunLog
    | RunBatchLogs
    | RunComplete
    | RunReports
)

_RUN_REQUESTS: Final[Mapping[str, type[RunRequest]]] = {
    Event.FETCH_PLAN: FetchPlan,
    Event.FETCH_DATACLIP: FetchDataclip,
    Event.FETCH_CREDENTIAL: FetchCredential,
    Event.RUN_START: RunStart,
    Event.STEP_START: StepStart,
    Event.STEP_COMPLETE: StepComplete,
    Event.RUN_LOG: RunLog,
    Event.RUN_BATCH_LOGS: RunBatchLogs,
    Event.RUN_COMPLETE: RunComplete,
    Event.RUN_REPORTS: RunReports,
}


def decode_run_request(event: str, payload: JSON) -> RunRequest:
    """Decode what a worker pushed on ``run:<id>``.

    Raises:
        ContractError: ``unknown_event`` for an event the run channel does not have;
            ContractFieldError for a payload that does not fit.
    """
    kind = _RUN_REQUESTS.get(event)
    if kind is None:
        raise ContractError(f"run channels have no {event!r} event", code="unknown_event")
    return kind.from_wire(payload)
