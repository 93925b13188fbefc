"""What a worker may have handed to it without asking: a run's plan and its input, in a run
join's answer (``RunJoin.fetch``) or beside its token in a claim's (``ClaimRequest.fetch``).

A claim that fetched reads the plan for its answer just before the run's join needs it again
(for the run's scrubber), so the claim leaves it in the run's memory (memory.py) and the join
takes it out: a run's plan never changes, and memory holds the plans of runs claimed and not
yet joined only, however large their jobs are.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from fulmen.contract import RunJoined
from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError
from fulmen.store import Dataclip

__all__ = ["claimed", "fetched", "plan_of", "run_input"]

log = logging.getLogger(__name__)


async def plan_of(c: Coordinator, run_id: str, *, keep: bool = False) -> dict[str, Any]:
    """The run's plan as ``fetch:plan`` answers it: the one a claim left in the run's memory
    (taken out), or the store's. ``keep``: leave it there for the run's join."""
    memory = c.memories(run_id)
    plan, memory.plan = memory.plan, None
    if plan is None:
        plan = await c.store.get_plan(run_id)
    if keep:
        memory.plan = plan
    return plan


async def run_input(c: Coordinator, dataclip_id: str) -> Any:
    """The run's input as its worker gets it: null once it was wiped."""
    return _as_input(await c.store.get_dataclip(dataclip_id))


def _as_input(dataclip: Dataclip) -> Any:
    return None if dataclip.wiped_at is not None else dataclip.as_input()


async def claimed(
    c: Coordinator, run_id: str, dataclip_id: str | None, asked: Collection[str]
) -> RunJoined:
    """What a claim's answer holds for one of its runs (``ClaimRequest.fetch``), as
    :func:`fetched` makes it; the plan is left in the run's memory for its join. Plan and
    input are read in one read of the store when both are asked for."""
    memory = c.memories(run_id)
    if "dataclip" not in asked or dataclip_id is None or memory.plan is not None:
        return await fetched(c, run_id, await plan_of(c, run_id, keep=True), dataclip_id, asked)
    plan, dataclip = await c.store.get_plan_and_input(run_id)
    memory.plan = plan
    return _joined(run_id, plan, asked, dataclip, f"dataclip {dataclip_id} is gone")


async def fetched(
    c: Coordinator,
    run_id: str,
    plan: dict[str, Any],
    dataclip_id: str | None,
    asked: Collection[str],
) -> RunJoined:
    """What ``asked`` names of ``plan`` and the input, as ``fetch:plan`` and
    ``fetch:dataclip`` would answer them. An input that cannot be read is left out: the
    worker's own ``fetch:dataclip`` then gets the error."""
    if "dataclip" not in asked or dataclip_id is None:
        return RunJoined(plan=plan if "plan" in asked else None)
    try:
        dataclip = await c.store.get_dataclip(dataclip_id)
    except FulmenError as error:
        return _joined(run_id, plan, asked, None, str(error))
    return _joined(run_id, plan, asked, dataclip, "")


def _joined(
    run_id: str, plan: dict[str, Any], asked: Collection[str], dataclip: Dataclip | None, why: str
) -> RunJoined:
    """The answer with the plan if asked, and the input (asked for) unless ``dataclip`` is
    None, when ``why`` says what kept it out."""
    joined_plan = plan if "plan" in asked else None
    if dataclip is None:
        log.warning("run %s: its input is not in the answer: %s", run_id, why)
        return RunJoined(plan=joined_plan)
    return RunJoined(joined_plan, has_dataclip=True, dataclip=_as_input(dataclip))
