"""SQLStore: the Store Protocol over a ``Database`` of either dialect.

Each method opens one transaction and hands it to the function that does the work (catalog,
credentials, dataclips, queue, events, reads), so this class holds no logic of its own: it
decides only which transactions write and where "now" comes from.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fulmen.clock import SYSTEM_CLOCK, Clock
from fulmen.errors import FulmenError, NotFoundError
from fulmen.lifecycle import CancelAction
from fulmen.plan import LANGUAGES
from fulmen.store import (
    alert_config,
    alert_outbox,
    api_tokens,
    audit,
    catalog,
    collections,
    credentials,
    dashboard_sessions,
    dataclips,
    deployments,
    events,
    idempotency,
    instance_settings,
    invitations,
    keychains,
    members,
    oauth2,
    ownership,
    queue,
    reads,
    reruns,
    retention,
    schedules,
    second_factor,
    sign_in_failures,
    sso_requests,
    users,
    webhook_auth,
)
from fulmen.store.base import Store
from fulmen.store.batches import BATCH_BYTES
from fulmen.store.cipher import CredentialCipher
from fulmen.store.dashboard_sessions import DashboardSession, SessionLimits, SessionStage
from fulmen.store.db import Database, Tx
from fulmen.store.idempotency import Answer, Answered, IdempotencyKey
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
from fulmen.store.sign_in_failures import SignInAttempt

__all__ = ["SQLStore"]


class SQLStore:
    """The coordinator's store on SQLite or PostgreSQL. Open it with ``open_store``."""

    def __init__(
        self,
        db: Database,
        *,
        cipher: CredentialCipher | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock

    @property
    def dialect(self) -> str:
        return self._db.dialect

    async def close(self) -> None:
        await self._db.close()

    def together(self) -> AbstractAsyncContextManager[None]:
        return self._db.together()

    async def __aenter__(self) -> SQLStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _in_batches(self, batch: Callable[[Tx], Awaitable[int]]) -> int:
        """Run ``batch`` in a transaction of its own, again until it deletes no row; how many
        it deleted. Between two, other writers take their turn (store/batches.py)."""
        total = 0
        while True:
            async with self._db.write() as tx:
                gone = await batch(tx)
            if not gone:
                return total
            total += gone

    async def _record(self, tx: Tx, record: NewAuditRecord | None) -> None:
        """Append ``record`` in ``tx``: with the change it records."""
        if record is not None:
            await audit.append(tx, record, self._clock.now())

    # -- projects and workflows ------------------------------------------------------------

    async def create_project(self, project: Project, *, owner_id: str | None = None) -> Project:
        now = self._clock.now()
        async with self._db.write() as tx:
            made = await catalog.create_project(tx, project, now)
            if owner_id is not None:
                await members.put_member(tx, made.id, owner_id, Role.OWNER, now)
            return made

    async def replace_project(self, project: Project) -> Project:
        async with self._db.write() as tx:
            return await catalog.replace_project(tx, project, self._clock.now())

    async def get_project(self, project_id: str) -> Project:
        async with self._db.read() as tx:
            return await catalog.get_project(tx, project_id)

    async def list_projects(
        self, *, cursor: str | None = None, limit: int = 100, ids: Collection[str] | None = None
    ) -> Page[Project]:
        async with self._db.read() as tx:
            return await catalog.list_projects(tx, cursor, limit, ids)

    async def project_of(self, kind: ThingKind, thing_id: str) -> str:
        async with self._db.read() as tx:
            return await ownership.project_of(tx, kind, thing_id)

    async def delete_project(
        self, project_id: str, *, record: NewAuditRecord | None = None
    ) -> None:
        async with self._db.read() as tx:
            owned = await collections.project_collection_ids(tx, project_id)
        for collection_id in owned:
            await self.delete_collection_items(collection_id, None)
        await self._in_batches(lambda tx: catalog.delete_project_history(tx, project_id))
        async with self._db.write() as tx:
            await catalog.delete_project(tx, project_id)
            await self._record(tx, record)

    async def create_workflow(self, workflow: Workflow) -> StoredWorkflow:
        async with self._db.write() as tx:
            return await catalog.create_workflow(tx, workflow, self._clock.now())

    async def replace_workflow(
        self, workflow: Workflow, *, expected_version: int | None = None
    ) -> StoredWorkflow:
        async with self._db.write() as tx:
            return await catalog.replace_workflow(tx, workflow, expected_version, self._clock.now())

    async def get_workflow(self, workflow_id: str) -> StoredWorkflow:
        async with self._db.read() as tx:
            return await catalog.get_workflow(tx, workflow_id)

    async def list_workflows(
        self, project_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[StoredWorkflow]:
        async with self._db.read() as tx:
            return await catalog.list_workflows(tx, project_id, cursor, limit)

    async def delete_workflow(
        self, workflow_id: str, *, record: NewAuditRecord | None = None
    ) -> None:
        await self._in_batches(lambda tx: catalog.delete_workflow_history(tx, workflow_id))
        async with self._db.write() as tx:
            await catalog.delete_workflow(tx, workflow_id)
            await self._record(tx, record)

    async def deploy(
        self, deployment: Deployment, *, record: Callable[[Deployed], Sequence[NewAuditRecord]]
    ) -> Deployed:
        async with self._db.write() as tx:
            return await deployments.deploy(tx, self._cipher, deployment, record, self._clock.now())

    async def get_snapshot(self, snapshot_id: str) -> Snapshot:
        async with self._db.read() as tx:
            return await catalog.get_snapshot(tx, snapshot_id)

    async def get_trigger(self, trigger_id: str) -> TriggerInfo:
        async with self._db.read() as tx:
            return await catalog.get_trigger(tx, trigger_id)

    # -- credentials -------------------------------------------------------------------------

    async def put_credential(self, credential: NewCredential) -> CredentialInfo:
        async with self._db.write() as tx:
            return await credentials.put_credential(tx, self._cipher, credential, self._clock.now())

    async def get_credential_body(
        self, credential_id: str, *, run_id: str | None = None
    ) -> dict[str, JSONValue]:
        async with self._db.read() as tx:
            return await credentials.get_credential_body(tx, self._cipher, credential_id, run_id)

    async def get_credential_for_run(
        self, credential_id: str, run_id: str
    ) -> tuple[dict[str, JSONValue], OAuth2Credential | None]:
        async with self._db.read() as tx:
            return await credentials.open_credential(tx, self._cipher, credential_id, run_id)

    async def get_credential(self, credential_id: str) -> CredentialInfo:
        async with self._db.read() as tx:
            return await credentials.get_credential(tx, credential_id)

    async def list_credentials(self, project_id: str) -> list[CredentialInfo]:
        async with self._db.read() as tx:
            return await credentials.list_credentials(tx, project_id)

    async def delete_credential(self, credential_id: str) -> None:
        async with self._db.write() as tx:
            await credentials.delete_credential(tx, credential_id)

    # -- collections ---------------------------------------------------------------------------

    async def create_collection(self, project_id: str, name: str) -> CollectionInfo:
        async with self._db.write() as tx:
            return await collections.create_collection(tx, project_id, name, self._clock.now())

    async def get_collection(self, name: str) -> CollectionInfo:
        async with self._db.read() as tx:
            return await collections.get_collection(tx, name)

    async def list_collections(
        self, project_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[CollectionInfo]:
        async with self._db.read() as tx:
            return await collections.list_collections(tx, project_id, cursor=cursor, limit=limit)

    async def delete_collection(
        self, collection_id: str, *, record: NewAuditRecord | None = None
    ) -> None:
        await self.delete_collection_items(collection_id, None)
        async with self._db.write() as tx:
            await collections.delete_collection(tx, collection_id)
            await self._record(tx, record)

    async def put_collection_items(
        self, collection_id: str, items: Sequence[tuple[str, str]], limits: CollectionLimits
    ) -> int:
        async with self._db.write() as tx:
            now = self._clock.now()
            return await collections.put_items(tx, collection_id, items, now, limits, self.dialect)

    async def get_collection_item(self, collection_id: str, key: str) -> CollectionItem | None:
        async with self._db.read() as tx:
            return await collections.get_item(tx, collection_id, key)

    async def delete_collection_item(self, collection_id: str, key: str) -> bool:
        async with self._db.write() as tx:
            return await collections.delete_item(tx, collection_id, key, self._clock.now())

    async def delete_collection_items(self, collection_id: str, pattern: str | None) -> int:
        return await self._in_batches(
            lambda tx: collections.delete_items(
                tx, collection_id, pattern, self._clock.now(), self.dialect
            )
        )

    async def list_collection_items(
        self, collection_id: str, where: ItemFilter, limit: int
    ) -> list[CollectionItem]:
        async with self._db.read() as tx:
            return await collections.list_items(tx, collection_id, where, limit, self.dialect)

    async def stream_collection_items(
        self, collection_id: str, where: ItemFilter, *, page: int = 500
    ) -> AsyncGenerator[CollectionItem, None]:
        while True:
            items = await self.list_collection_items(collection_id, where, page)
            for item in items:
                yield item
            if len(items) < page:
                return
            where = replace(where, after_id=items[-1].id)

    # -- keychains ---------------------------------------------------------------------------

    async def put_keychain(self, keychain: NewKeychain) -> KeychainInfo:
        async with self._db.write() as tx:
            return await keychains.put_keychain(tx, keychain, self._clock.now())

    async def get_keychain(self, keychain_id: str) -> KeychainInfo:
        async with self._db.read() as tx:
            return await keychains.get_keychain(tx, keychain_id)

    async def list_keychains(self, project_id: str) -> list[KeychainInfo]:
        async with self._db.read() as tx:
            return await keychains.list_keychains(tx, project_id)

    async def delete_keychain(self, keychain_id: str) -> None:
        async with self._db.write() as tx:
            await keychains.delete_keychain(tx, keychain_id)

    # -- dataclips ---------------------------------------------------------------------------

    async def save_dataclip(self, project_id: str, dataclip: NewDataclip) -> Dataclip:
        async with self._db.write() as tx:
            await catalog.get_project(tx, project_id)
            dataclip_id = await dataclips.insert_dataclip(
                tx, project_id, dataclip, self._clock.now()
            )
            return await dataclips.get_dataclip(tx, dataclip_id)

    async def get_dataclip(self, dataclip_id: str) -> Dataclip:
        async with self._db.read() as tx:
            return await dataclips.get_dataclip(tx, dataclip_id)

    async def wipe_dataclip(self, dataclip_id: str) -> None:
        async with self._db.write() as tx:
            await dataclips.wipe_dataclip(tx, dataclip_id, self._clock.now())

    # -- the queue ---------------------------------------------------------------------------

    async def enqueue(self, request: EnqueueRequest) -> Enqueued:
        async with self._db.write() as tx:
            return await queue.enqueue(tx, request, self._clock.now())

    async def claim(
        self,
        demand: int,
        queues: Sequence[str] = DEFAULT_QUEUES,
        worker_name: str | None = None,
        *,
        join: bool = False,
        languages: Sequence[str] = LANGUAGES,
    ) -> list[ClaimedRun]:
        async with self._db.write() as tx:
            return await queue.claim(
                tx, demand, queues, worker_name, self._clock.now(), join=join, languages=languages
            )

    async def rollback_claims(self, run_ids: Sequence[str]) -> list[str]:
        async with self._db.write() as tx:
            return await queue.rollback_claims(tx, run_ids)

    async def rollback_unjoined(
        self,
        claimed_before: datetime,
        *,
        note: Callable[[UnjoinedClaim], LogLine] | None = None,
    ) -> list[str]:
        async with self._db.write() as tx:
            return await queue.rollback_unjoined(tx, claimed_before, note)

    async def return_refused(self, run_id: str, *, claimed_before: datetime, note: LogLine) -> bool:
        async with self._db.write() as tx:
            return await queue.return_refused(tx, run_id, claimed_before, note)

    async def mark_lost(
        self, *, grace: timedelta = timedelta(seconds=10), default_timeout_ms: int = 300_000
    ) -> list[LostRun]:
        async with self._db.write() as tx:
            return await queue.mark_lost(tx, self._clock.now(), grace, default_timeout_ms)

    async def queue_depth(self) -> dict[str, int]:
        async with self._db.read() as tx:
            return await queue.queue_depth(tx, self._clock.now())

    async def run_counts(self) -> dict[str, int]:
        async with self._db.read() as tx:
            return await queue.run_counts(tx)

    async def run_endings(self) -> dict[str, int]:
        async with self._db.read() as tx:
            return await queue.run_endings(tx)

    # -- the coordinator's bookkeeping -------------------------------------------------------

    async def list_cron_triggers(self) -> list[CronTrigger]:
        async with self._db.read() as tx:
            return await schedules.list_cron_triggers(tx)

    async def set_cron_cursor(
        self, trigger_id: str, expression: str, timezone: str, next_fire_at: datetime
    ) -> None:
        async with self._db.write() as tx:
            await schedules.set_cron_cursor(
                tx, trigger_id, expression, timezone, next_fire_at, self._clock.now()
            )

    async def fire_cron(self, tick: CronTick) -> Enqueued | None:
        async with self._db.write() as tx:
            return await schedules.fire_cron(tx, tick, self._clock.now())

    async def put_api_token(self, token: ApiToken) -> ApiToken:
        async with self._db.write() as tx:
            return await api_tokens.put_api_token(tx, token, self._clock.now())

    async def get_api_token(self, token_id: str) -> ApiToken:
        async with self._db.read() as tx:
            return await api_tokens.get_api_token(tx, token_id)

    async def list_api_tokens(
        self, user_id: str | None = None, *, project_id: str | None = None
    ) -> list[ApiToken]:
        async with self._db.read() as tx:
            return await api_tokens.list_api_tokens(tx, user_id, project_id)

    async def delete_api_token(self, token_id: str) -> None:
        async with self._db.write() as tx:
            await api_tokens.delete_api_token(tx, token_id)

    async def touch_api_token(self, token_id: str) -> None:
        async with self._db.write() as tx:
            await api_tokens.touch_api_token(tx, token_id, self._clock.now())

    # -- users and their roles (users.py, members.py) ---------------------------------------

    async def create_user(self, new: NewUser) -> User:
        async with self._db.write() as tx:
            return await users.create_user(tx, new, self._clock.now())

    async def get_user(self, user_id: str) -> User:
        async with self._db.read() as tx:
            return await users.get_user(tx, user_id)

    async def find_user(self, email: str) -> User | None:
        async with self._db.read() as tx:
            return await users.find_user(tx, email)

    async def list_users(self) -> list[User]:
        async with self._db.read() as tx:
            return await users.list_users(tx)

    async def count_users(self) -> tuple[int, int]:
        async with self._db.read() as tx:
            return await users.count_users(tx)

    async def set_password(
        self, user_id: str, password_hash: str, *, keep_session: str = ""
    ) -> None:
        async with self._db.write() as tx:
            await users.set_password(
                tx, user_id, password_hash, self._clock.now(), keep_session=keep_session
            )

    async def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        async with self._db.write() as tx:
            return await users.rehash_password(tx, user_id, old_hash, new_hash)

    async def set_user_disabled(self, user_id: str, disabled: bool) -> User:
        async with self._db.write() as tx:
            return await users.set_user_disabled(tx, user_id, disabled, self._clock.now())

    async def set_instance_admin(self, user_id: str, admin: bool) -> User:
        async with self._db.write() as tx:
            return await users.set_instance_admin(tx, user_id, admin, self._clock.now())

    async def roles_of(self, user_id: str) -> dict[str, Role]:
        async with self._db.read() as tx:
            return await users.roles_of(tx, user_id)

    # -- invitations (invitations.py) and failed sign-ins (sign_in_failures.py) --------------

    async def create_invitation(
        self, new: NewInvitation, digest: str, expires_at: datetime
    ) -> Invitation:
        async with self._db.write() as tx:
            return await invitations.create_invitation(
                tx, new, digest, expires_at, self._clock.now()
            )

    async def get_invitation(self, digest: str) -> Invitation:
        async with self._db.read() as tx:
            return await invitations.get_invitation(tx, digest, self._clock.now())

    async def accept_invitation(
        self, digest: str, *, password_hash: str | None, name: str = ""
    ) -> tuple[User, Invitation]:
        async with self._db.write() as tx:
            return await invitations.accept_invitation(
                tx, digest, self._clock.now(), password_hash=password_hash, name=name
            )

    async def list_invitations(self) -> list[Invitation]:
        async with self._db.read() as tx:
            return await invitations.list_invitations(tx, self._clock.now())

    async def delete_invitation(self, digest: str) -> Invitation:
        async with self._db.write() as tx:
            return await invitations.delete_invitation(tx, digest)

    async def begin_sign_in(self, limits: Mapping[str, int], window: timedelta) -> SignInAttempt:
        async with self._db.write() as tx:
            return await sign_in_failures.begin_sign_in(tx, limits, window, self._clock.now())

    async def forgive_sign_in(self, attempt: SignInAttempt, *, forget: str = "") -> None:
        async with self._db.write() as tx:
            await sign_in_failures.forgive_sign_in(tx, attempt, forget=forget)

    async def put_member(self, project_id: str, user_id: str, role: Role) -> Member:
        async with self._db.write() as tx:
            return await members.put_member(tx, project_id, user_id, role, self._clock.now())

    async def remove_member(self, project_id: str, user_id: str) -> None:
        async with self._db.write() as tx:
            await members.remove_member(tx, project_id, user_id)

    async def get_member(self, project_id: str, user_id: str) -> Member:
        async with self._db.read() as tx:
            return await members.get_member(tx, project_id, user_id)

    async def list_members(self, project_id: str) -> list[Member]:
        async with self._db.read() as tx:
            return await members.list_members(tx, project_id)

    # -- the dashboard's sessions (dashboard_sessions.py) -----------------------------------

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
        async with self._db.write() as tx:
            await dashboard_sessions.open_session(
                tx,
                digest,
                limits,
                self._clock.now(),
                user_id=user_id,
                token_id=token_id,
                stage=stage,
                address=address,
            )

    async def resume_dashboard_session(
        self, digest: str, limits: SessionLimits
    ) -> DashboardSession | None:
        return await dashboard_sessions.resume_session(self._db, digest, limits, self._clock.now())

    async def set_dashboard_session_stage(self, digest: str, stage: SessionStage) -> None:
        async with self._db.write() as tx:
            await dashboard_sessions.set_session_stage(tx, digest, stage, self._clock.now())

    async def end_dashboard_session(self, digest: str) -> None:
        async with self._db.write() as tx:
            await dashboard_sessions.end_session(tx, digest)

    # -- what the worker reports -------------------------------------------------------------

    async def join_run(self, run_id: str) -> None:
        async with self._db.write() as tx:
            await events.join_run(tx, run_id, self._clock.now())

    async def start_run(self, run_id: str, *, timestamp: datetime | None = None) -> None:
        async with self._db.write() as tx:
            await events.start_run(tx, run_id, timestamp or self._clock.now())

    async def start_step(self, run_id: str, step: StepStart) -> None:
        async with self._db.write() as tx:
            await events.start_step(tx, run_id, step, self._clock.now())

    async def complete_step(self, run_id: str, completion: StepCompletion) -> None:
        async with self._db.write() as tx:
            await events.complete_step(tx, run_id, completion, self._clock.now())

    async def append_logs(
        self, run_id: str, lines: Sequence[LogLine], *, once: bool = False
    ) -> list[str]:
        async with self._db.write() as tx:
            return await events.append_logs(tx, run_id, lines, once=once)

    async def append_log(self, run_id: str, line: LogLine) -> str:
        return (await self.append_logs(run_id, [line]))[0]

    async def complete_run(self, run_id: str, completion: RunCompletion) -> None:
        async with self._db.write() as tx:
            await events.complete_run(tx, run_id, completion, self._clock.now())

    async def record_frame(
        self, run_id: str, reports: Sequence[RunReport], lines: Sequence[LogLine]
    ) -> None:
        async with self._db.write() as tx:
            await events.record_frame(tx, run_id, reports, lines, self._clock.now())

    async def cancel_run(self, run_id: str) -> CancelAction:
        async with self._db.write() as tx:
            return await events.cancel_run(tx, run_id, self._clock.now())

    async def cancel_requested(self) -> list[str]:
        async with self._db.read() as tx:
            return [str(row["id"]) for row in await tx.fetchall("cancel_requested_runs")]

    async def rerun(self, request: RerunRequest) -> Enqueued:
        async with self._db.write() as tx:
            return await reruns.rerun(tx, request, self._clock.now())

    # -- idempotency keys (idempotency.py) ---------------------------------------------------

    async def enqueue_once(
        self, request: EnqueueRequest, key: IdempotencyKey, answer: Callable[[Enqueued], Answer]
    ) -> Answered:
        async with self._db.write() as tx:
            now = self._clock.now()

            async def work() -> Answer:
                return answer(await queue.enqueue(tx, request, now))

            return await idempotency.once(tx, key, now, work)

    async def rerun_once(
        self, request: RerunRequest, key: IdempotencyKey, answer: Callable[[Enqueued], Answer]
    ) -> Answered:
        async with self._db.write() as tx:
            now = self._clock.now()

            async def work() -> Answer:
                return answer(await reruns.rerun(tx, request, now))

            return await idempotency.once(tx, key, now, work)

    async def rerun_each_once(
        self,
        requests: Sequence[RerunRequest],
        key: IdempotencyKey,
        answer: Callable[[list[Enqueued | FulmenError]], Answer],
    ) -> Answered:
        async with self._db.write() as tx:
            now = self._clock.now()

            async def work() -> Answer:
                made: list[Enqueued | FulmenError] = []
                for request in requests:
                    try:
                        made.append(await reruns.rerun(tx, request, now))
                    except FulmenError as error:
                        # rerun checks everything before it writes: a refused rerun wrote
                        # nothing, and the others go on in the same transaction
                        made.append(error)
                return answer(made)

            return await idempotency.once(tx, key, now, work)

    async def sweep_idempotency_keys(self, *, limit: int = 1000) -> int:
        async with self._db.write() as tx:
            return await idempotency.delete_expired(tx, limit, self._clock.now())

    # -- webhook authentication --------------------------------------------------------------

    async def create_webhook_auth_method(self, method: NewWebhookAuthMethod) -> WebhookAuthMethod:
        async with self._db.write() as tx:
            await catalog.get_project(tx, method.project_id)
            return await webhook_auth.create_method(tx, self._cipher, method, self._clock.now())

    async def get_webhook_auth_method(self, method_id: str) -> WebhookAuthMethod:
        async with self._db.read() as tx:
            return await webhook_auth.get_method(tx, method_id)

    async def list_webhook_auth_methods(self, project_id: str) -> list[WebhookAuthMethod]:
        async with self._db.read() as tx:
            return await webhook_auth.list_methods(tx, project_id)

    async def delete_webhook_auth_method(self, method_id: str) -> None:
        async with self._db.write() as tx:
            await webhook_auth.delete_method(tx, method_id)

    async def set_trigger_auth_methods(
        self, trigger_id: str, method_ids: Sequence[str]
    ) -> list[WebhookAuthMethod]:
        async with self._db.write() as tx:
            return await webhook_auth.set_trigger_methods(tx, trigger_id, method_ids)

    async def list_trigger_auth_methods(self, trigger_id: str) -> list[WebhookAuthMethod]:
        async with self._db.read() as tx:
            await catalog.get_trigger(tx, trigger_id)
            return await webhook_auth.list_trigger_methods(tx, trigger_id)

    async def get_webhook_secrets(self, trigger_id: str) -> list[WebhookSecret]:
        async with self._db.read() as tx:
            return await webhook_auth.trigger_secrets(tx, self._cipher, trigger_id)

    # -- retention ---------------------------------------------------------------------------

    async def projects_with_retention(self) -> list[Project]:
        async with self._db.read() as tx:
            return await retention.projects_with_retention(tx)

    async def sweep_retention(
        self, project_id: str, *, limit: int = 1000, max_bytes: int = BATCH_BYTES
    ) -> RetentionBatch:
        async with self._db.write() as tx:
            now = self._clock.now()
            return await retention.sweep_batch(tx, project_id, limit, now, max_bytes)

    # -- failure alerts and digests (alert_config.py, alert_outbox.py) ------------------------

    async def create_alert_channel(self, channel: NewAlertChannel) -> AlertChannel:
        async with self._db.write() as tx:
            return await alert_config.create_channel(tx, self._cipher, channel, self._clock.now())

    async def get_alert_channel(self, project_id: str, channel_id: str) -> AlertChannel:
        async with self._db.read() as tx:
            return await alert_config.get_channel(tx, project_id, channel_id)

    async def list_alert_channels(self, project_id: str) -> list[AlertChannel]:
        async with self._db.read() as tx:
            await catalog.get_project(tx, project_id)
            return await alert_config.list_channels(tx, project_id)

    async def delete_alert_channel(self, project_id: str, channel_id: str) -> None:
        async with self._db.write() as tx:
            await alert_config.delete_channel(tx, project_id, channel_id)

    async def put_alert_rule(self, rule: AlertRule) -> AlertRule:
        async with self._db.write() as tx:
            return await alert_config.put_rule(tx, rule, self._clock.now())

    async def get_alert_rule(self, project_id: str, workflow_id: str) -> AlertRule | None:
        async with self._db.read() as tx:
            return await alert_config.get_rule(tx, project_id, workflow_id)

    async def list_alert_rules(self, project_id: str) -> list[AlertRule]:
        async with self._db.read() as tx:
            return await alert_config.list_rules(tx, project_id)

    async def delete_alert_rule(self, project_id: str, workflow_id: str) -> None:
        async with self._db.write() as tx:
            await alert_config.delete_rule(tx, project_id, workflow_id)

    async def put_alert_digest(self, digest: AlertDigest) -> AlertDigest:
        async with self._db.write() as tx:
            return await alert_config.put_digest(tx, digest, self._clock.now())

    async def get_alert_digest(self, project_id: str) -> AlertDigest:
        async with self._db.read() as tx:
            return await alert_config.get_digest(tx, project_id)

    async def list_alerts(
        self, project_id: str, *, workflow_id: str | None = None, limit: int = 50
    ) -> list[Alert]:
        async with self._db.read() as tx:
            return await alert_outbox.list_alerts(tx, project_id, workflow_id, limit)

    async def list_alert_deliveries(
        self,
        project_id: str,
        *,
        channel_id: str | None = None,
        failing: bool = False,
        limit: int = 50,
    ) -> list[AlertDelivery]:
        async with self._db.read() as tx:
            return await alert_outbox.list_deliveries(tx, project_id, channel_id, failing, limit)

    async def fold_alerts(self, *, limit: int = 100) -> list[Alert]:
        async with self._db.write() as tx:
            return await alert_outbox.fold_due(tx, self._clock.now(), limit)

    async def make_alert_digests(self, *, limit: int = 20) -> list[Alert]:
        async with self._db.write() as tx:
            return await alert_outbox.make_digests(tx, self._clock.now(), limit)

    async def claim_alert_deliveries(
        self, *, lease: timedelta, limit: int = 20
    ) -> list[ClaimedDelivery]:
        async with self._db.write() as tx:
            now = self._clock.now()
            return await alert_outbox.claim_deliveries(tx, self._cipher, now, lease, limit)

    async def finish_alert_delivery(
        self, delivery_id: str, attempt: int, *, error: str | None, retry_at: datetime | None
    ) -> bool:
        async with self._db.write() as tx:
            return await alert_outbox.finish_delivery(
                tx, delivery_id, attempt, self._clock.now(), error=error, retry_at=retry_at
            )

    async def prune_alerts(self, *, before: datetime) -> int:
        async with self._db.write() as tx:
            return await alert_outbox.prune(tx, before)

    # -- the second factor, single sign-on, sign-in limits, instance settings (issue 18) ----

    async def begin_totp(self, user_id: str, secret: str) -> None:
        async with self._db.write() as tx:
            await second_factor.begin_totp(tx, self._cipher, user_id, secret, self._clock.now())

    async def get_second_factor(self, user_id: str) -> SecondFactor | None:
        async with self._db.read() as tx:
            return await second_factor.get_second_factor(tx, self._cipher, user_id)

    async def enable_totp(
        self, user_id: str, step: int, recovery_digests: Sequence[str], *, keep_session: str = ""
    ) -> None:
        async with self._db.write() as tx:
            await second_factor.enable_totp(
                tx, user_id, step, recovery_digests, self._clock.now(), keep_session=keep_session
            )

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        async with self._db.write() as tx:
            return await second_factor.use_totp_step(tx, user_id, step)

    async def use_recovery_code(self, user_id: str, digest: str) -> bool:
        async with self._db.write() as tx:
            return await second_factor.use_recovery_code(tx, user_id, digest)

    async def replace_recovery_codes(self, user_id: str, recovery_digests: Sequence[str]) -> None:
        async with self._db.write() as tx:
            await second_factor.replace_recovery_codes(
                tx, user_id, recovery_digests, self._clock.now()
            )

    async def disable_totp(self, user_id: str) -> None:
        async with self._db.write() as tx:
            await second_factor.disable_totp(tx, user_id, self._clock.now())

    async def note_sign_in_failure(self, subject: str, *, window: timedelta) -> None:
        now = self._clock.now()
        async with self._db.write() as tx:
            await sign_in_failures.note_sign_in_failure(tx, subject, now, now - window)

    async def sign_in_failures(self, subject: str, *, window: timedelta) -> list[datetime]:
        async with self._db.read() as tx:
            return await sign_in_failures.sign_in_failures(tx, subject, self._clock.now() - window)

    async def clear_sign_in_failures(self, subject: str) -> None:
        async with self._db.write() as tx:
            await sign_in_failures.clear_sign_in_failures(tx, subject)

    async def get_instance_settings(self) -> InstanceSettings:
        async with self._db.read() as tx:
            return await instance_settings.get_instance_settings(tx)

    async def set_instance_settings(self, changes: Mapping[str, JSONValue]) -> InstanceSettings:
        async with self._db.write() as tx:
            return await instance_settings.set_instance_settings(tx, changes, self._clock.now())

    async def put_sso_request(self, digest: str, request: SsoRequest) -> None:
        async with self._db.write() as tx:
            await sso_requests.put_sso_request(tx, digest, request, self._clock.now())

    async def take_sso_request(self, digest: str) -> SsoRequest | None:
        async with self._db.write() as tx:
            return await sso_requests.take_sso_request(tx, digest, self._clock.now())

    async def mark_sso_session(self, digest: str) -> None:
        async with self._db.write() as tx:
            await sso_requests.mark_sso_session(tx, digest)

    async def is_sso_session(self, digest: str) -> bool:
        async with self._db.read() as tx:
            return await sso_requests.is_sso_session(tx, digest)

    # -- OAuth2 credentials (oauth2.py) ------------------------------------------------------

    async def put_oauth2_credential(
        self,
        credential: NewCredential,
        settings: OAuth2Settings,
        secrets: OAuth2Secrets,
        *,
        status: OAuth2Status,
        expires_at: datetime | None = None,
    ) -> CredentialInfo:
        now = self._clock.now()
        async with self._db.write() as tx:
            info = await credentials.put_credential(tx, self._cipher, credential, now)
            await oauth2.put_oauth2(
                tx,
                credentials.require_cipher(self._cipher),
                credential.id,
                settings,
                secrets,
                status=status,
                expires_at=expires_at,
                now=now,
            )
            return info

    async def get_oauth2_credential(self, credential_id: str) -> OAuth2Credential:
        async with self._db.read() as tx:
            found = await oauth2.get_oauth2(
                tx, credentials.require_cipher(self._cipher), credential_id
            )
        if found is None:
            raise NotFoundError(
                f"credential {credential_id} is not an OAuth2 credential", field="id"
            )
        return found

    async def get_oauth2_state(self, credential_id: str) -> OAuth2State:
        async with self._db.read() as tx:
            return await oauth2.get_oauth2_state(tx, credential_id)

    async def list_oauth2_states(self, project_id: str) -> list[OAuth2State]:
        async with self._db.read() as tx:
            return await oauth2.list_oauth2_states(tx, project_id)

    async def take_oauth2_lease(
        self, credential_id: str, holder: str, until: datetime
    ) -> OAuth2Credential | None:
        cipher = credentials.require_cipher(self._cipher)
        async with self._db.write() as tx:
            return await oauth2.take_lease(
                tx, cipher, credential_id, holder, until, self._clock.now()
            )

    async def save_oauth2_tokens(
        self,
        credential_id: str,
        secrets: OAuth2Secrets,
        expires_at: datetime | None,
        refreshed_at: datetime,
    ) -> None:
        cipher = credentials.require_cipher(self._cipher)
        async with self._db.write() as tx:
            await oauth2.save_tokens(tx, cipher, credential_id, secrets, expires_at, refreshed_at)

    async def set_oauth2_status(
        self, credential_id: str, status: OAuth2Status, problem: str
    ) -> None:
        async with self._db.write() as tx:
            await oauth2.set_status(tx, credential_id, status, problem)

    async def release_oauth2_lease(self, credential_id: str, holder: str) -> None:
        async with self._db.write() as tx:
            await oauth2.release_lease(tx, credential_id, holder)

    async def put_oauth2_authorization(
        self, digest: str, authorization: OAuth2Authorization
    ) -> None:
        async with self._db.write() as tx:
            await oauth2.put_oauth2_authorization(tx, digest, authorization, self._clock.now())

    async def take_oauth2_authorization(self, digest: str) -> OAuth2Authorization | None:
        async with self._db.write() as tx:
            return await oauth2.take_oauth2_authorization(tx, digest, self._clock.now())

    # -- the audit trail (audit.py) ----------------------------------------------------------

    async def append_audit(self, record: NewAuditRecord) -> int:
        async with self._db.write() as tx:
            return await audit.append(tx, record, self._clock.now())

    async def list_audit(
        self, where: AuditFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[AuditRecord]:
        async with self._db.read() as tx:
            return await audit.list_records(tx, where or AuditFilter(), cursor, limit)

    async def sweep_audit(
        self, project_id: str | None, before: datetime, *, limit: int = 1000
    ) -> int:
        async with self._db.write() as tx:
            return await audit.sweep_batch(tx, project_id, before, limit)

    # -- reading runs back -------------------------------------------------------------------

    async def peek_run(self, run_id: str) -> Run:
        async with self._db.read() as tx:
            return await reads.peek_run(tx, run_id)

    async def peek_run_and_secrets(
        self, run_id: str, trigger_ids: Sequence[str]
    ) -> tuple[Run, list[WebhookSecret]]:
        async with self._db.read() as tx:
            run = await reads.peek_run(tx, run_id)
            secrets = [
                secret
                for trigger_id in trigger_ids
                for secret in await webhook_auth.trigger_secrets(tx, self._cipher, trigger_id)
            ]
        return run, secrets

    async def get_run(self, run_id: str) -> RunDetail:
        async with self._db.read() as tx:
            return await reads.get_run(tx, run_id)

    async def list_runs(
        self, where: RunFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Run]:
        async with self._db.read() as tx:
            return await reads.list_runs(tx, where or RunFilter(), cursor, limit)

    async def get_logs(
        self, run_id: str, *, cursor: str | None = None, limit: int = 500
    ) -> Page[LogEntry]:
        async with self._db.read() as tx:
            return await reads.get_logs(tx, run_id, cursor, limit)

    async def get_work_order(self, work_order_id: str) -> WorkOrder:
        async with self._db.read() as tx:
            return await reads.get_work_order(tx, work_order_id)

    async def get_plan(self, run_id: str) -> dict[str, Any]:
        async with self._db.read() as tx:
            return await reads.get_plan(tx, run_id)

    async def get_plan_and_input(self, run_id: str) -> tuple[dict[str, Any], Dataclip | None]:
        async with self._db.read() as tx:
            plan = await reads.get_plan(tx, run_id)
            dataclip_id = plan.get("dataclip_id")
            if not isinstance(dataclip_id, str):
                return plan, None
            try:
                return plan, await dataclips.get_dataclip(tx, dataclip_id)
            except NotFoundError:
                return plan, None


if TYPE_CHECKING:

    def _implements_the_protocol(store: SQLStore) -> Store:
        return store  # mypy checks here that SQLStore has every method of Store
