"""One retention batch: retention.py."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetentionBatch"]


@dataclass(frozen=True, slots=True)
class RetentionBatch:
    """One bounded pass of a project's retention sweep: what it removed. ``more``: some step
    hit the batch limit, so another pass has work."""

    deleted_work_orders: int = 0
    deleted_dataclips: int = 0
    wiped_dataclips: int = 0
    more: bool = False
