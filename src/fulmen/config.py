"""Settings from the environment: the one module that reads ``os.environ``, once.

Each service's composition root calls ``from_env()`` once at start-up and passes the frozen
settings down (STYLE.md P13); nothing else in Fulmen looks at the environment. Values are
checked for shape here (integers, booleans, exclusive options) and each bad one is a
:class:`~fulmen.errors.ConfigError` naming its variable. Secrets and keys are carried as
:class:`Secret` values, which remember which variable they came from and never show their
value; turning them into keys is ``fulmen.keys``' job, with that variable name for messages.

Names and defaults are ws-worker's and Lightning's (spec §10.5), so an existing deployment's
environment works unchanged. Historical names are accepted where Lightning's tooling used them
(§3.4); the current name wins when both are set, and ``Secret.variable`` tells which one was
read so that a caller may warn about the old one.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Self
from urllib.parse import urlsplit

from fulmen.errors import ConfigError
from fulmen.outbound import Policy
from fulmen.plan import LANGUAGES

__all__ = [
    "DEFAULT_DATA_DIR",
    "ISOLATION_CHOICES",
    "NETWORK_CHOICES",
    "PRIVATE_KEY_VARIABLES",
    "PUBLIC_KEY_VARIABLES",
    "SECRET_VARIABLES",
    "ClientSettings",
    "CoordinatorSettings",
    "OidcSettings",
    "RunnerClientSettings",
    "RunnerSettings",
    "SandboxSettings",
    "Secret",
    "WorkerSettings",
    "choice",
    "data_dir",
    "parse_listen",
    "read_environ",
    "require",
]

SECRET_VARIABLES: Final = ("WORKER_SECRET",)
PRIVATE_KEY_VARIABLES: Final = (
    "WORKER_RUNS_PRIVATE_KEY",
    "WORKER_ATTEMPTS_PRIVATE_KEY",  # renamed in Lightning v2.0.0-rc8
    "ATTEMPTS_PRIVATE_KEY",  # WORKERS.md and the first gen_worker_keys
)
PUBLIC_KEY_VARIABLES: Final = ("WORKER_LIGHTNING_PUBLIC_KEY", "LIGHTNING_PUBLIC_KEY")
#: ``--isolation``: the least a sandbox must give (``fulmen.sandbox.isolation.LEVELS``), or
#: ``best``: whatever the host gives.
ISOLATION_CHOICES: Final = ("L3", "L2", "L1", "L0", "best")
#: ``--network``: what runs reach (``fulmen.sandbox.network.NETWORK_POLICIES``).
NETWORK_CHOICES: Final = ("outside", "none", "host")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def read_environ() -> dict[str, str]:
    """A snapshot of the process environment: the only read of ``os.environ`` in Fulmen."""
    return dict(os.environ)


@dataclass(frozen=True)
class Secret:
    """A secret setting and the variable it was read from; its value is never shown."""

    variable: str
    value: str = field(repr=False)

    def __str__(self) -> str:
        return f"<{self.variable}>"


def require(secret: Secret | None, names: tuple[str, ...]) -> Secret:
    """``secret``, or a ConfigError (``missing``) naming the variable that should hold it."""
    if secret is None:
        raise ConfigError(f"{names[0]} is not set", code="missing")
    return secret


@dataclass(frozen=True)
class SandboxSettings:
    """How far runs are isolated (issue 12; README, "Security model"): shared by ``fulmen
    run``, ``fulmen worker`` and ``fulmen runner``, Fulmen's own variables."""

    #: Refuse to start when the host gives less than this level; ``best``: take what it gives.
    isolation: str = "best"
    #: ``outside`` (the outside world, not the host's loopback), ``none`` or ``host``.
    network: str = "outside"
    #: Loopback ``host:port`` pairs runs may reach all the same (checked by the sandbox).
    allow_net: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Raises ConfigError naming the first bad variable."""
        env = _Env(read_environ() if environ is None else environ)
        return cls(
            isolation=env.choice("FULMEN_ISOLATION", ISOLATION_CHOICES, cls.isolation),
            network=env.choice("FULMEN_NETWORK", NETWORK_CHOICES, cls.network),
            allow_net=env.names("FULMEN_ALLOW_NET", ()),
        )


@dataclass(frozen=True)
class WorkerSettings:
    """A worker's settings (ws-worker's variables and defaults, §10.5)."""

    lightning_url: str = "ws://localhost:4000/worker"
    secret: Secret | None = None
    public_key: Secret | None = None
    capacity: int = 5
    workloops: str | None = None
    backoff_min: float = 1.0
    backoff_max: float = 10.0
    max_run_duration: float = 300.0
    max_run_memory_mb: int = 500
    max_payload_mb: float = 10.0
    max_log_payload_mb: float = 1.0
    message_timeout: float = 30.0
    claim_timeout: float = 3600.0
    batch_logs: bool = False
    batch_interval_ms: int = 10
    batch_limit: int = 50
    state_props_to_remove: tuple[str, ...] = ("configuration", "response")
    collections_url: str | None = None
    collections_version: str | None = None
    worker_name: str | None = None
    port: int = 2222
    #: ws-worker logs at ``debug`` by default; Fulmen at ``info`` (issue 21: a newcomer's
    #: terminal filled with asyncio's and every frame's lines), ``WORKER_LOG_LEVEL=debug``.
    log_level: str = "info"
    #: Fulmen's own: the address of the health/metrics server. Loopback unless told otherwise
    #: (``WORKER_HEALTH_HOST``, ``--health-host``): ws-worker's Koa app listens on every
    #: interface, which shows the worker's metrics to anyone who can reach the host; an
    #: orchestrator whose probes come from outside sets ``0.0.0.0``.
    health_host: str = "127.0.0.1"
    #: Fulmen's own: how long SIGTERM lets active runs finish before ending them; ``None``
    #: means the longest a run may take (``max_run_duration``). ws-worker waits without limit.
    drain_timeout: float | None = None
    #: Fulmen's own (issue 14): after this many run tokens in a row that do not verify, the
    #: worker stops claiming and reports itself unhealthy; ws-worker stops at the first one.
    refusal_limit: int = 3
    #: …and then claims one run every so many seconds to see whether tokens verify again
    #: (0: never; a restart with the right key is the other way back).
    refusal_retry: float = 600.0
    sandbox: SandboxSettings = SandboxSettings()
    #: Where the npm packages of JavaScript runs are installed (ws-worker's variable; Fulmen's
    #: default is the user's cache rather than ws-worker's /tmp/openfn/worker/repo, a folder
    #: anyone on the host could fill first). Runs read it; nothing in it is secret.
    repo_dir: str = field(default_factory=lambda: default_repo_dir({}))
    #: Fulmen's own: the job languages this worker runs (``WORKER_LANGUAGES=python`` keeps a
    #: worker to Python on a host with Node.js); ``None``: every one the host can run.
    languages: tuple[str, ...] | None = None
    #: Fulmen's own (issue 16): the Python package index Python jobs' packages come from
    #: (``FULMEN_PYTHON_INDEX``, as the coordinator's); None: uv's own settings, else PyPI.
    python_index: str | None = None
    #: …and how much their environments (under ``repo_dir``) may take: at most so many MB,
    #: none unused for longer than so many days (least recently used go first).
    python_cache_mb: int = 10_240
    python_cache_days: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Raises ConfigError naming the first bad variable."""
        environ = read_environ() if environ is None else environ
        env = _Env(environ)
        if env.get("WORKER_CAPACITY") and env.get("WORKER_WORKLOOPS"):
            raise ConfigError(
                "WORKER_CAPACITY and WORKER_WORKLOOPS are exclusive; set one", code="conflict"
            )
        backoff_min, backoff_max = env.backoff("WORKER_BACKOFF", (1.0, 10.0))
        return cls(
            lightning_url=env.get("WORKER_LIGHTNING_SERVICE_URL") or cls.lightning_url,
            secret=env.secret(SECRET_VARIABLES),
            public_key=env.secret(PUBLIC_KEY_VARIABLES),
            capacity=env.integer("WORKER_CAPACITY", 5, minimum=1),
            workloops=env.get("WORKER_WORKLOOPS"),
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            max_run_duration=env.number("WORKER_MAX_RUN_DURATION_SECONDS", 300.0),
            max_run_memory_mb=env.integer("WORKER_MAX_RUN_MEMORY_MB", 500, minimum=1),
            max_payload_mb=env.number("WORKER_MAX_PAYLOAD_MB", 10.0),
            max_log_payload_mb=env.number("WORKER_MAX_LOG_PAYLOAD_MB", 1.0),
            # the deprecated name wins when set, as in ws-worker (§1.5)
            message_timeout=env.number(
                "WORKER_SOCKET_TIMEOUT_SECONDS",
                env.number("WORKER_MESSAGE_TIMEOUT_SECONDS", 30.0),
            ),
            claim_timeout=env.number("WORKER_CLAIM_TIMEOUT_SECONDS", 3600.0),
            batch_logs=env.boolean("WORKER_BATCH_LOGS", False),
            batch_interval_ms=env.integer("WORKER_BATCH_LOGS_INTERVAL", 10, minimum=0),
            batch_limit=env.integer("WORKER_BATCH_LOGS_LIMIT", 50, minimum=1),
            state_props_to_remove=env.names(
                "WORKER_STATE_PROPS_TO_REMOVE", ("configuration", "response")
            ),
            collections_url=env.http_url("WORKER_COLLECTIONS_URL"),
            collections_version=env.get("WORKER_COLLECTIONS_VERSION"),
            worker_name=env.get("WORKER_NAME") or env.get("DEPLOYED_POD_NAME"),
            port=env.integer("WORKER_PORT", 2222, minimum=0),
            log_level=env.get("WORKER_LOG_LEVEL") or cls.log_level,
            health_host=env.get("WORKER_HEALTH_HOST") or cls.health_host,
            drain_timeout=env.number("WORKER_DRAIN_TIMEOUT_SECONDS", 0.0) or None,
            refusal_limit=env.integer("WORKER_REFUSAL_LIMIT", 3, minimum=1),
            refusal_retry=env.number("WORKER_REFUSAL_RETRY_SECONDS", 600.0, zero=True),
            sandbox=SandboxSettings.from_env(environ),
            repo_dir=env.get("WORKER_REPO_DIR") or default_repo_dir(environ),
            languages=env.languages("WORKER_LANGUAGES"),
            python_index=env.http_url("FULMEN_PYTHON_INDEX"),
            python_cache_mb=env.integer("WORKER_PYTHON_CACHE_MB", 10_240, minimum=1),
            python_cache_days=env.number("WORKER_PYTHON_CACHE_DAYS", 30.0),
        )


def default_repo_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/fulmen/repo``, else ``~/.cache/fulmen/repo``."""
    return default_cache_dir("repo", environ)


def default_cache_dir(name: str, environ: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/fulmen/<name>``, else ``~/.cache/fulmen/<name>``."""
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "fulmen", name)


#: The data directory every command uses unless ``FULMEN_DATA_DIR`` names another: the SQLite
#: store, the keys, the API tokens, the runner's state (issue 21: there were three).
DEFAULT_DATA_DIR: Final = ".fulmen"


def data_dir(environ: Mapping[str, str]) -> str:
    """The data directory: ``FULMEN_DATA_DIR``, else ``.fulmen`` in the working directory,
    found the same way by every command."""
    return environ.get("FULMEN_DATA_DIR") or DEFAULT_DATA_DIR


@dataclass(frozen=True)
class OidcSettings:
    """Single sign-on with an OpenID Connect provider (issue 18): ``FULMEN_OIDC_ISSUER``,
    ``FULMEN_OIDC_CLIENT_ID``, and the client secret from ``FULMEN_OIDC_CLIENT_SECRET`` or the
    file ``FULMEN_OIDC_CLIENT_SECRET_FILE`` (read when the coordinator starts);
    ``FULMEN_OIDC_NAME`` names the provider on the sign-in button."""

    #: The provider's issuer URL, exactly as its ID tokens' ``iss`` says it; its discovery
    #: document is at ``<issuer>/.well-known/openid-configuration``.
    issuer: str
    client_id: str
    client_secret: Secret | None = None
    client_secret_file: str | None = None
    name: str = "SSO"


#: Hosts whose issuer may be plain ``http://``: the provider runs on this machine (tests, a
#: development setup); anywhere else the ID token and the client secret would cross the
#: network in the clear.
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class CoordinatorSettings:
    """The coordinator's settings; protocol knobs keep Lightning's names (§10.5)."""

    secret: Secret | None = None
    private_key: Secret | None = None
    run_grace_period: float = 10.0
    max_run_duration: float = 300.0
    listen_address: str = "127.0.0.1"
    port: int = 4000
    #: ``sqlite:///…`` or ``postgresql://…``; ``None``: ``<data_dir>/fulmen.db``.
    database_url: str | None = None
    #: Where the SQLite database and the generated credential key live: the one data
    #: directory every command finds the same way (:func:`data_dir`).
    data_dir: str = ".fulmen"
    #: The credential encryption key (base64 of 32 bytes), from a variable or a file.
    credential_key: Secret | None = None
    credential_key_file: str | None = None
    #: Spec §4.6: a claimed run whose channel is not joined by then goes back to the queue.
    run_join_timeout: float = 30.0
    #: How often the reaper rolls back unjoined claims and marks lost runs (§7.5).
    reaper_interval: float = 10.0
    #: How often the queue is polled for work, beside PostgreSQL's NOTIFY wake-ups.
    work_poll_interval: float = 2.0
    #: A cron tick later than this (coordinator down, say) is skipped, not run late.
    cron_misfire_grace: float = 60.0
    #: Webhook bodies larger than this get 413 (Lightning's ``MAX_DATACLIP_SIZE_MB``).
    max_dataclip_size_mb: float = 10.0
    #: Issue 19: the largest value of a collection's item, in bytes (Lightning's is 1 MB).
    collection_max_value_bytes: int = 1024 * 1024
    #: Issue 19: the most items one collection holds.
    collection_max_items: int = 1_000_000
    #: How long a webhook that replies after completion waits for the run (§10.1).
    webhook_response_timeout: float = 30.0
    #: Seconds without a frame before a worker socket is closed (§1.1).
    socket_idle_timeout: float = 60.0
    #: How often the retention sweep applies the projects' retention policies (issue 8).
    retention_interval: float = 86_400.0
    #: At most this many rows of each kind per retention batch (one short transaction).
    retention_batch: int = 1000
    #: The sweep's pause between two batches, in seconds: the queue's turn.
    retention_pause: float = 0.05
    #: A dashboard session ends after this many seconds unused (12 hours)…
    dashboard_session_idle: float = 43_200.0
    #: …and this many seconds after signing in, however used (7 days).
    dashboard_session_max: float = 604_800.0
    #: Issue 18: a password sign-in is refused, without the password being checked, after
    #: this many failures for one e-mail address…
    sign_in_account_limit: int = 5
    #: …or this many from one network address (many accounts tried from one place)…
    sign_in_address_limit: int = 20
    #: …within this many seconds; older failures are forgotten (15 minutes).
    sign_in_window: float = 900.0
    #: Issue 18: how long an invitation link can be used, in seconds (7 days).
    invitation_ttl: float = 604_800.0
    #: How long an ``Idempotency-Key`` is remembered after its first request (a day): a
    #: retry within it gets the first answer (issue 14).
    idempotency_key_ttl: float = 86_400.0
    #: Issue 15: the npm registry asked which versions a JavaScript job's adaptor has when a
    #: workflow is saved (a mirror or a private registry, say), and how long in seconds one
    #: question may take before the save is refused.
    npm_registry: str = "https://registry.npmjs.org/"
    npm_registry_timeout: float = 10.0
    #: Issue 16: the Python package index (PEP 503's simple API: a mirror, a private index)
    #: asked which versions a Python job's packages have when a workflow is saved; ``None``:
    #: uv's own settings (``UV_DEFAULT_INDEX``, ``uv.toml``), else PyPI. Workers should use the
    #: same one (``uv`` there reads the same settings), or they may not find what was saved.
    python_index: str | None = None
    #: Issue 17: where the dashboard's code editor is built (npm and esbuild, when the
    #: coordinator starts), one folder per version of its sources; nothing in it is secret.
    dashboard_cache_dir: str = field(default_factory=lambda: default_cache_dir("dashboard", {}))
    #: …and whether this coordinator builds it when missing (``false``: a host that must not
    #: run npm; its editor pages use a plain text box unless the folder holds a build).
    dashboard_editor_build: bool = True
    #: Issue 17: the dashboard's pages re-read their live parts when the coordinator's event
    #: stream says something changed, and also every this many seconds, in case a notice was
    #: missed (a stream reconnecting, a coordinator's NOTIFY lost).
    dashboard_live_poll: float = 20.0
    #: Issue 17: the runner whose smart workers the dashboard shows and manages (``fulmen up``
    #: sets both), over its HTTP API with the bearer token read from ``runner_token_file``;
    #: ``None``: the dashboard's smart workers page says how to set it.
    runner_url: str | None = None
    runner_token_file: str | None = None
    #: Issue 18: the SMTP server alert e-mails go through (``None``: none is configured, and
    #: every e-mail delivery fails saying so, shown on the channel until one is).
    smtp_host: str | None = None
    smtp_port: int = 587
    #: Signing in to it: both or neither.
    smtp_username: str | None = None
    smtp_password: Secret | None = None
    #: STARTTLS after connecting (submission, port 587), required when on; ``smtp_tls``: TLS
    #: from the first byte (port 465). At most one of them; neither: plain text (a relay on
    #: the same host or network).
    smtp_starttls: bool = True
    smtp_tls: bool = False
    #: The From of alert e-mails.
    smtp_from: str = "Fulmen <fulmen@localhost>"
    #: Seconds one SMTP conversation or webhook POST may take before it counts as failed.
    alert_send_timeout: float = 30.0
    #: How often each coordinator's alert dispatcher folds endings into alerts, makes due
    #: digests and sends due deliveries; an alert goes out within about this long of the run's
    #: end (when its workflow's period allows one).
    alert_poll_interval: float = 5.0
    #: A delivery that failed is tried again after min, 2·min, 4·min … seconds (capped at max),
    #: ``alert_max_attempts`` tries in all, then given up (shown failed on its channel).
    alert_backoff_min: float = 30.0
    alert_backoff_max: float = 3600.0
    alert_max_attempts: int = 10
    #: The dashboard's address as people reach it, for links in alerts (``None``: alerts give
    #: the paths under ``/ui`` only).
    public_url: str | None = None

    #: Issue 18: single sign-on with an OpenID Connect provider; ``None``: not offered.
    oidc: OidcSettings | None = None

    #: Issue 18: the audit trail keeps a project's records as long as its history
    #: (``history_retention_period``), but never fewer than this many days…
    audit_min_retention_days: int = 90
    #: …and the records of the whole instance (sign-ins, users, instance settings) and of
    #: deleted projects this many days (never fewer than the minimum above).
    audit_retention_days: int = 365
    #: Issue 18: the addresses (IPs or networks, ``10.0.0.0/8``) of reverse proxies whose
    #: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` name the client (its address in the
    #: audit trail and the sessions, HTTPS for the cookie's ``Secure``). By default a proxy on
    #: the same host, as uvicorn has always trusted; ``none``: a request's address is its
    #: socket's peer, whatever the headers say.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    #: The internal destinations (host names, IP addresses, networks, each with an optional
    #: ``:port``) that requests to URLs a project admin chose (alert webhooks, OAuth2 token
    #: endpoints) may reach; every other loopback, private, link-local or reserved address
    #: is refused (fulmen.outbound).
    outbound_allow: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Raises ConfigError naming the first bad variable."""
        environ = read_environ() if environ is None else environ
        env = _Env(environ)
        smtp = _smtp(env)
        alert_backoff = env.backoff("FULMEN_ALERT_BACKOFF", (30.0, 3600.0))
        return cls(
            **smtp,
            alert_send_timeout=env.number("FULMEN_ALERT_SEND_TIMEOUT_SECONDS", 30.0),
            alert_poll_interval=env.number("FULMEN_ALERT_POLL_SECONDS", 5.0),
            alert_backoff_min=alert_backoff[0],
            alert_backoff_max=alert_backoff[1],
            alert_max_attempts=env.integer("FULMEN_ALERT_MAX_ATTEMPTS", 10, minimum=1),
            public_url=env.http_url("FULMEN_PUBLIC_URL"),
            secret=env.secret(SECRET_VARIABLES),
            private_key=env.secret(PRIVATE_KEY_VARIABLES),
            run_grace_period=env.number("RUN_GRACE_PERIOD_SECONDS", 10.0),
            max_run_duration=env.number("WORKER_MAX_RUN_DURATION_SECONDS", 300.0),
            listen_address=env.get("LISTEN_ADDRESS") or "127.0.0.1",
            port=env.integer("FULMEN_PORT", 4000, minimum=0),
            database_url=env.get("FULMEN_DATABASE_URL"),
            data_dir=data_dir(environ),
            credential_key=env.secret(("FULMEN_CREDENTIAL_KEY",)),
            credential_key_file=env.get("FULMEN_CREDENTIAL_KEY_FILE"),
            run_join_timeout=env.number("FULMEN_RUN_JOIN_TIMEOUT_SECONDS", 30.0),
            reaper_interval=env.number("FULMEN_REAPER_INTERVAL_SECONDS", 10.0),
            work_poll_interval=env.number("FULMEN_WORK_POLL_SECONDS", 2.0),
            cron_misfire_grace=env.number("FULMEN_CRON_MISFIRE_GRACE_SECONDS", 60.0),
            max_dataclip_size_mb=env.number("MAX_DATACLIP_SIZE_MB", 10.0),
            collection_max_value_bytes=env.integer(
                "FULMEN_COLLECTION_MAX_VALUE_BYTES", 1024 * 1024, minimum=1
            ),
            collection_max_items=env.integer("FULMEN_COLLECTION_MAX_ITEMS", 1_000_000, minimum=1),
            webhook_response_timeout=env.number("WEBHOOK_RESPONSE_TIMEOUT_MS", 30_000.0) / 1000,
            socket_idle_timeout=env.number("FULMEN_SOCKET_IDLE_TIMEOUT_SECONDS", 60.0),
            retention_interval=env.number("FULMEN_RETENTION_INTERVAL_SECONDS", 86_400.0),
            retention_batch=env.integer("FULMEN_RETENTION_BATCH", 1000, minimum=1),
            retention_pause=env.number("FULMEN_RETENTION_PAUSE_SECONDS", 0.05),
            dashboard_session_idle=env.number("FULMEN_DASHBOARD_SESSION_IDLE_SECONDS", 43_200.0),
            dashboard_session_max=env.number("FULMEN_DASHBOARD_SESSION_MAX_SECONDS", 604_800.0),
            sign_in_account_limit=env.integer("FULMEN_SIGN_IN_ACCOUNT_LIMIT", 5, minimum=1),
            sign_in_address_limit=env.integer("FULMEN_SIGN_IN_ADDRESS_LIMIT", 20, minimum=1),
            sign_in_window=env.number("FULMEN_SIGN_IN_WINDOW_SECONDS", 900.0),
            invitation_ttl=env.number("FULMEN_INVITATION_TTL_SECONDS", 604_800.0),
            idempotency_key_ttl=env.number("FULMEN_IDEMPOTENCY_KEY_TTL_SECONDS", 86_400.0),
            npm_registry=env.http_url("FULMEN_NPM_REGISTRY") or cls.npm_registry,
            npm_registry_timeout=env.number("FULMEN_NPM_REGISTRY_TIMEOUT_SECONDS", 10.0),
            python_index=env.http_url("FULMEN_PYTHON_INDEX"),
            dashboard_cache_dir=env.get("FULMEN_DASHBOARD_CACHE_DIR")
            or default_cache_dir("dashboard", environ),
            dashboard_editor_build=env.boolean("FULMEN_DASHBOARD_EDITOR_BUILD", True),
            dashboard_live_poll=env.number("FULMEN_DASHBOARD_LIVE_POLL_SECONDS", 20.0),
            runner_url=env.http_url("FULMEN_RUNNER_URL"),
            runner_token_file=env.get("FULMEN_RUNNER_TOKEN_FILE"),
            oidc=_oidc(env),
            audit_min_retention_days=env.integer("FULMEN_AUDIT_MIN_RETENTION_DAYS", 90, minimum=1),
            audit_retention_days=env.integer("FULMEN_AUDIT_RETENTION_DAYS", 365, minimum=1),
            trusted_proxies=env.networks("FULMEN_TRUSTED_PROXIES", cls.trusted_proxies),
            outbound_allow=env.destinations("FULMEN_OUTBOUND_ALLOW"),
        )


def _smtp(env: _Env) -> dict[str, Any]:
    """The SMTP settings of alert e-mails (issue 18), checked together."""
    starttls = env.boolean("FULMEN_SMTP_STARTTLS", True)
    tls = env.boolean("FULMEN_SMTP_TLS", False)
    if tls and env.get("FULMEN_SMTP_STARTTLS") is not None and starttls:
        raise ConfigError(
            "FULMEN_SMTP_TLS and FULMEN_SMTP_STARTTLS are exclusive; set one", code="conflict"
        )
    username = env.get("FULMEN_SMTP_USERNAME")
    password = env.secret(("FULMEN_SMTP_PASSWORD",))
    if (username is None) != (password is None):
        raise ConfigError(
            "FULMEN_SMTP_USERNAME and FULMEN_SMTP_PASSWORD go together; set both or neither",
            code="conflict",
        )
    sender = env.get("FULMEN_SMTP_FROM") or CoordinatorSettings.smtp_from
    if "@" not in sender:
        raise _bad("FULMEN_SMTP_FROM", sender, "an e-mail address, like Fulmen <ops@example.org>")
    return {
        "smtp_host": env.get("FULMEN_SMTP_HOST"),
        "smtp_port": env.integer("FULMEN_SMTP_PORT", 465 if tls else 587, minimum=1),
        "smtp_username": username,
        "smtp_password": password,
        "smtp_starttls": starttls and not tls,
        "smtp_tls": tls,
        "smtp_from": sender,
    }


def _oidc(env: _Env) -> OidcSettings | None:
    """The single sign-on settings: all of issuer, client id and a secret, or none of them.

    Raises:
        ConfigError: one of them without the others (naming what is missing), a secret given
            both ways, or an issuer that is not an https:// URL (http:// on this machine only).
    """
    names = ("FULMEN_OIDC_ISSUER", "FULMEN_OIDC_CLIENT_ID", "FULMEN_OIDC_CLIENT_SECRET")
    secret = env.secret(("FULMEN_OIDC_CLIENT_SECRET",))
    secret_file = env.get("FULMEN_OIDC_CLIENT_SECRET_FILE")
    issuer, client_id = env.get(names[0]), env.get(names[1])
    if not (issuer or client_id or secret or secret_file or env.get("FULMEN_OIDC_NAME")):
        return None
    missing = [
        name
        for name, value in zip(names, (issuer, client_id, secret or secret_file), strict=True)
        if not value
    ]
    if missing:
        raise ConfigError(
            f"single sign-on needs FULMEN_OIDC_ISSUER, FULMEN_OIDC_CLIENT_ID and "
            f"FULMEN_OIDC_CLIENT_SECRET (or FULMEN_OIDC_CLIENT_SECRET_FILE): "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
            code="missing",
        )
    if secret and secret_file:
        raise ConfigError(
            "set FULMEN_OIDC_CLIENT_SECRET or FULMEN_OIDC_CLIENT_SECRET_FILE, not both",
            code="bad_value",
        )
    assert issuer is not None and client_id is not None
    if not _secure_issuer(issuer):
        raise ConfigError(
            f"FULMEN_OIDC_ISSUER must be the provider's https:// issuer URL (http:// only for "
            f"a provider on this machine), without a query or fragment, not {issuer!r}",
            code="bad_url",
        )
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        client_secret_file=secret_file,
        name=env.get("FULMEN_OIDC_NAME") or OidcSettings.name,
    )


def _secure_issuer(issuer: str) -> bool:
    try:
        parts = urlsplit(issuer)
    except ValueError:  # a malformed IPv6 address
        return False
    loopback = parts.hostname in _LOOPBACK_HOSTS
    secure = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    return bool(parts.hostname) and secure and not parts.query and not parts.fragment


@dataclass(frozen=True)
class ClientSettings:
    """Where ``fulmen deploy`` and ``fulmen pull`` find a coordinator's REST API, and their
    token: ``FULMEN_API_TOKEN``, else the file ``FULMEN_API_TOKEN_FILE``, else the file that
    ``fulmen up`` writes into its data directory (``./.fulmen/api-token``), so that the
    commands work beside a running ``fulmen up`` with no set-up."""

    url: str = "http://127.0.0.1:4000"
    token: Secret | None = None
    token_file: str = ".fulmen/api-token"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = read_environ() if environ is None else environ
        env = _Env(environ)
        return cls(
            url=env.get("FULMEN_URL") or cls.url,
            token=env.secret(("FULMEN_API_TOKEN",)),
            token_file=env.get("FULMEN_API_TOKEN_FILE")
            or os.path.join(data_dir(environ), "api-token"),
        )


@dataclass(frozen=True)
class RunnerClientSettings:
    """Where ``fulmen workers`` finds a runner's API, and its token: ``FULMEN_RUNNER_TOKEN``,
    else the first of ``token_files`` that holds one. That is the file
    ``FULMEN_RUNNER_TOKEN_FILE`` names, alone; by default the data directory's
    ``runner-api-token`` (what ``fulmen up`` writes and gives its runner), then the token of a
    standalone ``fulmen runner`` started with this environment (``FULMEN_RUNNER_API_TOKEN_FILE``,
    else ``<state dir>/api-token``), so that the command works beside either with no set-up.
    ``FULMEN_RUNNER_URL`` and ``FULMEN_RUNNER_TOKEN_FILE`` are the variables ``fulmen up`` gives
    the coordinator for the same runner."""

    url: str = "http://127.0.0.1:8080"
    token: Secret | None = None
    token_files: tuple[str, ...] = (".fulmen/runner-api-token", ".fulmen/runner/api-token")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Raises ConfigError for a ``FULMEN_RUNNER_URL`` that is not an http(s) URL."""
        environ = read_environ() if environ is None else environ
        env = _Env(environ)
        explicit = env.get("FULMEN_RUNNER_TOKEN_FILE")
        state_dir = env.get("FULMEN_RUNNER_STATE_DIR") or os.path.join(data_dir(environ), "runner")
        standalone = env.get("FULMEN_RUNNER_API_TOKEN_FILE") or os.path.join(state_dir, "api-token")
        return cls(
            url=env.http_url("FULMEN_RUNNER_URL") or cls.url,
            token=env.secret(("FULMEN_RUNNER_TOKEN",)),
            token_files=(explicit,)
            if explicit
            else (os.path.join(data_dir(environ), "runner-api-token"), standalone),
        )


@dataclass(frozen=True)
class RunnerSettings:
    """The script runner's settings (spec runner.md §3.3-§3.7). The master key is never a
    setting: only the *path* of the 0600 file that holds it (a variable's value would be
    readable in ``/proc/<pid>/environ`` by any same-uid process).

    The state lives in ``<data dir>/runner`` (the data directory every command shares:
    :func:`data_dir`), where ``fulmen up`` keeps it too. The management API takes a bearer
    token from ``api_token_file``, by default ``<state_dir>/api-token`` (made on first start;
    ``fulmen up`` names its own, the data directory's ``runner-api-token``); ``no_auth``
    (``--no-auth``, no variable) drops it, and only a loopback listener may."""

    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: str = ".fulmen/runner"
    master_key_file: str | None = None
    api_token_file: str | None = None
    no_auth: bool = False
    max_workers: int = 64
    worker_memory_mb: int = 512
    load_timeout: float = 10.0
    tasks_timeout: float = 300.0
    fetch_timeout: float = 30.0
    event_timeout: float = 60.0
    cancel_grace: float = 5.0
    restart_backoff_min: float = 1.0
    restart_backoff_max: float = 300.0
    crash_limit: int = 5
    crash_window: float = 600.0
    sandbox: SandboxSettings = SandboxSettings()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Raises ConfigError naming the first bad variable."""
        environ = read_environ() if environ is None else environ
        env = _Env(environ)
        host, port = parse_listen(env.get("FULMEN_RUNNER_LISTEN") or "127.0.0.1:8080")
        return cls(
            host=host,
            port=port,
            state_dir=env.get("FULMEN_RUNNER_STATE_DIR")
            or os.path.join(data_dir(environ), "runner"),
            master_key_file=env.get("FULMEN_RUNNER_MASTER_KEY_FILE"),
            api_token_file=env.get("FULMEN_RUNNER_API_TOKEN_FILE"),
            max_workers=env.integer("FULMEN_RUNNER_MAX_WORKERS", 64, minimum=1),
            worker_memory_mb=env.integer("FULMEN_RUNNER_WORKER_MEMORY_MB", 512, minimum=16),
            sandbox=SandboxSettings.from_env(environ),
        )


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); ``[::1]:PORT`` for IPv6."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        message = f"listen address {value!r} needs a numeric port"
        raise ConfigError(message, code="bad_value") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"listen port {number} is out of range", code="bad_value")
    return host or "127.0.0.1", number


def choice(value: str, choices: Sequence[str], name: str) -> str:
    """``value`` if it is one of ``choices``; otherwise a ConfigError naming ``name``, the
    variable or flag it came from."""
    if value not in choices:
        allowed = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise ConfigError(f"{name} must be {allowed}, not {value!r}", code="bad_value")
    return value


class _Env:
    """Typed reads of one environment snapshot; empty values count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def secret(self, names: tuple[str, ...]) -> Secret | None:
        for name in names:
            value = self._environ.get(name)
            if value:
                return Secret(name, value)
        return None

    def http_url(self, name: str) -> str | None:
        """An ``http://`` or ``https://`` URL with a host."""
        raw = self.get(name)
        if raw is None:
            return None
        scheme, _, rest = raw.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
            raise ConfigError(f"{name} must be an http:// or https:// URL", code="bad_url")
        return raw

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _bad(name, raw, "a whole number") from None
        if value < minimum:
            raise _bad(name, raw, f"at least {minimum}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        raw = self.get(name)
        return default if raw is None else choice(raw, choices, name)

    def number(self, name: str, default: float, *, zero: bool = False) -> float:
        """A positive number (or 0 too, with ``zero``: where 0 means "never")."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise _bad(name, raw, "a number") from None
        if zero and value == 0:
            return 0.0
        if not value > 0 or value == float("inf"):
            raise _bad(name, raw, "a positive number")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise _bad(name, raw, "true or false")

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._environ.get(name)
        if raw is None:
            return default
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def networks(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A comma-separated list of IP addresses and networks (``10.0.0.0/8``), each
        checked; ``none``: none."""
        if (self.get(name) or "").strip().lower() == "none":
            return ()
        found = self.names(name, default)
        for part in found:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise _bad(name, part, "IP addresses or networks (10.0.0.0/8), by commas") from None
        return found

    def destinations(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of destinations the outbound policy lets through, each
        checked (fulmen.outbound.Policy.of)."""
        found = self.names(name, ())
        try:
            Policy.of(found)
        except ValueError as error:
            raise ConfigError(f"{name}: {error}", code="bad_value") from None
        return found

    def languages(self, name: str) -> tuple[str, ...] | None:
        """A comma-separated list of job languages, each one of ``LANGUAGES``; unset: None."""
        raw = self.names(name, ())
        if not raw:
            return None
        for language in raw:
            choice(language, LANGUAGES, name)
        return tuple(dict.fromkeys(raw))

    def backoff(self, name: str, default: tuple[float, float]) -> tuple[float, float]:
        """ws-worker's ``min/max`` seconds (§10.3)."""
        raw = self.get(name)
        if raw is None:
            return default
        low, sep, high = raw.partition("/")
        try:
            pair = (float(low), float(high))
        except ValueError:
            raise _bad(name, raw, "min/max in seconds, like 1/10") from None
        if not sep or not 0 < pair[0] <= pair[1]:
            raise _bad(name, raw, "min/max in seconds with 0 < min <= max")
        return pair


def _bad(name: str, raw: str, expected: str) -> ConfigError:
    # Only non-secret variables come through here, so showing the value helps and is safe.
    return ConfigError(f"{name} must be {expected}, not {raw!r}", code="bad_value")
