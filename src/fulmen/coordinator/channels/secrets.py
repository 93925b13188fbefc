"""The secrets a run's worker could put in what it sends back, for the run's scrubber.

The child scrubs its own logs and outputs, but job code can undo that (it runs in the same
interpreter as the runtime's scrubber), and an OpenFn ws-worker does not scrub dataclips at
all. So the coordinator scrubs again everything a worker reports (channels/reports.py), with
one ``fulmen.scrub.Scrubber`` per run, built when a worker joins it from:

* the credentials the run's plan uses (the only ones its worker may fetch), and an inline
  credential of a job (dev plans);
* the secrets of the webhook-auth methods of the plan's triggers: the key or password of the
  request that started the run can be in its input, and so in what a job prints or returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fulmen.errors import ConfigError, NotFoundError
from fulmen.store import Run, Store, WebhookSecret

__all__ = ["run_and_webhook_secrets", "run_secrets"]

log = logging.getLogger(__name__)


async def run_and_webhook_secrets(
    store: Store, run_id: str, plan: Mapping[str, Any]
) -> tuple[Run, list[WebhookSecret]]:
    """The run and the secrets of the webhook-auth methods of its plan's triggers, in one
    read of the store (a join reads both). Secrets that cannot be opened are not masked, and
    the log says so.

    Raises:
        NotFoundError: no such run.
    """
    trigger_ids = [trigger["id"] for trigger in plan.get("triggers", ())]
    try:
        return await store.peek_run_and_secrets(run_id, trigger_ids)
    except ConfigError as error:
        log.warning("run %s: webhook-auth secrets not masked: %s", run_id, error)
        return await store.peek_run(run_id), []


async def run_secrets(
    store: Store, run_id: str, plan: Mapping[str, Any], webhook: Sequence[WebhookSecret]
) -> list[Mapping[str, Any]]:
    """What the run's scrubber masks (see the module's docstring), as credential bodies;
    ``plan`` is the run's ``fetch:plan`` reply, ``webhook`` the secrets of its triggers
    (:func:`run_and_webhook_secrets`)."""
    found: list[Mapping[str, Any]] = []
    for credential_id in dict.fromkeys(_credential_ids(plan)):
        try:
            found.append(await store.get_credential_body(credential_id, run_id=run_id))
        except (NotFoundError, ConfigError) as error:  # the worker cannot fetch it either
            log.info("run %s: credential %s not masked: %s", run_id, credential_id, error)
    found.extend(
        job["credential"] for job in plan.get("jobs", ()) if isinstance(job.get("credential"), dict)
    )
    found.extend(
        {"api_key": s.api_key, "username": s.username, "password": s.password} for s in webhook
    )
    return found


def _credential_ids(plan: Mapping[str, Any]) -> list[str]:
    return [job["credential_id"] for job in plan.get("jobs", ()) if job.get("credential_id")]
