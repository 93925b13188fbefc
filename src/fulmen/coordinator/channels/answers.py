"""Error replies in Lightning's shapes (spec §5.2), from Fulmen's errors.

Lightning answers a refused event with a changeset map ``{"field": ["message"]}`` (sometimes
under ``"errors"``), or a plain string; join refusals are ``{"reason": …}``. Where the spec
records Lightning's exact words for a case, those are used, so that a worker matching on them
(ws-worker logs them; tests compare them) sees what Lightning would send.
"""

from __future__ import annotations

import logging
from typing import Final

from fulmen.contract import JSON, ErrorReply
from fulmen.errors import (
    ConflictError,
    ContractError,
    FulmenError,
    InputError,
    NotFoundError,
    StoreError,
    TransitionError,
)
from fulmen.lifecycle import FINAL_RUN_STATES, RunState

__all__ = ["ALREADY_COMPLETED", "NOT_CLAIMED", "error_response", "json_payload"]

log = logging.getLogger(__name__)

ALREADY_COMPLETED: Final = "already in completed state"
NOT_CLAIMED: Final = "cannot mark run started that has not been claimed by a worker"

#: Lightning's words for a missing or foreign id, by (event, field) (§5.7, §5.8, §5.9).
_NOT_FOUND: Final = {
    ("step:start", "job_id"): "does not exist",
    ("step:complete", "step_id"): "not found",
    ("run:log", "step_id"): "must be associated with the run",
    ("run:batch_logs", "step_id"): "must be associated with the run",
}
_FINAL: Final = frozenset(state.value for state in FINAL_RUN_STATES)


def error_response(event: str, error: FulmenError) -> JSON:
    """The ``response`` of the error reply to ``event`` that failed with ``error``."""
    if isinstance(error, ContractError):
        return ErrorReply.from_error(error).to_wire()
    if isinstance(error, TransitionError):
        return {"state": [_transition_text(event, error)]}
    if isinstance(error, NotFoundError):
        field = error.field or "id"
        return {field: [_NOT_FOUND.get((event, field), error.message)]}
    if isinstance(error, ConflictError):
        return {error.field or "id": [error.message]}
    if isinstance(error, InputError):
        return error.message
    if isinstance(error, StoreError):
        log.error("%s failed in the store: %s", event, error)
        return "the coordinator could not store this event; try again"
    return error.message


def _transition_text(event: str, error: TransitionError) -> str:
    if error.state in _FINAL:
        return ALREADY_COMPLETED
    if error.state == RunState.AVAILABLE and event == "run:start":
        return NOT_CLAIMED
    return error.message


def json_payload(payload: JSON | bytes) -> JSON:
    """A request's payload as JSON: Lightning's channels take no binary pushes.

    Raises:
        ContractError: ``binary_payload``.
    """
    if isinstance(payload, bytes):
        raise ContractError("this event takes a JSON payload, not binary", code="binary_payload")
    return payload
