"""The words both channels share: event names, topics, log levels, wire reasons, JSON.

Nothing here decodes anything; ``decoding`` and the channel modules build on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, TypeAlias

from fulmen.errors import ContractError
from fulmen.reasons import Reason

__all__ = [
    "API_VERSION",
    "DEFAULT_QUEUES",
    "JSON",
    "MAX_SOURCE_LENGTH",
    "WIRE_REASONS",
    "WORKER_QUEUE",
    "Event",
    "JSONObject",
    "LogLevel",
    "run_id_of",
    "run_topic",
]

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"

API_VERSION: Final = "1.2"
"""The lexicon's API version, sent as the ``api_version`` socket parameter (§9.1)."""

WORKER_QUEUE: Final = "worker:queue"
DEFAULT_QUEUES: Final = ("manual", "*")
MAX_SOURCE_LENGTH: Final = 8


class Event(StrEnum):
    """Every Lightning event name on the two channels (Phoenix's own are in ``phoenix``)."""

    CLAIM = "claim"
    WORK_AVAILABLE = "work-available"
    FETCH_PLAN = "fetch:plan"
    FETCH_DATACLIP = "fetch:dataclip"
    FETCH_CREDENTIAL = "fetch:credential"
    RUN_START = "run:start"
    STEP_START = "step:start"
    STEP_COMPLETE = "step:complete"
    RUN_LOG = "run:log"
    RUN_BATCH_LOGS = "run:batch_logs"
    RUN_COMPLETE = "run:complete"
    #: Server push (Fulmen, issue 8): stop this run; the worker completes it with ``cancel``.
    #: Not part of Lightning's protocol: OpenFn's ws-worker binds no handler for it on the run
    #: channel and Phoenix's JS client drops events nobody bound, so there it is ignored and
    #: the run ends as it would have.
    RUN_CANCEL = "run:cancel"
    #: Worker request on ``worker:queue`` (Fulmen, issue 14): "I claimed this run but will not
    #: run it: its run token does not verify here". Sent only to a server whose join answer
    #: lists it (``QueueJoined.accepts``): Lightning's worker channel has a clause for
    #: ``claim`` alone, so anything else would crash the channel there.
    RUN_REFUSE = "run:refuse"
    #: Worker request on ``run:<id>`` (Fulmen, issue 20): several reports of the run in one
    #: frame, stored as one unit (contract/reports.py). Sent only to a server whose join answer
    #: lists it, as ``run:refuse``.
    RUN_REPORTS = "run:reports"


#: Exit reasons that may appear on the wire (§7.1): all but the server-only ``lost``.
WIRE_REASONS: Final = tuple(r for r in Reason if r is not Reason.LOST)


class LogLevel(StrEnum):
    """The levels Lightning accepts on a log line (§8.2)."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    SUCCESS = "success"
    ALWAYS = "always"


def run_topic(run_id: str) -> str:
    return f"run:{run_id}"


def run_id_of(topic: str) -> str:
    """The run id in a ``run:<id>`` topic.

    Raises:
        ContractError: ``bad_topic`` if ``topic`` is not a run topic.
    """
    prefix, _, run_id = topic.partition(":")
    if prefix != "run" or not run_id:
        raise ContractError(f"{topic!r} is not a run:<id> topic", code="bad_topic")
    return run_id
