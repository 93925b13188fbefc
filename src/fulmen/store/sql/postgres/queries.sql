-- Fulmen store: the named queries, PostgreSQL dialect.
--
-- Each query sits under a "-- name: <name>" line, followed by comment lines saying what it
-- does; sqlite/queries.sql has the same names with the same meaning and parameters, and the
-- conformance suite holds both to the same behaviour. Parameters are psycopg's %(name)s; an
-- optional one is cast so that PostgreSQL knows its type when it is NULL. Lists arrive as
-- arrays. Rows a transaction reads before changing them are locked FOR UPDATE, since several
-- coordinators may share the database.


-- name: insert_project
INSERT INTO projects (id, name, concurrency, inserted_at, updated_at)
VALUES (%(id)s, %(name)s, %(concurrency)s, %(now)s, %(now)s)
RETURNING *;

-- name: update_project
UPDATE projects SET name = %(name)s, concurrency = %(concurrency)s, updated_at = %(now)s
WHERE id = %(id)s
RETURNING *;

-- name: get_project
SELECT * FROM projects WHERE id = %(id)s;

-- name: list_projects
-- One page in id order, after the cursor's id.
SELECT * FROM projects
WHERE %(after)s::text IS NULL OR id > %(after)s
ORDER BY id
LIMIT %(limit)s;

-- name: delete_project_workflows
-- First half of deleting a project: its workflows, with their runs (ON DELETE CASCADE), so
-- that no job still holds a credential when the second half deletes those.
DELETE FROM workflows WHERE project_id = %(id)s;

-- name: delete_project
-- Second half: the project with its credentials and dataclips.
DELETE FROM projects WHERE id = %(id)s;


-- name: insert_workflow
INSERT INTO workflows (id, project_id, name, concurrency, lock_version, inserted_at, updated_at)
VALUES (%(id)s, %(project_id)s, %(name)s, %(concurrency)s, 1, %(now)s, %(now)s)
RETURNING *;

-- name: update_workflow
-- Optimistic locking: only when the stored version is the one the caller read (or the caller
-- names none). No row back: the workflow is gone or was saved by someone else meanwhile.
UPDATE workflows
SET name = %(name)s, concurrency = %(concurrency)s, lock_version = lock_version + 1,
    updated_at = %(now)s
WHERE id = %(id)s AND project_id = %(project_id)s
  AND (%(expected_version)s::integer IS NULL OR lock_version = %(expected_version)s)
RETURNING *;

-- name: get_workflow
-- The workflow with its current snapshot (the one of its latest save).
SELECT w.*, s.id AS snapshot_id, s.document
FROM workflows w
JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.lock_version
WHERE w.id = %(id)s;

-- name: list_workflows
SELECT w.*, s.id AS snapshot_id, s.document
FROM workflows w
JOIN workflow_snapshots s ON s.workflow_id = w.id AND s.version = w.lock_version
WHERE w.project_id = %(project_id)s AND (%(after)s::text IS NULL OR w.id > %(after)s)
ORDER BY w.id
LIMIT %(limit)s;

-- name: delete_workflow
-- Takes its snapshots, nodes, edges, work orders, runs, steps and logs with it.
DELETE FROM workflows WHERE id = %(id)s;

-- name: insert_snapshot
INSERT INTO workflow_snapshots (id, workflow_id, version, document, inserted_at)
VALUES (%(id)s, %(workflow_id)s, %(version)s, %(document)s::jsonb, %(now)s);

-- name: get_snapshot
SELECT * FROM workflow_snapshots WHERE id = %(id)s;

-- name: foreign_nodes
-- Which of the given job, trigger and edge ids another workflow already uses.
SELECT id FROM jobs WHERE id = ANY (%(job_ids)s::text[]) AND workflow_id <> %(workflow_id)s
UNION ALL
SELECT id FROM triggers WHERE id = ANY (%(trigger_ids)s::text[]) AND workflow_id <> %(workflow_id)s
UNION ALL
SELECT id FROM edges WHERE id = ANY (%(edge_ids)s::text[]) AND workflow_id <> %(workflow_id)s;

-- name: project_credentials
-- Which of the given credential ids belong to the project.
SELECT id FROM credentials
WHERE project_id = %(project_id)s AND id = ANY (%(ids)s::text[]);

-- name: delete_stale_jobs
-- On save, the workflow's jobs that the new version no longer has.
DELETE FROM jobs
WHERE workflow_id = %(workflow_id)s AND NOT id = ANY (%(job_ids)s::text[]);

-- name: delete_stale_triggers
DELETE FROM triggers
WHERE workflow_id = %(workflow_id)s AND NOT id = ANY (%(trigger_ids)s::text[]);

-- name: delete_stale_edges
DELETE FROM edges
WHERE workflow_id = %(workflow_id)s AND NOT id = ANY (%(edge_ids)s::text[]);

-- name: upsert_job
INSERT INTO jobs (id, workflow_id, project_id, name, body, adaptor, credential_id)
VALUES (%(id)s, %(workflow_id)s, %(project_id)s, %(name)s, %(body)s, %(adaptor)s,
        %(credential_id)s)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, body = excluded.body, adaptor = excluded.adaptor,
    credential_id = excluded.credential_id
WHERE jobs.workflow_id = excluded.workflow_id;

-- name: upsert_trigger
-- Updated in place rather than replaced, so that what hangs off a trigger stays attached.
INSERT INTO triggers (id, workflow_id, type, enabled, cron_expression, timezone, webhook_reply)
VALUES (%(id)s, %(workflow_id)s, %(type)s, %(enabled)s, %(cron_expression)s, %(timezone)s,
        %(webhook_reply)s)
ON CONFLICT (id) DO UPDATE
SET type = excluded.type, enabled = excluded.enabled,
    cron_expression = excluded.cron_expression, timezone = excluded.timezone,
    webhook_reply = excluded.webhook_reply
WHERE triggers.workflow_id = excluded.workflow_id;

-- name: upsert_edge
INSERT INTO edges
    (id, workflow_id, source_trigger_id, source_job_id, target_job_id, condition, enabled)
VALUES (%(id)s, %(workflow_id)s, %(source_trigger_id)s, %(source_job_id)s, %(target_job_id)s,
        %(condition)s, %(enabled)s)
ON CONFLICT (id) DO UPDATE
SET source_trigger_id = excluded.source_trigger_id, source_job_id = excluded.source_job_id,
    target_job_id = excluded.target_job_id, condition = excluded.condition,
    enabled = excluded.enabled
WHERE edges.workflow_id = excluded.workflow_id;

-- name: get_trigger
-- A trigger with the workflow and project it belongs to (what a webhook request needs).
SELECT t.*, w.project_id
FROM triggers t JOIN workflows w ON w.id = t.workflow_id
WHERE t.id = %(id)s;


-- name: upsert_credential
-- Create, or replace the name and body; never moves a credential to another project (then
-- no row comes back).
INSERT INTO credentials (id, project_id, name, sealed_body, inserted_at, updated_at)
VALUES (%(id)s, %(project_id)s, %(name)s, %(sealed_body)s, %(now)s, %(now)s)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, sealed_body = excluded.sealed_body, updated_at = excluded.updated_at
WHERE credentials.project_id = excluded.project_id
RETURNING id, project_id, name, inserted_at, updated_at;

-- name: get_credential
SELECT * FROM credentials WHERE id = %(id)s;

-- name: list_credentials
-- Names and times only: values never leave through a listing.
SELECT id, project_id, name, inserted_at, updated_at
FROM credentials WHERE project_id = %(project_id)s
ORDER BY name, id;

-- name: credential_users
-- A few of the jobs that use a credential (which is then not deleted).
SELECT id FROM jobs WHERE credential_id = %(id)s ORDER BY id LIMIT 5;

-- name: delete_credential
DELETE FROM credentials WHERE id = %(id)s;


-- name: insert_dataclip
INSERT INTO dataclips (id, project_id, type, body, request, wiped_at, inserted_at)
VALUES (%(id)s, %(project_id)s, %(type)s, %(body)s::jsonb, %(request)s::jsonb, %(wiped_at)s,
        %(now)s);

-- name: get_dataclip
SELECT * FROM dataclips WHERE id = %(id)s;

-- name: wipe_dataclip
-- Drops the body, keeps the row: runs and steps still name it, and it says when it went.
UPDATE dataclips SET body = NULL, request = NULL, wiped_at = coalesce(wiped_at, %(now)s)
WHERE id = %(id)s
RETURNING id;


-- name: add_queue
INSERT INTO queues (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING;

-- name: insert_work_order
INSERT INTO work_orders (id, workflow_id, trigger_id, dataclip_id, inserted_at)
VALUES (%(id)s, %(workflow_id)s, %(trigger_id)s, %(dataclip_id)s, %(now)s);

-- name: get_work_order
-- A work order and the state of its latest run (its own status, issue 8).
SELECT o.*,
       (SELECT r.state FROM runs r WHERE r.work_order_id = o.id ORDER BY r.seq DESC LIMIT 1)
           AS state
FROM work_orders o WHERE o.id = %(id)s;

-- name: insert_run
INSERT INTO runs (id, work_order_id, workflow_id, project_id, snapshot_id, dataclip_id,
                  starting_node_id, state, queue, priority, options, run_timeout_ms,
                  inserted_at)
VALUES (%(id)s, %(work_order_id)s, %(workflow_id)s, %(project_id)s, %(snapshot_id)s,
        %(dataclip_id)s, %(starting_node_id)s, 'available', %(queue)s, %(priority)s,
        %(options)s::jsonb, %(run_timeout_ms)s, %(now)s);

-- name: claim_runs
-- Claim up to %(demand)s available runs for one worker, best first, in one statement.
-- Order (worker-protocol.md §4.4): the claimer's queue preference, then priority (0 before 1),
-- then arrival (seq), i.e. FIFO within a priority.
--   wanted   the claim's queue list with each name's position.
--   ranked   every queue this claim may take, with its rank: a listed queue ranks at its
--            position; an unlisted one at the position of '*' when '*' is listed, and not at
--            all otherwise (a list without '*' is a filter).
--   picked   per ranked queue, its first %(demand)s available runs, read from the runs_claim
--            index by one seek (so a claim costs the same with 100 or 100,000 runs queued),
--            locked FOR UPDATE SKIP LOCKED: concurrent claimers pass over each other's rows
--            instead of waiting for them, and a row another claimer has just claimed no
--            longer passes "state = 'available'" when re-checked. Then the best %(demand)s of
--            those few. MATERIALIZED fences the CTE, so the UPDATE touches only these rows.
--            (Rows locked but not picked are released when the statement's transaction ends,
--            a moment later; meanwhile another claimer passes over them, which can reorder
--            two concurrent claims but never gives one run to both.)
-- Issue 8's concurrency limits belong in picked's inner WHERE.
WITH wanted AS (
    SELECT w.name, w.rank FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS w (name, rank)
), ranked AS (
    SELECT q.name, coalesce(w.rank, star.rank) AS rank
    FROM queues q
    LEFT JOIN wanted w ON w.name = q.name
    LEFT JOIN wanted star ON star.name = '*'
    WHERE coalesce(w.rank, star.rank) IS NOT NULL
), picked AS MATERIALIZED (
    SELECT r.id
    FROM ranked
    CROSS JOIN LATERAL (
        SELECT id, priority, seq FROM runs
        WHERE state = 'available' AND queue = ranked.name
        ORDER BY priority, seq
        LIMIT %(demand)s
        FOR UPDATE SKIP LOCKED
    ) r
    ORDER BY ranked.rank, r.priority, r.seq
    LIMIT %(demand)s
)
UPDATE runs
SET state = 'claimed', claimed_at = %(now)s, worker_name = %(worker_name)s
WHERE id IN (SELECT id FROM picked)
RETURNING id, workflow_id, project_id, queue, priority, seq, run_timeout_ms, claimed_at;

-- name: lock_run
-- The run's state, read and locked before a transition.
SELECT id, state, project_id, snapshot_id, joined_at FROM runs WHERE id = %(id)s FOR UPDATE;

-- name: join_run
UPDATE runs SET joined_at = coalesce(joined_at, %(now)s)
WHERE id = %(id)s AND state = %(from_state)s;

-- name: start_run
UPDATE runs SET state = 'started', started_at = %(started_at)s
WHERE id = %(id)s AND state = %(from_state)s;

-- name: complete_run
UPDATE runs
SET state = %(to_state)s, error_type = %(error_type)s, error_message = %(error_message)s,
    final_dataclip_id = %(final_dataclip_id)s, finished_at = %(finished_at)s
WHERE id = %(id)s AND state = %(from_state)s;

-- name: cancel_run
UPDATE runs SET state = 'cancelled', finished_at = %(now)s
WHERE id = %(id)s AND state = %(from_state)s;

-- name: rollback_runs
-- Claimed runs whose worker never joined run:<id> go back to the queue, as if never claimed
-- (spec §4.6). Runs in any other state, or already joined, are left alone.
UPDATE runs SET state = 'available', claimed_at = NULL, worker_name = NULL
WHERE id = ANY (%(ids)s::text[]) AND state = 'claimed' AND joined_at IS NULL
RETURNING id;

-- name: rollback_unjoined
-- The sweep form of rollback_runs: every run claimed before %(claimed_before)s and never
-- joined. SKIP LOCKED: a run another coordinator is handling now is left for the next sweep.
UPDATE runs SET state = 'available', claimed_at = NULL, worker_name = NULL
WHERE id IN (
    SELECT id FROM runs
    WHERE state = 'claimed' AND joined_at IS NULL AND claimed_at < %(claimed_before)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

-- name: lose_runs
-- Spec §7.5: runs in flight for longer than their timeout plus a grace period are lost; the
-- error type says whether the worker had started them. Reads only runs_in_flight; SKIP
-- LOCKED as in Lightning's janitor, so reapers on several coordinators never wait on each
-- other or on a run being completed right now.
UPDATE runs
SET state = 'lost', finished_at = %(now)s,
    error_type = CASE state WHEN 'claimed' THEN 'LostAfterClaim' ELSE 'LostAfterStart' END
WHERE id IN (
    SELECT id FROM runs
    WHERE state IN ('claimed', 'started')
      AND coalesce(started_at, claimed_at)
          + (coalesce(run_timeout_ms, %(default_timeout_ms)s) + %(grace_ms)s)
            * interval '1 millisecond'
          < %(now)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, error_type;

-- name: lose_steps
-- The open steps of lost runs end with them.
UPDATE steps SET exit_reason = 'lost', finished_at = %(now)s
WHERE run_id = ANY (%(run_ids)s::text[]) AND exit_reason IS NULL;


-- name: insert_step
INSERT INTO steps (id, run_id, job_id, input_dataclip_id, started_at)
VALUES (%(id)s, %(run_id)s, %(job_id)s, %(input_dataclip_id)s, %(started_at)s);

-- name: lock_step
SELECT id, run_id, exit_reason FROM steps WHERE id = %(id)s FOR UPDATE;

-- name: complete_step
UPDATE steps
SET exit_reason = %(exit_reason)s, error_type = %(error_type)s,
    error_message = %(error_message)s, output_dataclip_id = %(output_dataclip_id)s,
    finished_at = %(finished_at)s
WHERE id = %(id)s AND exit_reason IS NULL;

-- name: run_steps_among
-- Which of the given step ids are steps of the run.
SELECT id FROM steps WHERE run_id = %(run_id)s AND id = ANY (%(ids)s::text[]);

-- name: insert_log
INSERT INTO log_lines (run_id, step_id, source, level, message, logged_at)
VALUES (%(run_id)s, %(step_id)s, %(source)s, %(level)s, %(message)s, %(logged_at)s)
RETURNING id;


-- name: get_run
SELECT * FROM runs WHERE id = %(id)s;

-- name: get_steps
SELECT * FROM steps WHERE run_id = %(run_id)s ORDER BY started_at, id;

-- name: list_runs
-- Newest first; the cursor is the seq of the last run of the previous page. Filters left
-- NULL do not apply; time bounds are on inserted_at, from inclusive, until exclusive.
SELECT * FROM runs
WHERE (%(project_id)s::text IS NULL OR project_id = %(project_id)s)
  AND (%(workflow_id)s::text IS NULL OR workflow_id = %(workflow_id)s)
  AND (%(work_order_id)s::text IS NULL OR work_order_id = %(work_order_id)s)
  AND (%(states)s::text[] IS NULL OR state = ANY (%(states)s::text[]))
  AND (%(inserted_from)s::timestamptz IS NULL OR inserted_at >= %(inserted_from)s)
  AND (%(inserted_until)s::timestamptz IS NULL OR inserted_at < %(inserted_until)s)
  AND (%(before_seq)s::bigint IS NULL OR seq < %(before_seq)s)
ORDER BY seq DESC
LIMIT %(limit)s;

-- name: get_logs
-- In time order; the cursor is the (logged_at, id) of the last line of the previous page.
SELECT * FROM log_lines
WHERE run_id = %(run_id)s
  AND (%(after_logged_at)s::timestamptz IS NULL
       OR (logged_at, id) > (%(after_logged_at)s::timestamptz, %(after_id)s::bigint))
ORDER BY logged_at, id
LIMIT %(limit)s;

-- name: queue_depth
-- Available runs per queue (read from the runs_claim index).
SELECT queue, count(*) AS depth FROM runs WHERE state = 'available' GROUP BY queue;

-- name: get_run_plan
-- What fetch:plan needs: the run and the snapshot it runs.
SELECT r.id, r.project_id, r.dataclip_id, r.starting_node_id, r.options, s.document
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.id = %(id)s;

-- name: run_counts
-- Runs per state, for the coordinator's metrics.
SELECT state, count(*) AS count FROM runs GROUP BY state;


-- name: list_cron_triggers
-- Every enabled cron trigger with its cursor, if it has one yet.
SELECT t.id, t.workflow_id, t.cron_expression, t.timezone,
       c.expression AS cursor_expression, c.timezone AS cursor_timezone, c.next_fire_at
FROM triggers t LEFT JOIN cron_cursors c ON c.trigger_id = t.id
WHERE t.type = 'cron' AND t.enabled
ORDER BY t.id;

-- name: set_cron_cursor
-- A cursor for a new trigger, or for one whose expression or zone changed. A cursor that
-- already has this schedule is left alone, so that a coordinator working from an older read
-- cannot move back a cursor that another one has moved on.
INSERT INTO cron_cursors (trigger_id, expression, timezone, next_fire_at, updated_at)
VALUES (%(trigger_id)s, %(expression)s, %(timezone)s, %(next_fire_at)s, %(now)s)
ON CONFLICT (trigger_id) DO UPDATE
SET expression = excluded.expression, timezone = excluded.timezone,
    next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at
WHERE cron_cursors.expression <> excluded.expression
   OR cron_cursors.timezone <> excluded.timezone;

-- name: advance_cron_cursor
-- Take one tick: only the coordinator that still sees the tick it fires moves the cursor on
-- (the row lock makes a second one wait, then find next_fire_at changed).
UPDATE cron_cursors
SET next_fire_at = %(next_fire_at)s, last_fired_at = %(fired_at)s, updated_at = %(now)s
WHERE trigger_id = %(trigger_id)s AND next_fire_at = %(expected_fire_at)s
  AND expression = %(expression)s AND timezone = %(timezone)s;


-- name: insert_api_token
INSERT INTO api_tokens (id, name, digest, inserted_at)
VALUES (%(id)s, %(name)s, %(digest)s, %(now)s);

-- name: get_api_token
SELECT * FROM api_tokens WHERE id = %(id)s;

-- name: list_api_tokens
SELECT * FROM api_tokens ORDER BY inserted_at, id;

-- name: delete_api_token
DELETE FROM api_tokens WHERE id = %(id)s;
