"""Claims that come back unrun, and the note each leaves on its run (issue 14).

A worker whose public key does not match this coordinator's refuses every run it claims. Two
ways tell the coordinator so, and both leave a line (source ``FULMEN``, level ``warn``) in the
run's log, which the API (``/api/runs/<id>/logs``) and the dashboard's run page show, so a
user looking at a run that waits again sees why:

* **Said** (:func:`take_refusal`): Fulmen's worker sends ``run:refuse`` on ``worker:queue``
  with the run token it was given and why it failed (``contract.RunRefusal``). The token,
  verified here as a join would be, proves the sender holds that claim; the run goes back to
  the queue at once (``Store.return_refused``), not after the claim's join timeout, and the
  workers hear ``work-available``. The note names the worker, the token error's code and its
  likely cause; the worker's own words go to this process's log only (what a worker sends is
  not written to a run unscrubbed).
* **Inferred** (:func:`unjoined_note`, from the reaper): a claim never joined within
  ``run_join_timeout`` goes back to the queue as before (§4.6), now with a note. OpenFn's
  ws-worker sends nothing when it refuses a run token: it shuts down (§3.2), and this is all
  that shows. A claim reply that never reached its worker looks the same, so the note says
  both.

Lightning has neither: a refused run sits ``claimed`` until its rollback timer (§4.6) or the
janitor (§7.5), and nothing shows on it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from fulmen.contract import JSON, RunRefusal
from fulmen.coordinator.channels.answers import json_payload
from fulmen.coordinator.core import Coordinator
from fulmen.errors import ContractError, TokenError
from fulmen.store import LogLine, UnjoinedClaim
from fulmen.tokens import run_token_remedy

__all__ = ["SOURCE", "take_refusal", "unjoined_note"]

log = logging.getLogger(__name__)

#: The source of the coordinator's own lines in a run's log (at most 8 characters, §8.1).
SOURCE: Final = "FULMEN"
UNAUTHORIZED: Final[JSON] = {"reason": "unauthorized"}
_CODE: Final = re.compile(r"[a-z_]{1,40}")


async def take_refusal(c: Coordinator, worker_id: str, payload: JSON | bytes) -> tuple[bool, JSON]:
    """Answer one ``run:refuse``: ``ok`` with ``{"returned": <bool>}``, or an error when the
    payload or the token is not valid (nothing changes then)."""
    try:
        refusal = RunRefusal.from_wire(json_payload(payload))
        claims = c.run_tokens.verify(refusal.token, run_id=refusal.id, now=c.now())
    except (ContractError, TokenError) as error:
        log.warning("worker %s: a refusal that does not hold: %s", worker_id, error)
        return False, UNAUTHORIZED
    code = refusal.code if _CODE.fullmatch(refusal.code) else "unknown"
    note = LogLine(
        f"Worker {worker_id} refused this run: its run token did not verify there ({code}). "
        f"Likely cause: {run_token_remedy(code)}. The run is back in the queue.",
        timestamp=c.clock.now(),
        source=SOURCE,
        level="warn",
    )
    # The claim this token was minted for began at or before its nbf (whole seconds); a later
    # claim of the run, by anyone, began after it and is not touched.
    claimed_before = datetime.fromtimestamp(claims.nbf + 1, UTC)
    returned = await c.store.return_refused(refusal.id, claimed_before=claimed_before, note=note)
    log.warning(
        "worker %s refused run %s (%s: %s); %s",
        worker_id,
        refusal.id,
        code,
        refusal.message[:200],
        "back in the queue" if returned else "it had moved on already",
    )
    if returned:
        c.metrics.refused.labels(code).inc()
        c.hub.work_available()
    return True, {"returned": returned}


def unjoined_note(c: Coordinator) -> Callable[[UnjoinedClaim], LogLine]:
    """The line the reaper adds to a run whose claim it rolled back."""
    timeout = c.settings.run_join_timeout

    def note(claim: UnjoinedClaim) -> LogLine:
        worker = f"Worker {claim.worker_name}" if claim.worker_name else "A worker"
        return LogLine(
            f"{worker} claimed this run but did not join it within {timeout:g}s, so it is "
            "back in the queue. Either the claim's answer did not reach the worker, or the "
            "worker refused the run token: an OpenFn ws-worker whose "
            "WORKER_LIGHTNING_PUBLIC_KEY does not match this coordinator's key does that, "
            "and stops.",
            timestamp=c.clock.now(),
            source=SOURCE,
            level="warn",
        )

    return note
