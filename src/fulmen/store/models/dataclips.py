"""Dataclips, the inputs and outputs of steps: dataclips.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fulmen.store.models.common import JSONValue

__all__ = ["Dataclip", "DataclipType", "NewDataclip"]


class DataclipType(StrEnum):
    HTTP_REQUEST = "http_request"
    STEP_RESULT = "step_result"
    SAVED_INPUT = "saved_input"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class NewDataclip:
    type: DataclipType
    body: JSONValue
    #: Request metadata of an ``http_request`` dataclip (method, path, headers…).
    request: JSONValue = None
    #: ``None``: the store mints one.
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Dataclip:
    id: str
    project_id: str
    type: DataclipType
    #: ``None`` once wiped.
    body: JSONValue
    request: JSONValue
    wiped_at: datetime | None
    inserted_at: datetime

    def as_input(self) -> JSONValue:
        """The document a worker's ``fetch:dataclip`` gets (spec §5.5)."""
        if self.type is DataclipType.HTTP_REQUEST:
            return {"data": self.body, "request": self.request}
        return self.body
