"""Every error Fulmen raises on purpose, under one root.

Each error has a stable ``code`` (a short string that goes on the wire, in error replies and
in ``ExitReason.error_type``) and a one-sentence human ``message`` that says what happened and,
where it helps, what to do. Foreign exceptions are translated into the most specific class here
at the boundary where they occur, chained with ``from``.

The tree::

    FulmenError
    ├── ConfigError            bad settings, keys or secrets (names the variable, never the value)
    ├── InputError             a file, JSON document or argument given by a user is unusable
    │   └── ProjectFileError     a project file is invalid (each problem named by its key path)
    ├── PlanError              a workflow plan is invalid (ValidationError on the wire)
    ├── JobError               what a run reports about user code (error_type is the code)
    │   ├── CompileError       a job's source does not parse or does not build operations
    │   ├── AdaptorError       an adaptor cannot be found, installed or imported
    │   ├── LanguageError      a job in a language this worker cannot run
    │   └── EdgeConditionError an edge condition does not compile or raises
    ├── SandboxError           the child process could not be started or supervised
    │   └── SandboxProtocolError a frame between worker, zygote and child cannot be decoded
    ├── ProtocolError          a Phoenix frame broke the protocol
    │   ├── LocalProtocolError   we broke it (a bug, or misuse of the session API)
    │   └── RemoteProtocolError  the peer broke it
    ├── ContractError          a Lightning payload is missing a field or has a wrong type
    │   └── ContractFieldError   one named field is missing or wrong (``field`` says which)
    ├── TokenError             a worker or run token was refused (code says why)
    ├── WorkerError            the worker and its coordinator could not do something together
    │   ├── UnreachableError     no address of the coordinator took the connection (names the URL)
    │   ├── RefusedError         the coordinator answered a join or request with an error
    │   └── NoReplyError         a request will never be answered (timeout, disconnected…)
    ├── RunnerError            the script runner refused or could not do a request (code says why)
    │   ├── KeyDenied            the key policy does not release an omni key to this worker
    │   └── KeyStoreError        a key store failed; a sealed record that does not open is one
    ├── ApiError               a coordinator's REST API refused a request, or was not reached
    ├── AccessError            who asked may not do this (no role, too weak a role, signed out)
    │   └── SignInError          a sign-in refused: wrong password or code, locked, rate-limited
    ├── RegistryError          the npm registry or the Python package index could not say which
    │                          versions a package has
    ├── AlertError             an alert channel could not deliver (SMTP server, webhook receiver)
    ├── CredentialError        an OAuth2 credential's token could not be had from its provider
    ├── TransitionError        a run or step event that its state table does not allow
    └── StoreError             the store could not do what was asked (the database failed)
        ├── NotFoundError        no such project, workflow, run, step, dataclip… (``field``)
        └── ConflictError        a duplicate id, a stale version, or a row still in use

Keep codes stable: they are part of Fulmen's interface.
"""

from __future__ import annotations

from datetime import datetime


class FulmenError(Exception):
    """Root of all deliberate Fulmen errors.

    ``code`` is machine-readable and stable; ``message`` is for people.
    """

    code: str = "fulmen_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, str]:
        """The ``{"code", "message"}`` shape used in error replies."""
        return {"code": self.code, "message": self.message}


class ConfigError(FulmenError):
    """Settings, keys or secrets that cannot be used; names the variable, never its value."""

    code = "config_error"


class InputError(FulmenError):
    """A user-given file, document or argument that cannot be used. ``field`` is the path of
    the value at fault when one can be named (``jobs[1].requirements[0]``), else ``None``: an
    API answers with it, so that a client can point at the value."""

    code = "InputError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.field = field
        #: The line of the source at fault (``syntax_error``), from 1: the dashboard's editor
        #: marks it; ``None`` when the fault is not in a source.
        self.line = line


class ProjectFileError(InputError):
    """A project file that cannot be deployed. ``problems`` holds every ``(path, message)``
    found, the path naming the offending key (``workflows.sync.jobs[1].adaptor``), so that one
    run of ``fulmen deploy`` reports them all; the message is their first line."""

    code = "invalid_project"

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        first = f"{problems[0][0]}: {problems[0][1]}" if problems else "invalid"
        super().__init__(f"{file}: {first}")

    def lines(self) -> list[str]:
        """One ``path: message`` line per problem."""
        return [f"{path}: {message}" if path else message for path, message in self.problems]


class PlanError(FulmenError):
    """A workflow plan that cannot run: unknown start, edge to nowhere, cycle, bad shape.

    The code matches the runtime's ``ValidationError`` so that it can be reported as an
    exit reason's ``error_type`` unchanged.
    """

    code = "ValidationError"


class JobError(FulmenError):
    """Something about user code that a run reports; the code is the wire ``error_type``."""

    code = "JobError"


class CompileError(JobError):
    """A job's source does not parse, or a top-level expression fails while building steps."""

    code = "CompileError"


class AdaptorError(JobError):
    """An adaptor named by a job cannot be found, installed or imported."""

    code = "AdaptorError"


class LanguageError(JobError):
    """A job in a language this worker cannot run (JavaScript on a host without Node.js), or
    whose language runtime failed under it: never run as the other language instead."""

    code = "LanguageError"


class EdgeConditionError(JobError):
    """An edge condition does not compile, or raises when evaluated."""

    code = "EdgeConditionError"


class SandboxError(FulmenError):
    """The sandbox could not start or supervise a child process."""

    code = "sandbox_error"


class SandboxProtocolError(SandboxError):
    """A sandbox frame that cannot be decoded: bad length, not JSON, not an object, or cut short.

    Raised by ``fulmen.sandbox.frames``; the supervisor treats it as the child's fault and ends
    the run as a crash.
    """

    code = "sandbox_protocol_error"


class ProtocolError(FulmenError):
    """A Phoenix Channels frame or sequence that breaks the protocol.

    Not raised directly: the two subclasses say who broke it.
    """

    code = "protocol_error"


class LocalProtocolError(ProtocolError):
    """We broke the protocol: a bug, or the session API used out of order."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the connection should be failed or the frame refused."""


class ContractError(FulmenError):
    """A Lightning payload or reply with a missing field or a wrong type; names the field."""

    code = "contract_error"


class ContractFieldError(ContractError):
    """One field of a payload is missing or wrong. ``field`` is its path (``queues[1]``,
    ``logs[0].level``), so that a server can answer with Lightning's ``{field: [message]}``.
    Codes: ``missing_field``, ``wrong_type``, ``bad_value``."""

    def __init__(self, message: str, *, field: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class TokenError(FulmenError):
    """A worker or run token that was refused; the code says why (expired, bad_signature…)."""

    code = "invalid_token"


class WorkerError(FulmenError):
    """The worker and its coordinator could not do something together; never user code's fault."""

    code = "worker_error"


class UnreachableError(WorkerError):
    """No address of the coordinator took the WebSocket connection. ``url`` is the base URL
    (never the socket URL, which carries the worker token). Code ``unauthorized`` when the
    coordinator answered the upgrade with 401/403: the worker secrets differ."""

    code = "unreachable"

    def __init__(self, message: str, *, url: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.url = url


class RefusedError(WorkerError):
    """The coordinator answered a join or request with an error (or a run token ran out).
    ``code`` is its ``reason`` when it gave one (``unauthorized``, ``not_found``), else
    ``refused``; ``response`` is what it said, as decoded JSON."""

    code = "refused"

    def __init__(self, message: str, *, response: object = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.response = response


class NoReplyError(WorkerError):
    """A request will never be answered. Codes: ``timeout`` (connected, but no reply in
    time), ``disconnected`` (the socket went away, or was not there), ``channel_closed`` (the
    server closed or crashed the channel)."""

    code = "no_reply"


class RunnerError(FulmenError):
    """A smart-worker request the runner refuses or cannot serve. The code says which
    (``bad_request``, ``invalid_cron``, ``script_load_failed``, ``not_found``, ``name_taken``,
    ``too_large``, ``unsupported_media_type``, ``not_ready``, ``timeout``…); the runner's API
    maps codes to HTTP statuses."""

    code = "runner_error"


class KeyDenied(RunnerError):
    """The key policy does not release the omni key to this worker, or names no known store;
    the message gives the reason."""

    code = "key_denied"


class KeyStoreError(RunnerError):
    """A key store could not produce a key: a sealed record that fails to open (tampered, or a
    different master key), or storage that failed. Never answered with a fresh key."""

    code = "key_store_error"


class ApiError(FulmenError):
    """What ``fulmen deploy`` and ``fulmen pull`` get when a coordinator's REST API refuses a
    request (``code`` is the API's error code, ``status`` the HTTP status) or cannot be
    reached (code ``unreachable``, status 0)."""

    code = "api_error"

    def __init__(self, message: str, *, status: int = 0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class AccessError(FulmenError):
    """The caller is known but may not do what they asked: their role in the project is too
    weak (``forbidden``, answered 403 and recorded in the audit trail), or the thing is not
    theirs to see at all. ``permission`` names what was missing (access.py's words), and
    ``project_id`` where."""

    code = "forbidden"

    def __init__(
        self,
        message: str,
        *,
        permission: str = "",
        project_id: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.permission = permission
        self.project_id = project_id


class SignInError(AccessError):
    """A sign-in that did not succeed: the code says why (``bad_credentials`` for a wrong
    e-mail or password alike, ``bad_code``, ``rate_limited``, ``disabled``); the message never
    says which of e-mail and password was wrong. ``retry_at``: when a ``rate_limited`` sign-in
    may be tried again (answered as ``Retry-After``)."""

    code = "bad_credentials"

    def __init__(
        self, message: str, *, code: str | None = None, retry_at: datetime | None = None
    ) -> None:
        super().__init__(message, permission="sign_in", code=code)
        self.retry_at = retry_at


class RegistryError(FulmenError):
    """The npm registry or the Python package index, asked which versions a job's packages
    have when a workflow is saved, could not say: it was not reached in time
    (``registry_unreachable``) or answered with something that is not a package document, or
    the resolver failed (``registry_error``). Nothing was saved; the message names the package
    and the registry. A package or version that the registry says does not exist is the user's
    input instead (InputError ``unknown_adaptor``, ``unknown_adaptor_version``,
    ``unknown_package``, ``unknown_package_version``)."""

    code = "registry_unreachable"


class AlertError(FulmenError):
    """An alert or digest that a channel could not deliver (issue 18): retried with backoff,
    and shown on the channel, in these words, until it goes through. Codes:
    ``smtp_not_configured`` (no ``FULMEN_SMTP_HOST``), ``smtp_failed`` (the server was not
    reached, refused to sign in, or refused the message), ``webhook_failed`` (the receiver
    was not reached or did not answer 2xx), ``secret_unavailable`` (the channel's secret
    cannot be opened: no credential key, or another one)."""

    code = "alert_failed"


class CredentialError(FulmenError):
    """An OAuth2 credential's token could not be had (issue 19): the provider refused the
    grant (``reauthorization_required``: its refresh token was revoked or expired, so a person
    must connect it again; the credential is marked so), could not be reached or answered
    with something that is not a token (``provider_unavailable``: tried again at the next
    use), or the credential was never connected (``not_connected``). A run whose credential
    fails so ends before it starts, with this message."""

    code = "reauthorization_required"


class TransitionError(FulmenError):
    """An event that the run or step state table (``fulmen.lifecycle``) does not allow now.

    ``state`` and ``event`` name the current state and the refused event, so a server can
    answer with Lightning's shape (``{"state": ["already in completed state"]}``). Nothing was
    changed.
    """

    code = "illegal_transition"

    def __init__(self, message: str, *, state: str, event: str) -> None:
        super().__init__(message)
        self.state = state
        self.event = event


class StoreError(FulmenError):
    """The store could not do what was asked: the database failed or refused a write.

    ``field`` names the input at fault when one is (``job_id``, ``step_id``…), else ``None``.
    """

    code = "store_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class NotFoundError(StoreError):
    """No project, workflow, run, step, dataclip or credential has the given id."""

    code = "not_found"


class ConflictError(StoreError):
    """A write that clashes with what is stored: a duplicate id, a stale workflow version, or
    a row that something else still uses."""

    code = "conflict"
