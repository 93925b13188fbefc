"""The Store: the coordinator's persistence and run queue, as one Protocol.

Two implementations stand behind it (SQLite and PostgreSQL, see ``open_store``), held to one
conformance suite (tests/conformance). Every method is one transaction: it happens whole or
not at all. Time comes from the ``Clock`` the store was opened with, so tests decide what
"now" is; times the worker reports (``timestamp`` fields) are stored as given.

Errors: NotFoundError (no such id; ``field`` names which), ConflictError (duplicate id, stale
version, row in use), TransitionError (the run or step state table refuses the event; nothing
changed), InputError (a malformed argument), ConfigError (credential key missing or wrong),
StoreError (the database failed).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from fulmen.lifecycle import CancelAction
from fulmen.plan import LANGUAGES
from fulmen.store.batches import BATCH_BYTES
from fulmen.store.models.alerts import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertDigest,
    AlertRule,
    ClaimedDelivery,
    NewAlertChannel,
)
from fulmen.store.models.api_tokens import ApiToken
from fulmen.store.models.audit import AuditFilter, AuditRecord, NewAuditRecord
from fulmen.store.models.catalog import Project, Snapshot, StoredWorkflow, TriggerInfo, Workflow
from fulmen.store.models.collections import (
    CollectionInfo,
    CollectionItem,
    CollectionLimits,
    ItemFilter,
)
from fulmen.store.models.common import JSONValue, Page
from fulmen.store.models.credentials import CredentialInfo, NewCredential
from fulmen.store.models.dataclips import Dataclip, NewDataclip
from fulmen.store.models.deployments import Deployed, Deployment
from fulmen.store.models.invitations import Invitation, NewInvitation
from fulmen.store.models.keychains import KeychainInfo, NewKeychain
from fulmen.store.models.oauth2 import (
    OAuth2Authorization,
    OAuth2Credential,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2State,
    OAuth2Status,
)
from fulmen.store.models.queue import (
    DEFAULT_QUEUES,
    ClaimedRun,
    Enqueued,
    EnqueueRequest,
    LostRun,
    RerunRequest,
    UnjoinedClaim,
    WorkOrder,
)
from fulmen.store.models.retention import RetentionBatch
from fulmen.store.models.runs import (
    LogEntry,
    LogLine,
    Run,
    RunCompletion,
    RunDetail,
    RunFilter,
    RunReport,
    StepCompletion,
    StepStart,
)
from fulmen.store.models.schedules import CronTick, CronTrigger
from fulmen.store.models.sign_in import InstanceSettings, SecondFactor, SsoRequest
from fulmen.store.models.users import Member, NewUser, Role, User
from fulmen.store.models.webhook_auth import NewWebhookAuthMethod, WebhookAuthMethod, WebhookSecret
from fulmen.store.ownership import ThingKind

if TYPE_CHECKING:
    from fulmen.errors import FulmenError
    from fulmen.store.dashboard_sessions import DashboardSession, SessionLimits, SessionStage
    from fulmen.store.idempotency import Answer, Answered, IdempotencyKey
    from fulmen.store.sign_in_failures import SignInAttempt

__all__ = ["Store"]


class Store(Protocol):
    # -- projects and workflows ------------------------------------------------------------

    async def create_project(self, project: Project, *, owner_id: str | None = None) -> Project:
        """A new project; ``owner_id``, a user, is made its owner in the same transaction."""
        ...

    async def replace_project(self, project: Project) -> Project: ...
    async def get_project(self, project_id: str) -> Project: ...
    async def list_projects(
        self, *, cursor: str | None = None, limit: int = 100, ids: Collection[str] | None = None
    ) -> Page[Project]:
        """Projects in id order; only those of ``ids`` when given."""
        ...

    async def project_of(self, kind: ThingKind, thing_id: str) -> str:
        """The id of the project a workflow, trigger, run, step... belongs to (NotFoundError
        when there is no such thing)."""
        ...

    async def delete_project(
        self, project_id: str, *, record: NewAuditRecord | None = None
    ) -> None:
        """Deletes the project with its workflows, runs, dataclips and credentials: its
        history and collections in bounded batches, each its own transaction (batches.py),
        then the rest with ``record`` in one (the deletion's audit record). An interrupted
        deletion has deleted some history, never the project without its record."""
        ...

    async def create_workflow(self, workflow: Workflow) -> StoredWorkflow:
        """Save a new workflow whole, as version 1 with its first snapshot."""
        ...

    async def replace_workflow(
        self, workflow: Workflow, *, expected_version: int | None = None
    ) -> StoredWorkflow:
        """Save a new version whole. ``expected_version`` is the version the caller read:
        if another save came first, ConflictError (code ``stale_version``); ``None`` skips
        the check."""
        ...

    async def get_workflow(self, workflow_id: str) -> StoredWorkflow: ...
    async def list_workflows(
        self, project_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[StoredWorkflow]: ...
    async def delete_workflow(
        self, workflow_id: str, *, record: NewAuditRecord | None = None
    ) -> None:
        """Deletes the workflow with its snapshots, work orders, runs, steps and logs: its
        work orders in bounded batches (as ``delete_project``), then the rest with
        ``record``."""
        ...

    async def deploy(
        self, deployment: Deployment, *, record: Callable[[Deployed], Sequence[NewAuditRecord]]
    ) -> Deployed:
        """Write a project's desired state in one transaction, with the audit records
        ``record`` makes of what was written: all of it, or (on the first refusal, which names
        the part at fault: deployments.blame) nothing. Unlike ``together()``, no write of it
        stands alone."""
        ...

    async def get_snapshot(self, snapshot_id: str) -> Snapshot: ...
    async def get_trigger(self, trigger_id: str) -> TriggerInfo: ...

    # -- credentials -------------------------------------------------------------------------

    async def put_credential(self, credential: NewCredential) -> CredentialInfo:
        """Create or replace; the body is sealed before it reaches the database."""
        ...

    async def get_credential_body(
        self, credential_id: str, *, run_id: str | None = None
    ) -> dict[str, JSONValue]:
        """The decrypted body. With ``run_id``: only if a job of that run uses it."""
        ...

    async def get_credential_for_run(
        self, credential_id: str, run_id: str
    ) -> tuple[dict[str, JSONValue], OAuth2Credential | None]:
        """The body as :meth:`get_credential_body` gives it to ``run_id``, and the OAuth2 row
        when it is an OAuth2 credential (None otherwise), in one read."""
        ...

    async def get_credential(self, credential_id: str) -> CredentialInfo:
        """The credential without its value."""
        ...

    async def list_credentials(self, project_id: str) -> list[CredentialInfo]: ...
    async def delete_credential(self, credential_id: str) -> None:
        """ConflictError while a job uses it or a keychain can choose it."""
        ...

    # -- keychains (store/keychains.py) --------------------------------------------------------

    async def put_keychain(self, keychain: NewKeychain) -> KeychainInfo:
        """Create or replace, its path and credentials checked."""
        ...

    async def get_keychain(self, keychain_id: str) -> KeychainInfo: ...
    async def list_keychains(self, project_id: str) -> list[KeychainInfo]: ...
    async def delete_keychain(self, keychain_id: str) -> None:
        """ConflictError while a job uses it."""
        ...

    # -- collections (issue 19: store/collections.py) ----------------------------------------

    async def create_collection(self, project_id: str, name: str) -> CollectionInfo:
        """ConflictError ``collection_exists`` when the name is taken in any project."""
        ...

    async def get_collection(self, name: str) -> CollectionInfo:
        """NotFoundError when no collection has that name."""
        ...

    async def list_collections(
        self, project_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[CollectionInfo]: ...
    async def delete_collection(
        self, collection_id: str, *, record: NewAuditRecord | None = None
    ) -> None:
        """With all its items, in bounded batches (as ``delete_project``), then the
        collection with ``record``."""
        ...

    async def put_collection_items(
        self, collection_id: str, items: Sequence[tuple[str, str]], limits: CollectionLimits
    ) -> int:
        """Upsert ``(key, value)`` pairs in one statement: all or (on a refusal) none."""
        ...

    async def get_collection_item(self, collection_id: str, key: str) -> CollectionItem | None: ...
    async def delete_collection_item(self, collection_id: str, key: str) -> bool: ...
    async def delete_collection_items(self, collection_id: str, pattern: str | None) -> int:
        """Items whose key matches the ``*`` pattern (``None``: all); how many went."""
        ...

    async def list_collection_items(
        self, collection_id: str, where: ItemFilter, limit: int
    ) -> list[CollectionItem]:
        """One keyset page, in id (insertion) order."""
        ...

    def stream_collection_items(
        self, collection_id: str, where: ItemFilter, *, page: int = 500
    ) -> AsyncGenerator[CollectionItem, None]:
        """Every item ``where`` holds, read a page at a time, each page in its own short read
        transaction: memory holds one page, however large the collection."""
        ...

    # -- dataclips ---------------------------------------------------------------------------

    async def save_dataclip(self, project_id: str, dataclip: NewDataclip) -> Dataclip: ...
    async def get_dataclip(self, dataclip_id: str) -> Dataclip: ...
    async def wipe_dataclip(self, dataclip_id: str) -> None:
        """Drop the body, keep the row and its metadata."""
        ...

    # -- the queue ---------------------------------------------------------------------------

    async def enqueue(self, request: EnqueueRequest) -> Enqueued:
        """Input dataclip, work order and run, in one transaction."""
        ...

    async def claim(
        self,
        demand: int,
        queues: Sequence[str] = DEFAULT_QUEUES,
        worker_name: str | None = None,
        *,
        join: bool = False,
        languages: Sequence[str] = LANGUAGES,
    ) -> list[ClaimedRun]:
        """Up to ``demand`` available runs, now claimed by ``worker_name``, best first:
        by the position of their queue in ``queues`` (``*`` standing for every queue not
        listed; without ``*`` the list is a filter), then priority, then arrival (spec §4.4).
        Only runs whose every job is in one of ``languages`` (those the worker runs) are
        taken; the others wait for a worker that runs them, in the same order.
        No run is ever handed to two claimers. ``join``: the claim joins them too, in the
        same transaction (``CLAIM_FETCHES``); the reaper then never takes them back as
        unjoined, and a lost reply or a refusal still does (``rollback_claims``,
        ``return_refused``)."""
        ...

    async def rollback_claims(self, run_ids: Sequence[str]) -> list[str]:
        """Put back to ``available`` those of these runs still claimed and never joined (the
        claim reply did not reach the worker); the ids rolled back."""
        ...

    async def rollback_unjoined(
        self,
        claimed_before: datetime,
        *,
        note: Callable[[UnjoinedClaim], LogLine] | None = None,
    ) -> list[str]:
        """Every run claimed before ``claimed_before`` whose run channel was never joined
        goes back to ``available`` (spec §4.6); the ids rolled back. ``note`` makes the line
        added to the log of each, saying so (issue 14: the user sees why it waits again)."""
        ...

    async def return_refused(self, run_id: str, *, claimed_before: datetime, note: LogLine) -> bool:
        """The worker that claimed ``run_id`` refused it (its run token did not verify there,
        issue 14): back to ``available`` at once, with ``note`` added to its log. Only a run
        still claimed, never joined, and claimed before ``claimed_before`` (by the claim the
        refused token was minted for, not a later one); true if it went back."""
        ...

    async def mark_lost(
        self, *, grace: timedelta = timedelta(seconds=10), default_timeout_ms: int = 300_000
    ) -> list[LostRun]:
        """Spec §7.5: claimed or started runs whose ``COALESCE(started_at, claimed_at) +
        run_timeout_ms + grace`` has passed become ``lost`` (LostAfterClaim/LostAfterStart),
        and their open steps end ``lost``. ``default_timeout_ms`` stands in for runs without
        a timeout of their own."""
        ...

    async def queue_depth(self) -> dict[str, int]:
        """Available runs per queue that may be claimed now (not retries still waiting)."""
        ...

    async def run_counts(self) -> dict[str, int]:
        """Runs queued or in flight per state: available, claimed, started (states without
        runs are absent). Ended runs are not read: :meth:`run_endings` counts them."""
        ...

    async def run_endings(self) -> dict[str, int]:
        """Runs ended per final state, ever (states no run ended in are absent); a run
        deleted since is still counted."""
        ...

    # -- the coordinator's bookkeeping -------------------------------------------------------

    async def list_cron_triggers(self) -> list[CronTrigger]:
        """Every enabled cron trigger with its cursor."""
        ...

    async def set_cron_cursor(
        self, trigger_id: str, expression: str, timezone: str, next_fire_at: datetime
    ) -> None:
        """Start a trigger's cursor; a cursor that already has this schedule is kept."""
        ...

    async def fire_cron(self, tick: CronTick) -> Enqueued | None:
        """Take one tick and enqueue its run, in one transaction; ``None`` if another
        coordinator (or an earlier life of this one) took it first."""
        ...

    async def put_api_token(self, token: ApiToken) -> ApiToken: ...
    async def get_api_token(self, token_id: str) -> ApiToken: ...
    async def list_api_tokens(
        self, user_id: str | None = None, *, project_id: str | None = None
    ) -> list[ApiToken]:
        """Every token, or the personal tokens of ``user_id``, or the service tokens of
        ``project_id``."""
        ...

    async def delete_api_token(self, token_id: str) -> None: ...
    async def touch_api_token(self, token_id: str) -> None:
        """Record that the token was used now (its ``last_used_at``)."""
        ...

    # -- users and their roles -----------------------------------------------------------------

    async def create_user(self, new: NewUser) -> User:
        """Store a user (ConflictError: the e-mail is taken; InputError: not an address). The
        first instance admin adopts the tokens made before any user existed."""
        ...

    async def get_user(self, user_id: str) -> User: ...
    async def find_user(self, email: str) -> User | None:
        """The user with that e-mail address, in any case."""
        ...

    async def list_users(self) -> list[User]: ...
    async def count_users(self) -> tuple[int, int]:
        """``(active users, active instance admins)``."""
        ...

    async def set_password(
        self, user_id: str, password_hash: str, *, keep_session: str = ""
    ) -> None:
        """Set a password hash; the user's sessions but ``keep_session`` (a digest) end."""
        ...

    async def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace ``old_hash`` (still the user's) by a stronger hash of the same password;
        no session ends. Whether it was replaced."""
        ...

    async def set_user_disabled(self, user_id: str, disabled: bool) -> User:
        """Disable (their sessions end) or enable a user. ConflictError ``last_admin``: the
        last active instance admin."""
        ...

    async def set_instance_admin(self, user_id: str, admin: bool) -> User:
        """Make or unmake an instance admin. ConflictError ``last_admin``: the last active
        one."""
        ...

    async def roles_of(self, user_id: str) -> dict[str, Role]:
        """The user's role in each project they are a member of."""
        ...

    # -- invitations and failed sign-ins -------------------------------------------------------

    async def create_invitation(
        self, new: NewInvitation, digest: str, expires_at: datetime
    ) -> Invitation:
        """Store an invitation whose secret's SHA-256 is ``digest`` (invitations.py)."""
        ...

    async def get_invitation(self, digest: str) -> Invitation:
        """An invitation that can still be accepted; NotFoundError (``unknown_invitation``,
        ``invitation_used``, ``invitation_expired``) otherwise."""
        ...

    async def accept_invitation(
        self, digest: str, *, password_hash: str | None, name: str = ""
    ) -> tuple[User, Invitation]:
        """Use an invitation once: its user made (or found) and given what it gives."""
        ...

    async def list_invitations(self) -> list[Invitation]:
        """The invitations that can still be accepted, newest first."""
        ...

    async def delete_invitation(self, digest: str) -> Invitation:
        """Revoke an invitation (NotFoundError: none); what it was."""
        ...

    async def begin_sign_in(self, limits: Mapping[str, int], window: timedelta) -> SignInAttempt:
        """Refuse an attempt whose subjects had their limit of failures within ``window``,
        else count it as a failure of each in advance (sign_in_failures.py)."""
        ...

    async def forgive_sign_in(self, attempt: SignInAttempt, *, forget: str = "") -> None:
        """The attempt succeeded: take it back, and forget ``forget``'s earlier failures."""

    async def put_member(self, project_id: str, user_id: str, role: Role) -> Member:
        """Make the user a member with ``role``, or give a member that role (NotFoundError:
        no such project or user; ConflictError ``last_owner``: it would demote the project's
        last owner)."""
        ...

    async def remove_member(self, project_id: str, user_id: str) -> None:
        """NotFoundError: not a member; ConflictError ``last_owner``: the last owner."""
        ...

    async def get_member(self, project_id: str, user_id: str) -> Member: ...
    async def list_members(self, project_id: str) -> list[Member]:
        """By e-mail; NotFoundError for a project that does not exist."""
        ...

    # -- the dashboard's sessions ------------------------------------------------------------

    async def open_dashboard_session(
        self,
        digest: str,
        limits: SessionLimits,
        *,
        user_id: str | None = None,
        token_id: str | None = None,
        stage: SessionStage = "full",
        address: str = "",
    ) -> None:
        """Start a session (``digest``: the SHA-256 of its id) for an existing user or token
        (NotFoundError otherwise); sessions expired under ``limits`` are removed."""
        ...

    async def resume_dashboard_session(
        self, digest: str, limits: SessionLimits
    ) -> DashboardSession | None:
        """A session neither idle nor older than ``limits`` allow, whose user is active and
        whose user or token still exists; ``None`` otherwise. Notes the use (to a minute)."""
        ...

    async def set_dashboard_session_stage(self, digest: str, stage: SessionStage) -> None:
        """Move a session on (``mfa`` to ``full``: the second factor was given)."""
        ...

    async def end_dashboard_session(self, digest: str) -> None:
        """Remove a session; nothing happens if there is none."""
        ...

    # -- what the worker reports -------------------------------------------------------------

    def together(self) -> AbstractAsyncContextManager[None]:
        """The writes of the block (each method a savepoint) are one transaction, durable when
        the block returns: several reports of a run for the price of one commit
        (``Database.together``)."""
        ...

    async def join_run(self, run_id: str) -> None:
        """The worker joined ``run:<id>``: from now on the run is not rolled back."""
        ...

    async def start_run(self, run_id: str, *, timestamp: datetime | None = None) -> None: ...
    async def start_step(self, run_id: str, step: StepStart) -> None: ...
    async def complete_step(self, run_id: str, completion: StepCompletion) -> None: ...
    async def append_logs(
        self, run_id: str, lines: Sequence[LogLine], *, once: bool = False
    ) -> list[str]:
        """All lines or none; the ids of the stored lines. ``once``: the lines are a frame a
        worker may send again (its reply lost); the same frame right after itself stores
        nothing and gets the first one's ids (events.append_logs)."""
        ...

    async def append_log(self, run_id: str, line: LogLine) -> str: ...
    async def complete_run(self, run_id: str, completion: RunCompletion) -> None:
        """The run's final state follows from the reason (spec §5.10). Nothing is read back:
        the worker's report, the hot path, needs nothing of the run (``peek_run`` has it)."""
        ...

    async def record_frame(
        self, run_id: str, reports: Sequence[RunReport], lines: Sequence[LogLine]
    ) -> None:
        """The reports of a worker's frame, in order, then its lines (as ``append_logs`` with
        ``once``), in one transaction that reads and locks the run once: the hot path, a
        short run reported whole. All or nothing: each report is checked as its own method
        checks it, and the first one refused raises (TransitionError, NotFoundError,
        ConflictError, InputError) with nothing stored. To learn which reports would have
        been taken, store them one at a time in a ``together()`` block instead."""
        ...

    async def cancel_run(self, run_id: str) -> CancelAction:
        """A queued run is cancelled at once (``NOW``); of a run in flight the cancel is
        recorded as asked (``ASK_WORKER``: its worker must be told, and completes it with
        reason ``cancel``); a final run refuses (TransitionError)."""
        ...

    async def cancel_requested(self) -> list[str]:
        """Runs in flight whose cancel was asked for (their workers may not have heard)."""
        ...

    async def rerun(self, request: RerunRequest) -> Enqueued:
        """A new run in an existing work order, from a step's stored input (issue 8);
        ConflictError ``dataclip_wiped`` when that input is gone."""
        ...

    # -- idempotency keys (issue 14, idempotency.py) -----------------------------------------

    async def enqueue_once(
        self, request: EnqueueRequest, key: IdempotencyKey, answer: Callable[[Enqueued], Answer]
    ) -> Answered:
        """Enqueue ``request`` and record ``answer(enqueued)`` under ``key``, in one
        transaction; or, when ``key`` is already recorded, its first answer, and nothing is
        written. InputError ``idempotency_key_reused``: the key came with another request."""
        ...

    async def rerun_once(
        self, request: RerunRequest, key: IdempotencyKey, answer: Callable[[Enqueued], Answer]
    ) -> Answered:
        """:meth:`rerun` under ``key``, as :meth:`enqueue_once`."""
        ...

    async def rerun_each_once(
        self,
        requests: Sequence[RerunRequest],
        key: IdempotencyKey,
        answer: Callable[[list[Enqueued | FulmenError]], Answer],
    ) -> Answered:
        """Every rerun of ``requests`` under ``key``, in one transaction (each either made,
        or the error that refused it, for ``answer``), as :meth:`enqueue_once`."""
        ...

    async def sweep_idempotency_keys(self, *, limit: int = 1000) -> int:
        """Remove up to ``limit`` expired keys, in one transaction; how many went."""
        ...

    # -- webhook authentication (issue 8) ----------------------------------------------------

    async def create_webhook_auth_method(self, method: NewWebhookAuthMethod) -> WebhookAuthMethod:
        """Sealed like a credential; the answer carries the API key, the only time."""
        ...

    async def get_webhook_auth_method(self, method_id: str) -> WebhookAuthMethod: ...
    async def list_webhook_auth_methods(self, project_id: str) -> list[WebhookAuthMethod]: ...
    async def delete_webhook_auth_method(self, method_id: str) -> None:
        """Also detaches it from every trigger."""
        ...

    async def set_trigger_auth_methods(
        self, trigger_id: str, method_ids: Sequence[str]
    ) -> list[WebhookAuthMethod]:
        """The methods a webhook trigger takes from now on (any one will do; none: open)."""
        ...

    async def list_trigger_auth_methods(self, trigger_id: str) -> list[WebhookAuthMethod]: ...
    async def get_webhook_secrets(self, trigger_id: str) -> list[WebhookSecret]:
        """The opened secrets of the trigger's methods, for checking one request."""
        ...

    # -- retention (issue 8) -----------------------------------------------------------------

    async def projects_with_retention(self) -> list[Project]:
        """Projects with a history or body period, or in ``erase_all`` mode."""
        ...

    async def sweep_retention(
        self, project_id: str, *, limit: int = 1000, max_bytes: int = BATCH_BYTES
    ) -> RetentionBatch:
        """One bounded batch of the project's retention sweep, in its own transaction: up to
        ``limit`` rows of each kind, and dataclips as many as fit ``max_bytes`` of bodies
        (at least one); ``more`` until a batch finds nothing."""
        ...

    # -- failure alerts and digests (issue 18) ----------------------------------------------
    #
    # Every call names the project: a channel or workflow of another project is NotFoundError
    # (``field`` says which), a channel id of another project in a rule or digest InputError
    # (``channel_ids``).

    async def create_alert_channel(self, channel: NewAlertChannel) -> AlertChannel:
        """A new channel; a webhook channel's secret (made when not given) is in the answer,
        and never again."""
        ...

    async def get_alert_channel(self, project_id: str, channel_id: str) -> AlertChannel:
        """The channel, with how its deliveries are going (``health``)."""
        ...

    async def list_alert_channels(self, project_id: str) -> list[AlertChannel]: ...
    async def delete_alert_channel(self, project_id: str, channel_id: str) -> None:
        """Deletes it from every rule and digest, with its deliveries."""
        ...

    async def put_alert_rule(self, rule: AlertRule) -> AlertRule:
        """Make or change a workflow's rule (``last_alert_at`` is the store's)."""
        ...

    async def get_alert_rule(self, project_id: str, workflow_id: str) -> AlertRule | None: ...
    async def list_alert_rules(self, project_id: str) -> list[AlertRule]: ...
    async def delete_alert_rule(self, project_id: str, workflow_id: str) -> None: ...
    async def put_alert_digest(self, digest: AlertDigest) -> AlertDigest:
        """Set a project's digest; the next is due at the first digest time after now."""
        ...

    async def get_alert_digest(self, project_id: str) -> AlertDigest: ...
    async def list_alerts(
        self, project_id: str, *, workflow_id: str | None = None, limit: int = 50
    ) -> list[Alert]:
        """Alerts and digests made, newest first."""
        ...

    async def list_alert_deliveries(
        self,
        project_id: str,
        *,
        channel_id: str | None = None,
        failing: bool = False,
        limit: int = 50,
    ) -> list[AlertDelivery]:
        """Deliveries, newest first; ``failing``: only those retrying or given up."""
        ...

    async def fold_alerts(self, *, limit: int = 100) -> list[Alert]:
        """Make the alerts due now, folding each workflow's pending endings (alert_outbox)."""
        ...

    async def make_alert_digests(self, *, limit: int = 20) -> list[Alert]:
        """Make the digests due now."""
        ...

    async def claim_alert_deliveries(
        self, *, lease: timedelta, limit: int = 20
    ) -> list[ClaimedDelivery]:
        """Claim due deliveries for one try each; no one else claims them within ``lease``."""
        ...

    async def finish_alert_delivery(
        self, delivery_id: str, attempt: int, *, error: str | None, retry_at: datetime | None
    ) -> bool:
        """Record try ``attempt``: sent (no ``error``), again at ``retry_at``, or given up.
        False when that claim had lapsed (nothing recorded)."""
        ...

    async def prune_alerts(self, *, before: datetime) -> int:
        """Forget alerts made before ``before`` whose deliveries have all ended."""
        ...

    # -- the second factor, single sign-on, sign-in limits, instance settings (issue 18) ----

    async def begin_totp(self, user_id: str, secret: str) -> None:
        """Keep ``secret`` (sealed) as the user's second factor to confirm. ConflictError
        ``totp_enabled`` when one is confirmed already."""
        ...

    async def get_second_factor(self, user_id: str) -> SecondFactor | None:
        """The user's second factor (its secret opened), confirmed or not; ``None``: none."""
        ...

    async def enable_totp(
        self, user_id: str, step: int, recovery_digests: Sequence[str], *, keep_session: str = ""
    ) -> None:
        """Confirm the pending second factor (the code of ``step`` was given), with these
        recovery codes' digests; the user's sessions but ``keep_session`` end."""
        ...

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Take a code of ``step``: ``False`` for a replay (that step or a later one taken)."""
        ...

    async def use_recovery_code(self, user_id: str, digest: str) -> bool:
        """Take an unused recovery code by its digest: ``False`` if there is none such."""
        ...

    async def replace_recovery_codes(self, user_id: str, recovery_digests: Sequence[str]) -> None:
        """New recovery codes for an enabled second factor (the old ones stop working)."""
        ...

    async def disable_totp(self, user_id: str) -> None:
        """Remove the user's second factor."""
        ...

    async def note_sign_in_failure(self, subject: str, *, window: timedelta) -> None:
        """Count a failed sign-in against ``subject`` (``mfa:<user id>``, ``email:…``);
        failures older than ``window`` are forgotten."""
        ...

    async def sign_in_failures(self, subject: str, *, window: timedelta) -> list[datetime]:
        """When each failure of ``subject`` within ``window`` was, oldest first."""
        ...

    async def clear_sign_in_failures(self, subject: str) -> None: ...
    async def get_instance_settings(self) -> InstanceSettings: ...
    async def set_instance_settings(self, changes: Mapping[str, JSONValue]) -> InstanceSettings:
        """Set the named settings; InputError ``unknown_setting`` or ``bad_setting``."""
        ...

    async def put_sso_request(self, digest: str, request: SsoRequest) -> None:
        """Keep a single sign-on begun, under its state's digest."""
        ...

    async def take_sso_request(self, digest: str) -> SsoRequest | None:
        """The single sign-on kept under ``digest``, removed (``None``: none, or expired)."""
        ...

    async def mark_sso_session(self, digest: str) -> None:
        """The dashboard session ``digest`` was begun through single sign-on."""
        ...

    async def is_sso_session(self, digest: str) -> bool: ...

    # -- OAuth2 credentials (issue 19) -------------------------------------------------------

    async def put_oauth2_credential(
        self,
        credential: NewCredential,
        settings: OAuth2Settings,
        secrets: OAuth2Secrets,
        *,
        status: OAuth2Status,
        expires_at: datetime | None = None,
    ) -> CredentialInfo:
        """Create or replace an OAuth2 credential: its body (fields besides the token), its
        provider settings, and its client secret and tokens (sealed), in one transaction."""
        ...

    async def get_oauth2_credential(self, credential_id: str) -> OAuth2Credential:
        """With its secrets opened (NotFoundError: not an OAuth2 credential)."""
        ...

    async def get_oauth2_state(self, credential_id: str) -> OAuth2State:
        """Without secrets (NotFoundError: not an OAuth2 credential)."""
        ...

    async def list_oauth2_states(self, project_id: str) -> list[OAuth2State]: ...

    async def take_oauth2_lease(
        self, credential_id: str, holder: str, until: datetime
    ) -> OAuth2Credential | None:
        """The right to refresh the token until ``until``, with the credential as it is now;
        ``None`` while another holder's lease runs."""
        ...

    async def save_oauth2_tokens(
        self,
        credential_id: str,
        secrets: OAuth2Secrets,
        expires_at: datetime | None,
        refreshed_at: datetime,
    ) -> None:
        """New tokens: connected, the lease given back."""
        ...

    async def set_oauth2_status(
        self, credential_id: str, status: OAuth2Status, problem: str
    ) -> None: ...

    async def release_oauth2_lease(self, credential_id: str, holder: str) -> None: ...

    async def put_oauth2_authorization(
        self, digest: str, authorization: OAuth2Authorization
    ) -> None:
        """Keep a "Connect" begun, under its state's digest."""
        ...

    async def take_oauth2_authorization(self, digest: str) -> OAuth2Authorization | None:
        """The authorization kept under ``digest``, removed (``None``: none, or expired)."""
        ...

    # -- the audit trail (issue 18, audit.py) --------------------------------------------------

    async def append_audit(self, record: NewAuditRecord) -> int:
        """Append a record, stamped with the store's time; its seq. Inside ``together()``
        with the change it records, both are made durable by one commit."""
        ...

    async def list_audit(
        self, where: AuditFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[AuditRecord]:
        """Newest first."""
        ...

    async def sweep_audit(
        self, project_id: str | None, before: datetime, *, limit: int = 1000
    ) -> int:
        """Delete up to ``limit`` records older than ``before`` (the project's; with ``None``
        the whole instance's and those of projects deleted since), in one transaction: the
        one delete the schema allows. How many went."""
        ...

    # -- reading runs back -------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunDetail: ...
    async def peek_run(self, run_id: str) -> Run:
        """The run without its steps (one statement where ``get_run`` takes two)."""
        ...

    async def peek_run_and_secrets(
        self, run_id: str, trigger_ids: Sequence[str]
    ) -> tuple[Run, list[WebhookSecret]]:
        """:meth:`peek_run` and the :meth:`get_webhook_secrets` of each of ``trigger_ids``,
        in one read: what a worker's join reads (its run's state, and the secrets its
        scrubber masks).

        Raises:
            NotFoundError: no such run. ConfigError: a secret cannot be opened (the
                credential key is missing or another one).
        """
        ...

    async def list_runs(
        self, where: RunFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Run]:
        """Newest first."""
        ...

    async def get_logs(
        self, run_id: str, *, cursor: str | None = None, limit: int = 500
    ) -> Page[LogEntry]:
        """In time order."""
        ...

    async def get_work_order(self, work_order_id: str) -> WorkOrder: ...
    async def get_plan(self, run_id: str) -> dict[str, Any]:
        """The ``fetch:plan`` reply: spec §6.1's plan JSON."""
        ...

    async def get_plan_and_input(self, run_id: str) -> tuple[dict[str, Any], Dataclip | None]:
        """:meth:`get_plan` and the run's input dataclip, in one read (what a claim that
        fetches answers with); the input ``None`` when the run has none or it is gone."""
        ...

    async def close(self) -> None: ...
