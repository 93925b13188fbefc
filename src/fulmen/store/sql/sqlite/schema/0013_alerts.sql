-- Failure alerts and digests (issue 18, "Alerts"): a project's channels (e-mail, webhook),
-- each workflow's rule (which final states alert, through which channels, at most one alert
-- per period), each project's digest (off, daily, weekly), and the outbox between a run's
-- end and the messages sent about it. fulmen/store/alert_policy.py holds the decisions;
-- fulmen/coordinator/alerts/ sends.

-- A project's ways of being told. An e-mail channel has its recipients (a JSON array of
-- addresses); a webhook channel its URL and a signing secret, sealed like a credential body
-- (AES-256-GCM, fulmen/store/cipher.py) and bound to the channel's id.
CREATE TABLE alert_channels (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('email', 'webhook')),
    recipients    TEXT NOT NULL DEFAULT '[]',
    url           TEXT,
    sealed_secret BLOB,
    inserted_at   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (project_id, name),
    CHECK ((type = 'webhook') = (url IS NOT NULL AND sealed_secret IS NOT NULL))
);

-- A workflow's rule: runs ending in one of ``outcomes`` (a JSON array of run states) are
-- alerted through its channels, at most one alert per ``period_seconds``; endings in between
-- are folded into the next alert. last_alert_at: when the latest alert was made.
CREATE TABLE alert_rules (
    workflow_id    TEXT PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    outcomes       TEXT NOT NULL,
    period_seconds INTEGER NOT NULL CHECK (period_seconds > 0),
    last_alert_at  INTEGER,
    inserted_at    INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX alert_rules_project ON alert_rules (project_id);

CREATE TABLE alert_rule_channels (
    workflow_id TEXT NOT NULL REFERENCES alert_rules (workflow_id) ON DELETE CASCADE,
    channel_id  TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    PRIMARY KEY (workflow_id, channel_id)
);
CREATE INDEX alert_rule_channels_channel ON alert_rule_channels (channel_id);

-- A project's digest: runs by outcome, the slowest workflows and the failure types new in
-- the period, made when next_due_at has passed (midnight UTC; Monday's for 'weekly').
CREATE TABLE alert_digests (
    project_id  TEXT PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    frequency   TEXT NOT NULL CHECK (frequency IN ('off', 'daily', 'weekly')),
    next_due_at INTEGER,
    updated_at  INTEGER NOT NULL,
    CHECK ((frequency = 'off') = (next_due_at IS NULL))
);
CREATE INDEX alert_digests_due ON alert_digests (next_due_at) WHERE next_due_at IS NOT NULL;

CREATE TABLE alert_digest_channels (
    project_id TEXT NOT NULL REFERENCES alert_digests (project_id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, channel_id)
);
CREATE INDEX alert_digest_channels_channel ON alert_digest_channels (channel_id);

-- The outbox: a run of a workflow with an enabled rule ended in one of its outcomes. Written
-- by the transaction that ends the run (fulmen/store/endings.py: one INSERT … SELECT, no row
-- when no rule asks), so an ending is never lost between two transactions; taken (deleted)
-- by the transaction that folds it into an alert. Only pending endings live here.
CREATE TABLE alert_endings (
    seq         INTEGER PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    run_id      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error_type  TEXT,
    ended_at    INTEGER NOT NULL
);
CREATE INDEX alert_endings_workflow ON alert_endings (workflow_id, seq);

-- What was made to be sent: one alert (kind 'failures', for one workflow) or digest (kind
-- 'digest', for a project), its whole content in body (JSON), so that every coordinator
-- renders the same message and a retry sends what the first try did.
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    workflow_id TEXT REFERENCES workflows (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('failures', 'digest')),
    body        TEXT NOT NULL,
    inserted_at INTEGER NOT NULL
);
CREATE INDEX alerts_project ON alerts (project_id, inserted_at);
CREATE INDEX alerts_workflow ON alerts (workflow_id, inserted_at) WHERE workflow_id IS NOT NULL;

-- One alert through one channel. 'pending' until sent ('sent') or given up ('failed');
-- attempts counts the tries claimed, and is the claim's token: a try's outcome is recorded
-- only by the claimer of that attempt. next_attempt_at: when it may be claimed (a claim moves
-- it a lease ahead, so a coordinator that dies mid-send leaves it to be tried again).
CREATE TABLE alert_deliveries (
    id              TEXT PRIMARY KEY,
    alert_id        TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel_id      TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    last_failed_at  INTEGER,
    sent_at         INTEGER,
    inserted_at     INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_channel ON alert_deliveries (channel_id, inserted_at);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
