-- Fulmen store, PostgreSQL dialect: the first schema.
--
-- Conventions (the SQLite schema has the same tables, columns and rules):
--   * ids are text: UUIDs we mint, or that the worker mints for steps and their output
--     dataclips (worker-protocol.md §10.7, item 9); text rather than uuid so that both
--     dialects accept and refuse the same ids;
--   * timestamps are timestamptz (microseconds, like the wire);
--   * JSON documents are jsonb;
--   * states are enumerated columns guarded by CHECK constraints; which transitions between
--     them are legal is fulmen/lifecycle.py's table, and the CHECKs below only hold each
--     state's timestamps consistent.
--   * every reference either cascades or is set to NULL: deleting a project or workflow
--     removes a whole tree in one statement, and no constraint check has to guess in what
--     order the database deletes its branches (references to dataclips become NULL; a
--     dataclip is normally wiped, keeping its row, rather than deleted).

CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    -- Issue 8: at most this many runs of the project in flight; NULL is no limit.
    concurrency integer CHECK (concurrency IS NULL OR concurrency > 0),
    inserted_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE workflows (
    id           text PRIMARY KEY,
    project_id   text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- Issue 8: at most this many runs of the workflow in flight; NULL is no limit.
    concurrency  integer CHECK (concurrency IS NULL OR concurrency > 0),
    -- Optimistic locking: each save adds one, and a save based on an older version is
    -- refused. The current snapshot is the one with this version.
    lock_version integer NOT NULL CHECK (lock_version > 0),
    inserted_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX workflows_project ON workflows (project_id, id);

-- Every save of a workflow, whole and never updated: a run records the snapshot it ran.
CREATE TABLE workflow_snapshots (
    id          text PRIMARY KEY,
    workflow_id text NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    document    jsonb NOT NULL,
    inserted_at timestamptz NOT NULL,
    UNIQUE (workflow_id, version)
);

CREATE TABLE credentials (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    -- AES-256-GCM under the operator's key (fulmen/store/cipher.py); never the plain body.
    sealed_body bytea NOT NULL,
    inserted_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- The target of the jobs' (credential_id, project_id) reference below.
    UNIQUE (id, project_id)
);
CREATE INDEX credentials_project ON credentials (project_id, name);

-- The current version of each workflow's nodes and edges, for lookups (a webhook's trigger,
-- the jobs using a credential). Runs read their snapshot instead.
CREATE TABLE triggers (
    id              text PRIMARY KEY,
    workflow_id     text NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    type            text NOT NULL CHECK (type IN ('webhook', 'cron', 'kafka')),
    enabled         boolean NOT NULL,
    cron_expression text,
    timezone        text,
    webhook_reply   text CHECK (webhook_reply IN ('before_start', 'after_completion')),
    CHECK (type <> 'cron' OR cron_expression IS NOT NULL)
);
CREATE INDEX triggers_workflow ON triggers (workflow_id);

CREATE TABLE jobs (
    id            text PRIMARY KEY,
    workflow_id   text NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    project_id    text NOT NULL,
    name          text,
    body          text NOT NULL,
    adaptor       text NOT NULL,
    credential_id text,
    -- A job may only use a credential of its own project; a used credential cannot go.
    FOREIGN KEY (credential_id, project_id) REFERENCES credentials (id, project_id)
);
CREATE INDEX jobs_workflow ON jobs (workflow_id);
CREATE INDEX jobs_credential ON jobs (credential_id) WHERE credential_id IS NOT NULL;

CREATE TABLE edges (
    id                text PRIMARY KEY,
    workflow_id       text NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    source_trigger_id text,
    source_job_id     text,
    target_job_id     text NOT NULL,
    condition         text NOT NULL,
    enabled           boolean NOT NULL,
    CHECK ((source_trigger_id IS NULL) <> (source_job_id IS NULL))
);
CREATE INDEX edges_workflow ON edges (workflow_id);

CREATE TABLE dataclips (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    type        text NOT NULL
                CHECK (type IN ('http_request', 'step_result', 'saved_input', 'global')),
    -- JSON; NULL once wiped (the row, its id and type stay: runs and steps point at it).
    body        jsonb,
    -- JSON request metadata of an http_request dataclip (worker-protocol.md §5.5).
    request     jsonb,
    wiped_at    timestamptz,
    inserted_at timestamptz NOT NULL,
    CHECK (wiped_at IS NULL OR (body IS NULL AND request IS NULL))
);
CREATE INDEX dataclips_project ON dataclips (project_id, inserted_at);

-- The queue names runs may carry (spec §4.4: default, fast_lane, manual; more are added on
-- first use). The claim expands '*' to the rows of this small table.
CREATE TABLE queues (
    name text PRIMARY KEY CHECK (name <> '' AND name ~ '^[A-Za-z0-9_]+$')
);
INSERT INTO queues (name) VALUES ('default'), ('fast_lane'), ('manual');

-- One per trigger event (a webhook request, a cron tick, a manual run): every run made for
-- that input, retries and reruns included (issue 8), belongs to it.
CREATE TABLE work_orders (
    id          text PRIMARY KEY,
    workflow_id text NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    -- No reference: the trigger may leave the workflow while its work orders stay.
    trigger_id  text,
    dataclip_id text REFERENCES dataclips (id) ON DELETE SET NULL,
    inserted_at timestamptz NOT NULL
);
CREATE INDEX work_orders_workflow ON work_orders (workflow_id, inserted_at);

CREATE TABLE runs (
    -- Arrival order: FIFO within a priority, and the keyset for paging through runs.
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                text PRIMARY KEY,
    work_order_id     text NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
    workflow_id       text NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    -- Copied from the workflow so that per-project limits (issue 8) need no join.
    project_id        text NOT NULL,
    snapshot_id       text NOT NULL REFERENCES workflow_snapshots (id) ON DELETE CASCADE,
    dataclip_id       text REFERENCES dataclips (id) ON DELETE SET NULL,
    -- A trigger id, or a job id for reruns and retries that start part-way (spec §6.1).
    starting_node_id  text NOT NULL,
    state             text NOT NULL CHECK (state IN (
                          'available', 'claimed', 'started', 'success', 'failed', 'crashed',
                          'killed', 'exception', 'cancelled', 'lost')),
    queue             text NOT NULL REFERENCES queues (name),
    -- 0: immediate (manual and webhook runs), 1: normal (cron); lower is claimed first.
    priority          smallint NOT NULL CHECK (priority IN (0, 1)),
    -- The plan options, fixed when the run is made (spec §6.1), as JSON.
    options           jsonb NOT NULL,
    -- Copied out of options for the lost-run sweep; NULL: the coordinator's default.
    run_timeout_ms    integer CHECK (run_timeout_ms IS NULL OR run_timeout_ms > 0),
    worker_name       text,
    error_type        text,
    error_message     text,
    final_dataclip_id text REFERENCES dataclips (id) ON DELETE SET NULL,
    inserted_at       timestamptz NOT NULL,
    claimed_at        timestamptz,
    -- When a worker first joined run:<id>; a claimed run never joined is rolled back.
    joined_at         timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
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
    id                 text PRIMARY KEY,
    run_id             text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id             text NOT NULL,
    input_dataclip_id  text REFERENCES dataclips (id) ON DELETE SET NULL,
    output_dataclip_id text REFERENCES dataclips (id) ON DELETE SET NULL,
    -- NULL while the step runs; then its exit reason, or 'lost' with its run.
    exit_reason        text CHECK (exit_reason IN (
                           'success', 'fail', 'crash', 'kill', 'exception', 'cancel', 'lost')),
    error_type         text,
    error_message      text,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz,
    CHECK ((exit_reason IS NULL) = (finished_at IS NULL))
);
CREATE INDEX steps_run ON steps (run_id, started_at);

CREATE TABLE log_lines (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id   text REFERENCES steps (id) ON DELETE CASCADE,
    -- Spec §5.9: source at most 8 characters, level from a fixed set.
    source    text NOT NULL CHECK (length(source) <= 8),
    level     text NOT NULL
              CHECK (level IN ('success', 'always', 'info', 'warn', 'error', 'debug')),
    message   text NOT NULL,
    logged_at timestamptz NOT NULL
);
CREATE INDEX log_lines_run ON log_lines (run_id, logged_at, id);
