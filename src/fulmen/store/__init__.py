"""The coordinator's persistence and run queue: the only package that contains SQL.

Open one with ``open_store(url)``:

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (as SQLAlchemy writes
  them): one file in WAL mode, for a single coordinator process; the caller picks the data
  directory.
* ``postgresql://user@host:5432/db`` (or ``postgres://``): for any number of coordinators.

Either way the schema is brought up to date on open. Credentials need ``credential_key``
(32 bytes, from the operator; the store reads no environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fulmen.clock import SYSTEM_CLOCK, Clock
from fulmen.errors import ConfigError
from fulmen.store.base import Store
from fulmen.store.catalog import check_workflow
from fulmen.store.cipher import CredentialCipher
from fulmen.store.dashboard_sessions import DashboardSession, SessionLimits
from fulmen.store.deployments import blame
from fulmen.store.idempotency import Answer, Answered, IdempotencyKey
from fulmen.store.models.alerts import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertDigest,
    AlertKind,
    AlertRule,
    ChannelHealth,
    ChannelType,
    ClaimedDelivery,
    DeliveryState,
    DigestFrequency,
    NewAlertChannel,
)
from fulmen.store.models.api_tokens import ApiToken
from fulmen.store.models.audit import Actor, AuditFilter, AuditRecord, NewAuditRecord, Target
from fulmen.store.models.catalog import (
    CronCursor,
    Project,
    RetentionPolicy,
    RetryPolicy,
    Snapshot,
    StoredWorkflow,
    TriggerInfo,
    TriggerType,
    WebhookReply,
    Workflow,
    WorkflowTrigger,
)
from fulmen.store.models.collections import (
    CollectionInfo,
    CollectionItem,
    CollectionLimits,
    ItemFilter,
)
from fulmen.store.models.common import Page
from fulmen.store.models.credentials import CredentialInfo, NewCredential
from fulmen.store.models.dataclips import Dataclip, DataclipType, NewDataclip
from fulmen.store.models.deployments import Change, Deployed, Deployment, WorkflowSave
from fulmen.store.models.invitations import Invitation, NewInvitation
from fulmen.store.models.keychains import KeychainChoice, KeychainInfo, NewKeychain
from fulmen.store.models.oauth2 import (
    Grant,
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
    Priority,
    Queue,
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
    RunStart,
    Step,
    StepCompletion,
    StepStart,
)
from fulmen.store.models.schedules import CronTick, CronTrigger
from fulmen.store.models.sign_in import InstanceSettings, SecondFactor, SsoRequest
from fulmen.store.models.users import Member, NewUser, Role, User
from fulmen.store.models.webhook_auth import (
    NewWebhookAuthMethod,
    WebhookAuthMethod,
    WebhookAuthType,
    WebhookSecret,
)
from fulmen.store.ownership import ThingKind
from fulmen.store.sign_in_failures import SignInAttempt
from fulmen.store.sources import check_packages, check_sources
from fulmen.store.sqlstore import SQLStore

__all__ = [
    "DEFAULT_QUEUES",
    "Actor",
    "Alert",
    "AlertChannel",
    "AlertDelivery",
    "AlertDigest",
    "AlertKind",
    "AlertRule",
    "Answer",
    "Answered",
    "ApiToken",
    "AuditFilter",
    "AuditRecord",
    "Change",
    "ChannelHealth",
    "ChannelType",
    "ClaimedDelivery",
    "ClaimedRun",
    "CollectionInfo",
    "CollectionItem",
    "CollectionLimits",
    "CredentialInfo",
    "CronCursor",
    "CronTick",
    "CronTrigger",
    "DashboardSession",
    "Dataclip",
    "DataclipType",
    "DeliveryState",
    "Deployed",
    "Deployment",
    "DigestFrequency",
    "EnqueueRequest",
    "Enqueued",
    "Grant",
    "IdempotencyKey",
    "InstanceSettings",
    "Invitation",
    "ItemFilter",
    "KeychainChoice",
    "KeychainInfo",
    "LogEntry",
    "LogLine",
    "LostRun",
    "Member",
    "NewAlertChannel",
    "NewAuditRecord",
    "NewCredential",
    "NewDataclip",
    "NewInvitation",
    "NewKeychain",
    "NewUser",
    "NewWebhookAuthMethod",
    "OAuth2Authorization",
    "OAuth2Credential",
    "OAuth2Secrets",
    "OAuth2Settings",
    "OAuth2State",
    "OAuth2Status",
    "Page",
    "Priority",
    "Project",
    "Queue",
    "RerunRequest",
    "RetentionBatch",
    "RetentionPolicy",
    "RetryPolicy",
    "Role",
    "Run",
    "RunCompletion",
    "RunDetail",
    "RunFilter",
    "RunReport",
    "RunStart",
    "SQLStore",
    "SecondFactor",
    "SessionLimits",
    "SignInAttempt",
    "Snapshot",
    "SsoRequest",
    "Step",
    "StepCompletion",
    "StepStart",
    "Store",
    "StoredWorkflow",
    "Target",
    "ThingKind",
    "TriggerInfo",
    "TriggerType",
    "UnjoinedClaim",
    "User",
    "WebhookAuthMethod",
    "WebhookAuthType",
    "WebhookReply",
    "WebhookSecret",
    "WorkOrder",
    "Workflow",
    "WorkflowSave",
    "WorkflowTrigger",
    "blame",
    "check_packages",
    "check_sources",
    "check_workflow",
    "open_store",
    "sqlite_path",
]

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


async def open_store(
    url: str,
    *,
    credential_key: bytes | None = None,
    clock: Clock = SYSTEM_CLOCK,
    max_connections: int = 10,
) -> SQLStore:
    """Open the store at ``url`` and migrate its schema.

    Args:
        url: ``sqlite:///path`` or ``postgresql://…``.
        credential_key: 32 bytes for sealing credentials; ``None``: credentials refused.
        clock: where "now" comes from.
        max_connections: the PostgreSQL pool's size (ignored for SQLite).

    Raises:
        ConfigError: an unknown URL scheme, or a credential key of the wrong size.
        StoreError: the database cannot be opened or migrated.
    """
    cipher = CredentialCipher(credential_key) if credential_key is not None else None
    if url.startswith(_SQLITE):
        from fulmen.store.sqlite import SQLiteDatabase

        sqlite = await SQLiteDatabase.open(sqlite_path(url))
        return SQLStore(sqlite, cipher=cipher, clock=clock)
    if url.startswith(_POSTGRES):
        from fulmen.store.postgres import PostgresDatabase

        postgres = await PostgresDatabase.open(url, max_connections=max_connections)
        return SQLStore(postgres, cipher=cipher, clock=clock)
    scheme = url.split(":", 1)[0] if ":" in url else url[:20]
    raise ConfigError(
        f"the database URL (FULMEN_DATABASE_URL, --database-url) must be sqlite:///<file> or "
        f"postgresql://<user>@<host>/<database>, not {scheme}://…: Fulmen keeps its data in "
        "SQLite or PostgreSQL",
        code="store_url_invalid",
    )


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL: what follows the three slashes, as written."""
    path = url.removeprefix(_SQLITE).split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigError(
            "a SQLite store needs a file (sqlite:///path/to/fulmen.db); an in-memory "
            "database would be lost between its two connections",
            code="store_url_invalid",
        )
    return Path(path)
