-- Fulmen store: the named queries, SQLite dialect.
--
-- Each query sits under a "-- name: <name>" line, followed by comment lines saying what it
-- does; postgres/queries.sql has the same names with the same meaning and parameters, and the
-- conformance suite holds both to the same behaviour. Parameters are sqlite3's :name. Lists
-- arrive as JSON text (read with json_each) and times as integer microseconds since the epoch.
-- Writes run inside BEGIN IMMEDIATE (fulmen/store/sqlite.py), so a read followed by a write
-- in one transaction sees no interleaved writer.


-- name: insert_project
INSERT INTO projects (id, name, concurrency, inserted_at, updated_at)
VALUES (:id, :name, :concurrency, :now, :now)
RETURNING *;

-- name: update_project
UPDATE projects SET name = :name, concurrency = :concurrency, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: get_project
SELECT * FROM projects WHERE id = :id;

-- name: list_projects
-- One page in id order, after the cursor's id.
SELECT * FROM projects
WHERE :after IS NULL OR id > :after
ORDER BY id
LIMIT :limit;

-- name: delete_project_workflows
-- First half of deleting a project: its workflows, with their runs (ON DELETE CASCADE), so
-- that no job still holds a credential when the second half deletes those.
DELETE FROM workflows WHERE project_id = :id;

-- name: delete_project
-- Second half: the project with its credentials and dataclips.
DELETE FROM projects WHERE id = :id;


-- name: insert_workflow
INSERT INTO workflows (id, project_id, name, concurrency, lock_version, inserted_at, updated_at)
VALUES (:id, :project_id, :name, :concurrency, 1, :now, :now)
RETURNING *;

-- name: update_workflow
-- Optimistic locking: only when the stored version is the one the caller read (or the caller
-- names none). No row back: the workflow is gone or was saved by someone else meanwhile.
UPDATE workflows
SET name = :name, concurrency = :concurrency, lock_version = lock_version + 1,
    updated_at = :now
WHERE id = :id AND project_id = :project_id
  AND (:expected_version IS NULL OR lock_version = :expected_version)
RETURNING *;

-- name: get_workflow
-- The workflow with its current snapshot (the one of its latest save).
SELECT w.*, s.id AS snapshot_id, s.document
FROM workflows w
JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.lock_version
WHERE w.id = :id;

-- name: list_workflows
SELECT w.*, s.id AS snapshot_id, s.document
FROM workflows w
JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.lock_version
WHERE w.project_id = :project_id AND (:after IS NULL OR w.id > :after)
ORDER BY w.id
LIMIT :limit;

-- name: delete_workflow
-- Takes its snapshots, nodes, edges, work orders, runs, steps and logs with it.
DELETE FROM workflows WHERE id = :id;

-- name: insert_snapshot
INSERT INTO workflow_snapshots (id, workflow_id, version, document, inserted_at)
VALUES (:id, :workflow_id, :version, :document, :now);

-- name: get_snapshot
SELECT * FROM workflow_snapshots WHERE id = :id;

-- name: foreign_nodes
-- Which of the given job, trigger and edge ids another workflow already uses.
SELECT id FROM jobs
WHERE id IN (SELECT value FROM json_each(:job_ids)) AND workflow_id <> :workflow_id
UNION ALL
SELECT id FROM triggers
WHERE id IN (SELECT value FROM json_each(:trigger_ids)) AND workflow_id <> :workflow_id
UNION ALL
SELECT id FROM edges
WHERE id IN (SELECT value FROM json_each(:edge_ids)) AND workflow_id <> :workflow_id;

-- name: project_credentials
-- Which of the given credential ids belong to the project.
SELECT id FROM credentials
WHERE project_id = :project_id AND id IN (SELECT value FROM json_each(:ids));

-- name: delete_stale_jobs
-- On save, the workflow's jobs that the new version no longer has.
DELETE FROM jobs
WHERE workflow_id = :workflow_id AND id NOT IN (SELECT value FROM json_each(:job_ids));

-- name: delete_stale_triggers
DELETE FROM triggers
WHERE workflow_id = :workflow_id AND id NOT IN (SELECT value FROM json_each(:trigger_ids));

-- name: delete_stale_edges
DELETE FROM edges
WHERE workflow_id = :workflow_id AND id NOT IN (SELECT value FROM json_each(:edge_ids));

-- name: upsert_job
INSERT INTO jobs (id, workflow_id, project_id, name, body, adaptor, credential_id)
VALUES (:id, :workflow_id, :project_id, :name, :body, :adaptor, :credential_id)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, body = excluded.body, adaptor = excluded.adaptor,
    credential_id = excluded.credential_id
WHERE jobs.workflow_id = excluded.workflow_id;

-- name: upsert_trigger
-- Updated in place rather than replaced, so that what hangs off a trigger stays attached.
INSERT INTO triggers (id, workflow_id, type, enabled, cron_expression, timezone, webhook_reply)
VALUES (:id, :workflow_id, :type, :enabled, :cron_expression, :timezone, :webhook_reply)
ON CONFLICT (id) DO UPDATE
SET type = excluded.type, enabled = excluded.enabled,
    cron_expression = excluded.cron_expression, timezone = excluded.timezone,
    webhook_reply = excluded.webhook_reply
WHERE triggers.workflow_id = excluded.workflow_id;

-- name: upsert_edge
INSERT INTO edges
    (id, workflow_id, source_trigger_id, source_job_id, target_job_id, condition, enabled)
VALUES (:id, :workflow_id, :source_trigger_id, :source_job_id, :target_job_id, :condition,
        :enabled)
ON CONFLICT (id) DO UPDATE
SET source_trigger_id = excluded.source_trigger_id, source_job_id = excluded.source_job_id,
    target_job_id = excluded.target_job_id, condition = excluded.condition,
    enabled = excluded.enabled
WHERE edges.workflow_id = excluded.workflow_id;

-- name: get_trigger
-- A trigger with the workflow and project it belongs to (what a webhook request needs).
SELECT t.*, w.project_id
FROM triggers t JOIN workflows w ON w.id = t.workflow_id
WHERE t.id = :id;


-- name: upsert_credential
-- Create, or replace the name and body; never moves a credential to another project (then
-- no row comes back).
INSERT INTO credentials (id, project_id, name, sealed_body, inserted_at, updated_at)
VALUES (:id, :project_id, :name, :sealed_body, :now, :now)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, sealed_body = excluded.sealed_body, updated_at = excluded.updated_at
WHERE credentials.project_id = excluded.project_id
RETURNING id, project_id, name, inserted_at, updated_at;

-- name: get_credential
SELECT * FROM credentials WHERE id = :id;

-- name: list_credentials
-- Names and times only: values never leave through a listing.
SELECT id, project_id, name, inserted_at, updated_at
FROM credentials WHERE project_id = :project_id
ORDER BY name, id;

-- name: credential_users
-- A few of the jobs that use a credential (which is then not deleted).
SELECT id FROM jobs WHERE credential_id = :id ORDER BY id LIMIT 5;

-- name: delete_credential
DELETE FROM credentials WHERE id = :id;


-- name: insert_dataclip
INSERT INTO dataclips (id, project_id, type, body, request, wiped_at, inserted_at)
VALUES (:id, :project_id, :type, :body, :request, :wiped_at, :now);

-- name: get_dataclip
SELECT * FROM dataclips WHERE id = :id;

-- name: wipe_dataclip
-- Drops the body, keeps the row: runs and steps still name it, and it says when it went.
UPDATE dataclips SET body = NULL, request = NULL, wiped_at = coalesce(wiped_at, :now)
WHERE id = :id
RETURNING id;


-- name: add_queue
INSERT INTO queues (name) VALUES (:name) ON CONFLICT (name) DO NOTHING;

-- name: insert_work_order
INSERT INTO work_orders (id, workflow_id, trigger_id, dataclip_id, inserted_at)
VALUES (:id, :workflow_id, :trigger_id, :dataclip_id, :now);

-- name: get_work_order
-- A work order and the state of its latest run (its own status, issue 8).
SELECT o.*,
       (SELECT r.state FROM runs r WHERE r.work_order_id = o.id ORDER BY r.seq DESC LIMIT 1)
           AS state
FROM work_orders o WHERE o.id = :id;

-- name: insert_run
INSERT INTO runs (id, work_order_id, workflow_id, project_id, snapshot_id, dataclip_id,
                  starting_node_id, state, queue, priority, options, run_timeout_ms,
                  inserted_at)
VALUES (:id, :work_order_id, :workflow_id, :project_id, :snapshot_id, :dataclip_id,
        :starting_node_id, 'available', :queue, :priority, :options, :run_timeout_ms, :now);

-- name: claim_runs
-- Claim up to :demand available runs for one worker, best first, in one statement (the
-- caller wraps it in BEGIN IMMEDIATE, SQLite's single writer lock, so no two claims overlap).
-- Order (worker-protocol.md §4.4): the claimer's queue preference, then priority (0 before 1),
-- then arrival (seq), i.e. FIFO within a priority.
--   wanted   the claim's queue list (JSON) with each name's position.
--   ranked   every queue this claim may take, with its rank: a listed queue ranks at its
--            position; an unlisted one at the position of '*' when '*' is listed, and not at
--            all otherwise (a list without '*' is a filter).
--   picked   per ranked queue, its first :demand available runs, read from the runs_claim
--            index by one seek (so a claim costs the same with 100 or 100,000 runs queued),
--            then the best :demand of those few.
-- Issue 8's concurrency limits belong in picked's inner WHERE.
WITH wanted (name, rank) AS (
    SELECT value, key FROM json_each(:queues)
), ranked (name, rank) AS (
    SELECT q.name, coalesce(w.rank, star.rank)
    FROM queues q
    LEFT JOIN wanted w ON w.name = q.name
    LEFT JOIN wanted star ON star.name = '*'
    WHERE coalesce(w.rank, star.rank) IS NOT NULL
), picked AS (
    SELECT r.id
    FROM ranked
    JOIN runs r ON r.id IN (
        SELECT id FROM runs
        WHERE state = 'available' AND queue = ranked.name
        ORDER BY priority, seq
        LIMIT :demand
    )
    ORDER BY ranked.rank, r.priority, r.seq
    LIMIT :demand
)
UPDATE runs
SET state = 'claimed', claimed_at = :now, worker_name = :worker_name
WHERE id IN (SELECT id FROM picked)
RETURNING id, workflow_id, project_id, queue, priority, seq, run_timeout_ms, claimed_at;

-- name: lock_run
-- The run's state, read before a transition (the write lock is already held).
SELECT id, state, project_id, snapshot_id, joined_at FROM runs WHERE id = :id;

-- name: join_run
UPDATE runs SET joined_at = coalesce(joined_at, :now) WHERE id = :id AND state = :from_state;

-- name: start_run
UPDATE runs SET state = 'started', started_at = :started_at
WHERE id = :id AND state = :from_state;

-- name: complete_run
UPDATE runs
SET state = :to_state, error_type = :error_type, error_message = :error_message,
    final_dataclip_id = :final_dataclip_id, finished_at = :finished_at
WHERE id = :id AND state = :from_state;

-- name: cancel_run
UPDATE runs SET state = 'cancelled', finished_at = :now
WHERE id = :id AND state = :from_state;

-- name: rollback_runs
-- Claimed runs whose worker never joined run:<id> go back to the queue, as if never claimed
-- (spec §4.6). Runs in any other state, or already joined, are left alone.
UPDATE runs SET state = 'available', claimed_at = NULL, worker_name = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'claimed' AND joined_at IS NULL
RETURNING id;

-- name: rollback_unjoined
-- The sweep form of rollback_runs: every run claimed before :claimed_before and never joined.
UPDATE runs SET state = 'available', claimed_at = NULL, worker_name = NULL
WHERE state = 'claimed' AND joined_at IS NULL AND claimed_at < :claimed_before
RETURNING id;

-- name: lose_runs
-- Spec §7.5: runs in flight for longer than their timeout plus a grace period are lost; the
-- error type says whether the worker had started them. Reads only runs_in_flight.
UPDATE runs
SET state = 'lost', finished_at = :now,
    error_type = CASE state WHEN 'claimed' THEN 'LostAfterClaim' ELSE 'LostAfterStart' END
WHERE state IN ('claimed', 'started')
  AND coalesce(started_at, claimed_at)
      + (coalesce(run_timeout_ms, :default_timeout_ms) + :grace_ms) * 1000 < :now
RETURNING id, error_type;

-- name: lose_steps
-- The open steps of lost runs end with them.
UPDATE steps SET exit_reason = 'lost', finished_at = :now
WHERE run_id IN (SELECT value FROM json_each(:run_ids)) AND exit_reason IS NULL;


-- name: insert_step
INSERT INTO steps (id, run_id, job_id, input_dataclip_id, started_at)
VALUES (:id, :run_id, :job_id, :input_dataclip_id, :started_at);

-- name: lock_step
SELECT id, run_id, exit_reason FROM steps WHERE id = :id;

-- name: complete_step
UPDATE steps
SET exit_reason = :exit_reason, error_type = :error_type, error_message = :error_message,
    output_dataclip_id = :output_dataclip_id, finished_at = :finished_at
WHERE id = :id AND exit_reason IS NULL;

-- name: run_steps_among
-- Which of the given step ids are steps of the run.
SELECT id FROM steps
WHERE run_id = :run_id AND id IN (SELECT value FROM json_each(:ids));

-- name: insert_log
INSERT INTO log_lines (run_id, step_id, source, level, message, logged_at)
VALUES (:run_id, :step_id, :source, :level, :message, :logged_at)
RETURNING id;


-- name: get_run
SELECT * FROM runs WHERE id = :id;

-- name: get_steps
SELECT * FROM steps WHERE run_id = :run_id ORDER BY started_at, id;

-- name: list_runs
-- Newest first; the cursor is the seq of the last run of the previous page. Filters left
-- NULL do not apply; time bounds are on inserted_at, from inclusive, until exclusive.
SELECT * FROM runs
WHERE (:project_id IS NULL OR project_id = :project_id)
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND (:work_order_id IS NULL OR work_order_id = :work_order_id)
  AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: get_logs
-- In time order; the cursor is the (logged_at, id) of the last line of the previous page.
SELECT * FROM log_lines
WHERE run_id = :run_id
  AND (:after_logged_at IS NULL OR (logged_at, id) > (:after_logged_at, :after_id))
ORDER BY logged_at, id
LIMIT :limit;

-- name: queue_depth
-- Available runs per queue (read from the runs_claim index alone).
SELECT queue, count(*) AS depth FROM runs WHERE state = 'available' GROUP BY queue;

-- name: get_run_plan
-- What fetch:plan needs: the run and the snapshot it runs.
SELECT r.id, r.project_id, r.dataclip_id, r.starting_node_id, r.options, s.document
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.id = :id;

-- name: run_counts
-- Runs per state, for the coordinator's metrics.
SELECT state, count(*) AS count FROM runs GROUP BY state;


-- name: list_cron_triggers
-- Every enabled cron trigger with its cursor, if it has one yet.
SELECT t.id, t.workflow_id, t.cron_expression, t.timezone,
       c.expression AS cursor_expression, c.timezone AS cursor_timezone, c.next_fire_at
FROM triggers t LEFT JOIN cron_cursors c ON c.trigger_id = t.id
WHERE t.type = 'cron' AND t.enabled = 1
ORDER BY t.id;

-- name: set_cron_cursor
-- A cursor for a new trigger, or for one whose expression or zone changed. A cursor that
-- already has this schedule is left alone, so that a coordinator working from an older read
-- cannot move back a cursor that another one has moved on.
INSERT INTO cron_cursors (trigger_id, expression, timezone, next_fire_at, updated_at)
VALUES (:trigger_id, :expression, :timezone, :next_fire_at, :now)
ON CONFLICT (trigger_id) DO UPDATE
SET expression = excluded.expression, timezone = excluded.timezone,
    next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at
WHERE cron_cursors.expression <> excluded.expression
   OR cron_cursors.timezone <> excluded.timezone;

-- name: advance_cron_cursor
-- Take one tick: only the coordinator that still sees the tick it fires moves the cursor on.
UPDATE cron_cursors
SET next_fire_at = :next_fire_at, last_fired_at = :fired_at, updated_at = :now
WHERE trigger_id = :trigger_id AND next_fire_at = :expected_fire_at
  AND expression = :expression AND timezone = :timezone;


-- name: insert_api_token
INSERT INTO api_tokens (id, name, digest, inserted_at) VALUES (:id, :name, :digest, :now);

-- name: get_api_token
SELECT * FROM api_tokens WHERE id = :id;

-- name: list_api_tokens
SELECT * FROM api_tokens ORDER BY inserted_at, id;

-- name: delete_api_token
DELETE FROM api_tokens WHERE id = :id;
