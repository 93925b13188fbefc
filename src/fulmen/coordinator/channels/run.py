"""``run:<id>``: one worker working on one run (spec §5).

*Join* (§3.3): the run token must verify (signature, issuer, time, run id of the topic);
an unknown run is ``not_found``; a run that went back to the queue, or was claimed again
after this token was minted, is ``unauthorized`` (the token's ``nbf`` is its claim time), so
a worker that was too slow to join cannot run a run that is now someone else's. A worker may
join again after a reconnect (§1.6), also once its run has ended (to resend its last events).

*Fetches* (§5.3–§5.5) answer with the run's plan (read once, at the join, which needs it for
the scrubber: a run's plan never changes), its input dataclip (as a binary reply) and the
credentials its jobs use (only those: the store checks that the run's snapshot names the
credential; an OAuth2 credential's token is refreshed first if it is about to expire, and a
token that cannot be had is answered as the CredentialError that says why:
oauth2_refresh.py). Everything the worker reports is scrubbed again here (§8.4, secrets.py): the
run's scrubber is built on each join, from the credentials and webhook-auth secrets the run
may see, and rebuilt if a credential fetched later was changed since.
When the run does not save dataclips, its input is wiped by the store once the run has ended,
not right after serving it as Lightning does, so that an automatic retry can still read it.

*Reports* (channels/reports.py) are stored with their state transitions, each at most once
per run in this process (memory.py), so a copy resent after a reconnect is answered as the
first was; a Fulmen worker sends several at once as ``run:reports``, stored as one unit.
Log frames go to the store each time: it recognises a resent one whichever coordinator
stored the first (store/events.py), and a frame equal to one further back is a new one, not
a copy. A completed run is announced to the hub (a webhook waiting for it) once stored.

*Cancel* (issue 8): a joined channel registers with the hub, which pushes ``run:cancel`` on
it when someone cancels the run; a worker that joins a run whose cancel was already asked
for hears it right after the join. The Fulmen worker then stops the child and completes the
run with reason ``cancel``; an OpenFn ws-worker ignores the push (contract.Event.RUN_CANCEL).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, cast

import orjson

from fulmen.contract import (
    JSON,
    Event,
    FetchCredential,
    FetchDataclip,
    FetchPlan,
    JSONObject,
    RunBatchLogs,
    RunComplete,
    RunJoin,
    RunJoined,
    RunLog,
    RunReports,
    decode_run_request,
    run_id_of,
    run_topic,
)
from fulmen.coordinator.channels.answers import error_response, json_payload
from fulmen.coordinator.channels.base import Host
from fulmen.coordinator.channels.fetched import fetched, plan_of, run_input
from fulmen.coordinator.channels.reports import record, record_all
from fulmen.coordinator.channels.secrets import run_and_webhook_secrets, run_secrets
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.memory import Outcome, fingerprint
from fulmen.errors import (
    ConfigError,
    ContractError,
    CredentialError,
    FulmenError,
    NotFoundError,
    TokenError,
)
from fulmen.lifecycle import FINAL_RUN_STATES, RunState
from fulmen.phoenix.server import JoinRequest, Request
from fulmen.plan import Options
from fulmen.scrub import Scrubber

__all__ = ["RunChannel"]

log = logging.getLogger(__name__)

UNAUTHORIZED: Final[JSON] = {"reason": "unauthorized"}
NOT_FOUND: Final[JSON] = {"reason": "not_found"}
CREDENTIAL_NOT_FOUND: Final = "Credential not found!"


class RunChannel:
    def __init__(self, host: Host, coordinator: Coordinator, topic: str) -> None:
        self._host = host
        self._c = coordinator
        self.run_id = run_id_of(topic)
        self._memory = coordinator.memories(self.run_id)
        self._options = Options()
        self._cancel_asked = False
        self._secrets: list[Mapping[str, Any]] = []
        #: Read at the join (the join fails without them); what the fetches answer from.
        self._plan: dict[str, Any] = {}
        self._dataclip_id: str | None = None

    # -- join --------------------------------------------------------------------------------

    async def join(self, join: JoinRequest) -> bool:
        request = await self._admitted(join.payload)
        if not isinstance(request, RunJoin):
            await self._host.refuse(join, request)
            return False
        # Built before the join is answered: the worker's first report is already scrubbed.
        self._memory.scrubber = Scrubber(self._secrets)
        # The join's answer: {}, or what it asked for (RunJoin.fetch, Fulmen's worker).
        joined = await fetched(self._c, self.run_id, self._plan, self._dataclip_id, request.fetch)
        leaving = False
        if request.reports is not None:  # the frame, as if sent right after the join
            ok, response = await self._frame_sent({"reports": request.reports})
            reply: JSONObject = {
                "status": "ok" if ok else "error",
                "response": cast(JSON, response),
            }
            leaving = ok and request.leave  # the frame ended the run
            joined = RunJoined(joined.plan, joined.has_dataclip, joined.dataclip, reply, leaving)
        if not await self._host.accept(join, joined.to_wire(), close=leaving) or leaving:
            return False
        self._c.hub.attach_run(self.run_id, self)
        if self._cancel_asked:
            await self.push_cancel()
        return True

    async def push_cancel(self) -> bool:
        log.info("run %s: telling worker %s to cancel it", self.run_id, self._host.worker_id)
        return await self._host.push(run_topic(self.run_id), Event.RUN_CANCEL, {})

    async def _admitted(self, payload: JSON) -> RunJoin | JSON:
        """The join's payload if the join may go ahead (the run now joined, its plan and
        secrets read), else the refusal to answer it with."""
        try:
            request = RunJoin.from_wire(payload)
            claims = self._c.run_tokens.verify(request.token, run_id=self.run_id, now=self._c.now())
        except (ContractError, TokenError) as error:
            log.warning(
                "worker %s: join of run %s refused: %s", self._host.worker_id, self.run_id, error
            )
            return UNAUTHORIZED
        try:  # the plan first: it names the triggers whose secrets come with the run
            self._plan = await plan_of(self._c, self.run_id)
            run, webhook = await run_and_webhook_secrets(self._c.store, self.run_id, self._plan)
        except NotFoundError:
            return NOT_FOUND
        if run.state is RunState.AVAILABLE or run.claimed_at is None:
            log.warning("run %s: a join after its claim was rolled back", self.run_id)
            return UNAUTHORIZED
        if claims.nbf < int(run.claimed_at.timestamp()):
            log.warning("run %s: a join with the token of an earlier claim", self.run_id)
            return UNAUTHORIZED
        if run.state not in FINAL_RUN_STATES:
            if run.joined_at is None:  # else joined already (a rejoin, or by its claim)
                await self._c.store.join_run(self.run_id)
            self._cancel_asked = run.cancel_requested_at is not None
        self._options = run.options
        self._dataclip_id = run.dataclip_id
        self._secrets = await run_secrets(self._c.store, self.run_id, self._plan, webhook)
        return request

    def left(self) -> None:
        self._c.hub.detach_run(self.run_id, self)

    # -- requests ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> None:
        try:
            payload = json_payload(request.payload)
            message = decode_run_request(request.event, payload)
        except ContractError as error:
            await self._host.reply(request, False, error_response(request.event, error))
            return
        if isinstance(message, RunReports):
            ok, response = await self._record_frame(message, payload)
        elif isinstance(message, FetchPlan | FetchDataclip | FetchCredential):
            ok, response = await self._fetch(message)
        elif isinstance(message, RunLog | RunBatchLogs):  # the store knows a resent frame
            ok, response = await record(
                self._c, self.run_id, self._memory, self._options, request.event, message
            )
        else:
            ok, response = await self._memory.once(
                fingerprint(request.event, payload),
                lambda: record(
                    self._c, self.run_id, self._memory, self._options, request.event, message
                ),
            )
        if ok and isinstance(message, RunComplete):  # after the commit: a webhook reads it
            self._c.hub.run_finished(self.run_id)
        elif ok and not isinstance(message, FetchPlan | FetchDataclip | FetchCredential):
            self._c.hub.changes.changed(self.run_id)  # its page re-reads (changes.py)
        await self._host.reply(request, ok, response)

    async def _frame_sent(self, payload: JSON) -> Outcome:
        """The frame a join carried (``RunJoin.reports``), handled as if it came after it."""
        try:
            frame = RunReports.from_wire(payload)
        except ContractError as error:
            return False, error_response(Event.RUN_REPORTS, error)
        return await self._record_frame(frame, payload)

    async def _record_frame(self, frame: RunReports, payload: JSON) -> Outcome:
        ok, response = await self._memory.once(
            fingerprint(Event.RUN_REPORTS, payload),
            lambda: record_all(self._c, self.run_id, self._memory, self._options, frame),
        )
        if ok and any(isinstance(report, RunComplete) for _event, report in frame.reports):
            self._c.hub.run_finished(self.run_id)  # after the commit: a webhook reads the run
        elif ok:
            self._c.hub.changes.changed(self.run_id)
        return ok, response

    async def _fetch(self, message: FetchPlan | FetchDataclip | FetchCredential) -> Outcome:
        try:
            if isinstance(message, FetchPlan):  # read at the join; a run's plan never changes
                return True, self._plan
            if isinstance(message, FetchDataclip):
                return await self._dataclip()
            return await self._credential(message.id)
        except FulmenError as error:
            return False, error_response(_event_of(message), error)

    async def _dataclip(self) -> Outcome:
        """§5.5: the run's own input, whatever id was asked for (as Lightning does)."""
        if self._dataclip_id is None:
            return False, "not_found"
        return True, orjson.dumps(await run_input(self._c, self._dataclip_id))

    async def _credential(self, credential_id: str) -> Outcome:
        """The body, an OAuth2 credential's with a token refreshed if it was about to expire
        (oauth2_refresh.py); the run's scrubber learns a token it did not know."""
        try:
            body = await self._c.oauth2.body_for_run(credential_id, self.run_id)
        except NotFoundError:
            return False, {"errors": {"id": [CREDENTIAL_NOT_FOUND]}}
        except ConfigError as error:
            log.error("run %s: credential %s: %s", self.run_id, credential_id, error)
            return False, {"errors": {"id": [error.message]}}
        except CredentialError as error:
            log.warning("run %s: credential %s: %s", self.run_id, credential_id, error)
            return False, {"errors": {"id": [f"CredentialError ({error.code}): {error.message}"]}}
        if body not in self._secrets:  # changed since the join
            self._secrets.append(body)
            self._memory.scrubber = Scrubber(self._secrets)
        return True, body  # type: ignore[return-value]


def _event_of(message: FetchPlan | FetchDataclip | FetchCredential) -> str:
    if isinstance(message, FetchPlan):
        return "fetch:plan"
    return "fetch:dataclip" if isinstance(message, FetchDataclip) else "fetch:credential"
