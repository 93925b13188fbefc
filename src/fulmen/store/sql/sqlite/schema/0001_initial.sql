-- Fulmen store, SQLite dialect: the first schema.
--
-- Conventions (the PostgreSQL schema has the same tables, columns and rules):
--   * ids are TEXT: UUIDs we mint, or that the worker mints for steps and their output
--     dataclips (worker-protocol.md §10.7, item 9);
--   * timestamps are INTEGER microseconds since the Unix epoch, UTC: SQLite has no time type,
--     and integers compare, sort and add (the lost-run sweep adds timeouts) exactly;
--   * JSON documents are TEXT;
--   * states are enumerated columns guarded by CHECK constraints; which transitions between
--     them are legal is fulmen/lifecycle.py's table, and the CHECKs below only hold each
--     state's timestamps consistent.
--   * every reference either cascades or is set to NULL: deleting a project or workflow
--     removes a whole tree in one statement, and no constraint check has to guess in what
--     order the database deletes its branches (references to dataclips become NULL; a
--     dataclip is normally wiped, keeping its row, rather than deleted).

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- Issue 8: at most this many runs of the project in flight; NULL is no limit.
    concurrency INTEGER CHECK (concurrency IS NULL OR concurrency > 0),
    inserted_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE workflows (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- Issue 8: at most this many runs of the workflow in flight; NULL is no limit.
    concurrency  INTEGER CHECK (concurrency IS NULL OR concurrency > 0),
    -- Optimistic locking: each save adds one, and a save based on an older version is
    -- refused. The current snapshot is the one with this version.
    lock_version INTEGER NOT NULL CHECK (lock_version > 0),
    inserted_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX workflows_project ON workflows (project_id, id);

-- Every save of a workflow, whole and never updated: a run records the snapshot it ran.
CREATE TABLE workflow_snapshots (
    id          TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL,
    inserted_at INTEGER NOT NULL,
    UNIQUE (workflow_id, version)
);

CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- AES-256-GCM under the operator's key (fulmen/store/cipher.py); never the plain body.
    sealed_body BLOB NOT NULL,
    inserted_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    -- The target of the jobs' (credential_id, project_id) reference below.
    UNIQUE (id, project_id)
);
CREATE INDEX credentials_project ON credentials (project_id, name);

-- The current version of each workflow's nodes and edges, for lookups (a webhook's trigger,
-- the jobs using a credential). Runs read their snapshot instead.
CREATE TABLE triggers (
    id              TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    type            TEXT NOT NULL CHECK (type IN ('webhook', 'cron', 'kafka')),
    enabled         INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    cron_expression TEXT,
    timezone        TEXT,
    webhook_reply   TEXT CHECK (webhook_reply IN ('before_start', 'after_completion')),
    CHECK (type <> 'cron' OR cron_expression IS NOT NULL)
);
CREATE INDEX triggers_workflow ON triggers (workflow_id);

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    workflow_id   TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    project_id    TEXT NOT NULL,
    name          TEXT,
    body          TEXT NOT NULL,
    adaptor       TEXT NOT NULL,
    credential_id TEXT,
    -- A job may only use a credential of its own project; a used credential cannot go.
    FOREIGN KEY (credential_id, project_id) REFERENCES credentials (id, project_id)
);
CREATE INDEX jobs_workflow ON jobs (workflow_id);
CREATE INDEX jobs_credential ON jobs (credential_id) WHERE credential_id IS NOT NULL;

CREATE TABLE edges (
    id                TEXT PRIMARY KEY,
    workflow_id       TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    source_trigger_id TEXT,
    source_job_id     TEXT,
    target_job_id     TEXT NOT NULL,
    condition         TEXT NOT NULL,
    enabled           INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    CHECK ((source_trigger_id IS NULL) <> (source_job_id IS NULL))
);
CREATE INDEX edges_workflow ON edges (workflow_id);

CREATE TABLE dataclips (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    type        TEXT NOT NULL
                CHECK (type IN ('http_request', 'step_result', 'saved_input', 'global')),
    -- JSON; NULL once wiped (the row, its id and type stay: runs and steps point at it).
    body        TEXT,
    -- JSON request metadata of an http_request dataclip (worker-protocol.md §5.5).
    request     TEXT,
    wiped_at    INTEGER,
    inserted_at INTEGER NOT NULL,
    CHECK (wiped_at IS NULL OR (body IS NULL AND request IS NULL))
);
CREATE INDEX dataclips_project ON dataclips (project_id, inserted_at);

-- The queue names runs may carry (spec §4.4: default, fast_lane, manual; more are added on
-- first use). The claim expands '*' to the rows of this small table.
CREATE TABLE queues (
    name TEXT PRIMARY KEY CHECK (name <> '' AND name NOT GLOB '*[^A-Za-z0-9_]*')
);
INSERT INTO queues (name) VALUES ('default'), ('fast_lane'), ('manual');

-- One per trigger event (a webhook request, a cron tick, a manual run): every run made for
-- that input, retries and reruns included (issue 8), belongs to it.
CREATE TABLE work_orders (
    id          TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    -- No reference: the trigger may leave the workflow while its work orders stay.
    trigger_id  TEXT,
    dataclip_id TEXT REFERENCES dataclips (id) ON DELETE SET NULL,
    inserted_at INTEGER NOT NULL
);
CREATE INDEX work_orders_workflow ON work_orders (workflow_id, inserted_at);

CREATE TABLE runs (
    -- Arrival order: FIFO within a priority, and the keyset for paging through runs.
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    work_order_id     TEXT NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
    workflow_id       TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    -- Copied from the workflow so that per-project limits (issue 8) need no join.
    project_id        TEXT NOT NULL,
    snapshot_id       TEXT NOT NULL REFERENCES workflow_snapshots (id) ON DELETE CASCADE,
    dataclip_id       TEXT REFERENCES dataclips (id) ON DELETE SET NULL,
    -- A trigger id, or a job id for reruns and retries that start part-way (spec §6.1).
    starting_node_id  TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN (
                          'available', 'claimed', 'started', 'success', 'failed', 'crashed',
                          'killed', 'exception', 'cancelled', 'lost')),
    queue             TEXT NOT NULL REFERENCES queues (name),
    -- 0: immediate (manual and webhook runs), 1: normal (cron); lower is claimed first.
    priority          INTEGER NOT NULL CHECK (priority IN (0, 1)),
    -- The plan options, fixed when the run is made (spec §6.1), as JSON.
    options           TEXT NOT NULL,
    -- Copied out of options for the lost-run sweep; NULL: the coordinator's default.
    run_timeout_ms    INTEGER CHECK (run_timeout_ms IS NULL OR run_timeout_ms > 0),
    worker_name       TEXT,
    error_type        TEXT,
    error_message     TEXT,
    final_dataclip_id TEXT REFERENCES dataclips (id) ON DELETE SET NULL,
    inserted_at       INTEGER NOT NULL,
    claimed_at        INTEGER,
    -- When a worker first joined run:<id>; a claimed run never joined is rolled back.
    joined_at         INTEGER,
    started_at        INTEGER,
    finished_at       INTEGER,
    CHECK (CASE state
        WHEN 'available' THEN claimed_at IS NULL AND finished_at IS NULL
        WHEN 'claimed' THEN claimed_at IS NOT NULL AND finished_at IS NULL
        WHEN 'started' THEN claimed_at IS NOT NULL AND started_at IS NOT NULL
                            AND finished_at IS NULL
        ELSE finished_at IS NOT NULL
    END)
);
-- The claim's index: only available runs are in it, so it stays as small as the queue, and a
-- claim reads it by one seek per queue (see claim_runs in queries.sql).
CREATE INDEX runs_claim ON runs (queue, priority, seq) WHERE state = 'available';
-- The rollback and lost-run sweeps read only runs in flight.
CREATE INDEX runs_in_flight ON runs (claimed_at) WHERE state IN ('claimed', 'started');
CREATE INDEX runs_workflow ON runs (workflow_id, seq);
CREATE INDEX runs_project ON runs (project_id, seq);
CREATE INDEX runs_work_order ON runs (work_order_id, seq);

CREATE TABLE steps (
    id                 TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id             TEXT NOT NULL,
    input_dataclip_id  TEXT REFERENCES dataclips (id) ON DELETE SET NULL,
    output_dataclip_id TEXT REFERENCES dataclips (id) ON DELETE SET NULL,
    -- NULL while the step runs; then its exit reason, or 'lost' with its run.
    exit_reason        TEXT CHECK (exit_reason IN (
                           'success', 'fail', 'crash', 'kill', 'exception', 'cancel', 'lost')),
    error_type         TEXT,
    error_message      TEXT,
    started_at         INTEGER NOT NULL,
    finished_at        INTEGER,
    CHECK ((exit_reason IS NULL) = (finished_at IS NULL))
);
CREATE INDEX steps_run ON steps (run_id, started_at);

CREATE TABLE log_lines (
    id        INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id   TEXT REFERENCES steps (id) ON DELETE CASCADE,
    -- Spec §5.9: source at most 8 characters, level from a fixed set.
    source    TEXT NOT NULL CHECK (length(source) <= 8),
    level     TEXT NOT NULL
              CHECK (level IN ('success', 'always', 'info', 'warn', 'error', 'debug')),
    message   TEXT NOT NULL,
    logged_at INTEGER NOT NULL
);
CREATE INDEX log_lines_run ON log_lines (run_id, logged_at, id);
