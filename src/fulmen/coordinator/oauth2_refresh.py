"""OAuth2 tokens refreshed before a run gets them, once (issue 19).

When a worker fetches an OAuth2 credential for a run (``fetch:credential``,
channels/run.py), :meth:`OAuth2Tokens.body_for_run` answers with the credential's body and a
token that is good for at least oauth2.MARGIN more: one expiring sooner (or expired, or of
unknown expiry) is refreshed first, stored sealed, and the new token answered. A
client-credentials credential whose first token could not be had when it was saved gets it
so too.

**Once, even when many runs fetch it at the same moment, on every coordinator.** Two layers:

1. In this process, one ``asyncio.Lock`` per credential: ten runs starting together queue
   behind the first, and each re-reads the credential once it has the lock, so the second
   finds the first's fresh token and goes without calling the provider.
2. Across coordinators (PostgreSQL, or several on one SQLite file), a *lease* in the
   credential's row (``take_oauth2_lease``: one conditional UPDATE, which one writer wins on
   either dialect). The winner calls the provider; the others, finding the lease held, read
   the row again every :data:`POLL` seconds until the winner has stored its token (or its
   lease, :data:`LEASE` long, ran out: a coordinator that died mid-refresh does not block the
   credential for ever). The lease is taken with the credential re-read in the same statement,
   so a coordinator that took it just after another stored a fresh token sees that token and
   gives the lease back.

**Why a lease, not a lock held across the provider's answer.** A ``SELECT … FOR UPDATE``
(or an advisory lock) would hold a transaction open while the provider answers, up to
oauth2_client.TIMEOUT. On PostgreSQL that only pins a connection; on SQLite a write
transaction holds the whole database's write lock, so every log line of every run would wait
for the provider. The lease makes each store step a short transaction on both dialects, and
the network call happens outside any. Its price is the polling of step 2, which only a
coordinator that lost the race to another pays.

A provider that refuses the grant (oauth2.refusal: ``invalid_grant``, 400, 401) marks the
credential ``needs_reauthorization``, with the provider's words, until someone connects it
again; a provider that cannot answer now leaves it as it was for the next use. Either way the
run fails with the :class:`~fulmen.errors.CredentialError`, and the audit trail records it
(``credential.oauth2_reauthorization_needed``, ``credential.oauth2_refresh_failed``) as it
records each refresh (``credential.oauth2_refreshed``), done by audit.SYSTEM.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from typing import Final

from fulmen.clock import Clock
from fulmen.coordinator import audit, oauth2
from fulmen.coordinator.oauth2_client import TIMEOUT, token_request
from fulmen.coordinator.outbound_http import Outbound
from fulmen.errors import CredentialError
from fulmen.store import Grant, OAuth2Credential, OAuth2Status, Store
from fulmen.store.models.common import JSONValue

__all__ = ["FAILURE_MEMORY", "LEASE", "POLL", "OAuth2Tokens"]

log = logging.getLogger(__name__)

#: How long a coordinator may take to refresh a token before another may try.
LEASE: Final = timedelta(seconds=TIMEOUT + 5)
#: Seconds between two reads of a credential another coordinator is refreshing.
POLL: Final = 0.2
#: Seconds a provider that could not answer is not asked again for the same credential: the
#: runs that queued behind a failed refresh fail with it rather than each wait for the
#: provider's timeout in turn.
FAILURE_MEMORY: Final = 5.0


class OAuth2Tokens:
    """The coordinator's OAuth2 token keeper: one per coordinator (core.Coordinator)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        outbound: Outbound,
        *,
        timeout: float = TIMEOUT,
    ) -> None:
        self._store = store
        self._clock = clock
        self._outbound = outbound
        self._timeout = timeout
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: The last temporary failure of each credential's refresh, and when (monotonic).
        self._failures: dict[str, tuple[float, CredentialError]] = {}

    async def body_for_run(self, credential_id: str, run_id: str) -> dict[str, JSONValue]:
        """The credential's body as the run's worker gets it: for an OAuth2 credential, with a
        token good for at least oauth2.MARGIN.

        Raises:
            NotFoundError: no such credential, or not one the run uses.
            CredentialError: an OAuth2 credential without a usable token (see the module's
                docstring).
        """
        body, current = await self._store.get_credential_for_run(credential_id, run_id)
        if current is None:
            return body  # not an OAuth2 credential
        if not self._stale(current):
            self._check_usable(current)
            return body
        await self.refresh(credential_id)
        return await self._store.get_credential_body(credential_id, run_id=run_id)

    async def refresh(self, credential_id: str) -> None:
        """Refresh the token unless it is fresh by the time this caller's turn comes.

        Raises:
            CredentialError: as :meth:`body_for_run`.
        """
        async with self._locks[credential_id]:
            failed = self._failures.pop(credential_id, None)
            if failed is not None and time.monotonic() - failed[0] < FAILURE_MEMORY:
                self._failures[credential_id] = failed
                raise failed[1]  # the runs that waited behind a failure fail with it
            while True:
                current = await self._store.get_oauth2_credential(credential_id)
                if not self._stale(current):
                    self._check_usable(current)
                    return
                self._check_usable(current, stale=True)
                holder = secrets.token_hex(8)
                until = self._clock.now() + LEASE
                leased = await self._store.take_oauth2_lease(credential_id, holder, until)
                if leased is None:  # another coordinator is refreshing it
                    await asyncio.sleep(POLL)
                    continue
                if not self._stale(leased):  # it stored a fresh token just before
                    await self._store.release_oauth2_lease(credential_id, holder)
                    self._check_usable(leased)
                    return
                await self._renew(leased, holder)
                return

    async def _renew(self, credential: OAuth2Credential, holder: str) -> None:
        state, held = credential.state, credential.secrets
        credential_id = state.credential_id
        info = await self._store.get_credential(credential_id)
        try:
            answer = await token_request(
                state.settings.token_url,
                oauth2.refresh_form(state.settings, held),
                self._outbound,
                timeout=self._timeout,
            )
            fresh, expires_at = oauth2.tokens_of(answer, held, self._clock.now())
        except CredentialError as error:
            await self._failed(credential, holder, error)
            raise
        now = self._clock.now()
        saved = replace(
            state,
            status=OAuth2Status.CONNECTED,
            problem="",
            expires_at=expires_at,
            refreshed_at=now,
        )
        async with self._store.together():
            await self._store.save_oauth2_tokens(credential_id, fresh, expires_at, now)
            await self._store.append_audit(
                audit.oauth2_event(audit.SYSTEM, "oauth2_refreshed", info, saved)
            )
        log.info("credential %s: OAuth2 token refreshed", credential_id)

    async def _failed(
        self, credential: OAuth2Credential, holder: str, error: CredentialError
    ) -> None:
        credential_id = credential.state.credential_id
        info = await self._store.get_credential(credential_id)
        detail: dict[str, JSONValue] = {"code": error.code, "message": error.message}
        state = credential.state
        if error.code == "reauthorization_required":
            state = replace(state, status=OAuth2Status.NEEDS_REAUTHORIZATION, problem=error.message)
        else:
            self._failures[credential_id] = (time.monotonic(), error)
        async with self._store.together():
            if error.code == "reauthorization_required":
                await self._store.set_oauth2_status(credential_id, state.status, state.problem)
                action = "oauth2_reauthorization_needed"
            else:
                await self._store.release_oauth2_lease(credential_id, holder)
                action = "oauth2_refresh_failed"
            await self._store.append_audit(
                audit.oauth2_event(audit.SYSTEM, action, info, state, detail)
            )
        log.warning("credential %s: OAuth2 refresh failed: %s", credential_id, error.message)

    def _stale(self, credential: OAuth2Credential) -> bool:
        """Whether to get a new token first: one about to expire, or the first token of a
        client-credentials credential that could not be had when it was saved."""
        state = credential.state
        if state.status is OAuth2Status.NOT_CONNECTED:
            return state.settings.grant is Grant.CLIENT_CREDENTIALS
        if state.status is OAuth2Status.NEEDS_REAUTHORIZATION:
            return False  # a person must connect it: _check_usable says so
        return oauth2.needs_refresh(
            state.settings, credential.secrets, state.expires_at, self._clock.now()
        )

    def _check_usable(self, credential: OAuth2Credential, *, stale: bool = False) -> None:
        """Raise the CredentialError that says why a run cannot have the token, if one."""
        state = credential.state
        if state.status is OAuth2Status.NEEDS_REAUTHORIZATION:
            raise CredentialError(
                f"OAuth2 credential {state.credential_id} needs re-authorisation: "
                f"{state.problem or 'the provider refused its token'}",
                code="reauthorization_required",
            )
        if not stale and (
            state.status is OAuth2Status.NOT_CONNECTED or not credential.secrets.access_token
        ):
            raise CredentialError(
                f"OAuth2 credential {state.credential_id} is not connected: connect it on the "
                "dashboard's credentials page",
                code="not_connected",
            )
