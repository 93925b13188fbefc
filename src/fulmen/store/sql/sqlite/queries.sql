-- Fulmen store: the named queries, SQLite dialect.
--
-- Each query sits under a "-- name: <name>" line, followed by comment lines saying what it
-- does; postgres/queries.sql has the same names with the same meaning and parameters, and the
-- conformance suite holds both to the same behaviour. Parameters are sqlite3's :name. Lists
-- arrive as JSON text (read with json_each) and times as integer microseconds since the epoch.
-- Writes run inside BEGIN IMMEDIATE (fulmen/store/sqlite.py), so a read followed by a write
-- in one transaction sees no interleaved writer.


-- name: insert_project
INSERT INTO projects (id, name, concurrency, history_retention_period,
                      dataclip_retention_period, retention_policy, viewers_see_bodies,
                      inserted_at, updated_at)
VALUES (:id, :name, :concurrency, :history_retention_period, :dataclip_retention_period,
        :retention_policy, :viewers_see_bodies, :now, :now)
RETURNING *;

-- name: update_project
UPDATE projects
SET name = :name, concurrency = :concurrency,
    history_retention_period = :history_retention_period,
    dataclip_retention_period = :dataclip_retention_period,
    retention_policy = :retention_policy,
    viewers_see_bodies = :viewers_see_bodies, updated_at = :now
WHERE id = :id
RETURNING *;

-- name: lock_project
-- Before a save that may change the project's limit, or one of its workflows' (the write
-- lock is already held, so nothing changes meanwhile; PostgreSQL needs a row lock here).
SELECT id, concurrency FROM projects WHERE id = :id;

-- name: set_project_runs_limited
-- The project's limit changed: its available runs are rationed if it or their workflow has
-- a limit.
UPDATE runs
SET limited = :project_limited OR EXISTS (
    SELECT 1 FROM workflows w WHERE w.id = runs.workflow_id AND w.concurrency IS NOT NULL)
WHERE project_id = :id AND state = 'available';

-- name: projects_with_retention
-- The projects the retention sweep has something to do for.
SELECT * FROM projects
WHERE history_retention_period IS NOT NULL OR dataclip_retention_period IS NOT NULL
   OR retention_policy <> 'retain_all'
ORDER BY id;

-- name: get_project
SELECT * FROM projects WHERE id = :id;

-- name: list_projects
-- One page in id order, after the cursor's id; only those of :ids unless it is NULL.
SELECT * FROM projects
WHERE (:after IS NULL OR id > :after)
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
ORDER BY id
LIMIT :limit;

-- name: delete_project_work_orders
-- A batch of deleting a project, before its rows go: up to :limit of its work orders, with
-- their runs, steps and logs (ON DELETE CASCADE), as many as fit :max_bytes of log messages
-- (at least one; store/batches.py).
DELETE FROM work_orders WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.size, sum(c.size) OVER (ORDER BY c.id ROWS UNBOUNDED PRECEDING) AS upto
        FROM (
            SELECT o.id,
                   (SELECT coalesce(sum(h.bytes), 0)
                    FROM runs r JOIN log_heads h ON h.run_id = r.id
                    WHERE r.work_order_id = o.id) AS size
            FROM workflows w JOIN work_orders o ON o.workflow_id = w.id
            WHERE w.project_id = :project_id
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);

-- name: delete_project_dataclips
-- The next batches, once its work orders are gone: up to :limit of its dataclips, oldest
-- first, as many as fit :max_bytes of bodies (at least one).
DELETE FROM dataclips WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.body_bytes AS size,
               sum(c.body_bytes) OVER (ORDER BY c.inserted_at, c.id ROWS UNBOUNDED PRECEDING)
                   AS upto
        FROM (
            SELECT d.id, d.inserted_at, d.body_bytes FROM dataclips d
            WHERE d.project_id = :project_id
            ORDER BY d.inserted_at
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);

-- name: delete_project_workflows
-- First half of deleting a project: its workflows, with their runs (ON DELETE CASCADE), so
-- that no job still holds a credential when the second half deletes those.
DELETE FROM workflows WHERE project_id = :id;

-- name: delete_project_keychains
-- Then its keychains (ON DELETE CASCADE takes their entries), before the credentials they
-- name.
DELETE FROM keychains WHERE project_id = :id;

-- name: delete_project
-- Second half: the project with its credentials and dataclips.
DELETE FROM projects WHERE id = :id;


-- name: insert_workflow
INSERT INTO workflows (id, project_id, name, concurrency, max_retries, retry_backoff_ms,
                       retry_backoff_max_ms, retry_on_fail, lock_version, inserted_at,
                       updated_at)
VALUES (:id, :project_id, :name, :concurrency, :max_retries, :retry_backoff_ms,
        :retry_backoff_max_ms, :retry_on_fail, 1, :now, :now)
RETURNING *;

-- name: lock_workflow
-- Before a save: see lock_project.
SELECT id, concurrency FROM workflows WHERE id = :id;

-- name: set_workflow_runs_limited
-- The workflow's limit changed: its available runs follow.
UPDATE runs SET limited = :limited
WHERE workflow_id = :workflow_id AND state = 'available' AND limited <> :limited;

-- name: update_workflow
-- Optimistic locking: only when the stored version is the one the caller read (or the caller
-- names none). No row back: the workflow is gone or was saved by someone else meanwhile.
UPDATE workflows
SET name = :name, concurrency = :concurrency, max_retries = :max_retries,
    retry_backoff_ms = :retry_backoff_ms, retry_backoff_max_ms = :retry_backoff_max_ms,
    retry_on_fail = :retry_on_fail, lock_version = lock_version + 1, updated_at = :now
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

-- name: delete_workflow_work_orders
-- A batch of deleting a workflow, before its row goes: up to :limit of its work orders, with
-- their runs, steps and logs (ON DELETE CASCADE), as many as fit :max_bytes of log messages
-- (at least one; store/batches.py).
DELETE FROM work_orders WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.size, sum(c.size) OVER (ORDER BY c.id ROWS UNBOUNDED PRECEDING) AS upto
        FROM (
            SELECT o.id,
                   (SELECT coalesce(sum(h.bytes), 0)
                    FROM runs r JOIN log_heads h ON h.run_id = r.id
                    WHERE r.work_order_id = o.id) AS size
            FROM work_orders o
            WHERE o.workflow_id = :workflow_id
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);

-- name: delete_workflow
-- Takes its snapshots, nodes, edges and what is left of its work orders, runs, steps and
-- logs with it (the store deletes those in batches first: delete_workflow_work_orders).
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
INSERT INTO jobs (id, workflow_id, project_id, name, body, adaptor, credential_id, keychain_id,
                  language, requirements)
VALUES (:id, :workflow_id, :project_id, :name, :body, :adaptor, :credential_id, :keychain_id,
        :language, :requirements)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, body = excluded.body, adaptor = excluded.adaptor,
    credential_id = excluded.credential_id, keychain_id = excluded.keychain_id,
    language = excluded.language, requirements = excluded.requirements
WHERE jobs.workflow_id = excluded.workflow_id;

-- name: upsert_trigger
-- Updated in place rather than replaced, so that what hangs off a trigger stays attached.
INSERT INTO triggers (id, workflow_id, type, enabled, cron_expression, timezone, webhook_reply,
                      cron_cursor, cron_cursor_job_id)
VALUES (:id, :workflow_id, :type, :enabled, :cron_expression, :timezone, :webhook_reply,
        :cron_cursor, :cron_cursor_job_id)
ON CONFLICT (id) DO UPDATE
SET type = excluded.type, enabled = excluded.enabled,
    cron_expression = excluded.cron_expression, timezone = excluded.timezone,
    webhook_reply = excluded.webhook_reply, cron_cursor = excluded.cron_cursor,
    cron_cursor_job_id = excluded.cron_cursor_job_id
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
-- A trigger with the workflow and project it belongs to (what a webhook request needs), and
-- whether it has webhook-auth methods (a request to one without reads no secrets).
SELECT t.*, w.project_id,
       EXISTS (SELECT 1 FROM trigger_auth_methods a WHERE a.trigger_id = t.id) AS has_auth
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
INSERT INTO dataclips (id, project_id, type, body, request, body_bytes, wiped_at, inserted_at)
VALUES (:id, :project_id, :type, :body, :request, :body_bytes, :wiped_at, :now);

-- name: get_dataclip
SELECT * FROM dataclips WHERE id = :id;

-- name: dataclip_project
-- The project of a dataclip, for the checks of a step's input and a run's final dataclip:
-- without its body, which can be megabytes.
SELECT project_id FROM dataclips WHERE id = :id;

-- name: wipe_dataclip
-- Drops the body, keeps the row: runs and steps still name it, and it says when it went.
UPDATE dataclips
SET body = NULL, request = NULL, body_bytes = 0, wiped_at = coalesce(wiped_at, :now)
WHERE id = :id;


-- name: wipe_unused_dataclip
-- A run that does not keep bodies ended: its input goes, unless a run that has not ended
-- still needs it (its retry, say).
UPDATE dataclips
SET body = NULL, request = NULL, body_bytes = 0, wiped_at = coalesce(wiped_at, :now)
WHERE id = :id AND NOT EXISTS (
    SELECT 1 FROM runs r
    WHERE r.dataclip_id = :id AND r.state IN ('available', 'claimed', 'started'));

-- name: add_queue
INSERT INTO queues (name) VALUES (:name) ON CONFLICT (name) DO NOTHING;

-- name: insert_work_order
INSERT INTO work_orders (id, workflow_id, trigger_id, dataclip_id, inserted_at)
VALUES (:id, :workflow_id, :trigger_id, :dataclip_id, :now);

-- name: lock_enqueue_limits
-- What an enqueue copies into the run: whether a limit rations it, and whether its project
-- keeps bodies (read under the write lock, so no save changes them meanwhile).
SELECT w.concurrency AS workflow_limit, p.concurrency AS project_limit, p.retention_policy
FROM workflows w JOIN projects p ON p.id = w.project_id
WHERE w.id = :id;

-- name: get_work_order
-- A work order and the state of its latest run (its own status, issue 8).
SELECT o.*,
       (SELECT r.state FROM runs r WHERE r.work_order_id = o.id ORDER BY r.seq DESC LIMIT 1)
           AS state
FROM work_orders o WHERE o.id = :id;

-- name: insert_run
INSERT INTO runs (id, work_order_id, workflow_id, project_id, snapshot_id, dataclip_id,
                  starting_node_id, state, queue, priority, options, run_timeout_ms,
                  attempt, retry_of, rerun_of, not_before, limited, languages, inserted_at)
VALUES (:id, :work_order_id, :workflow_id, :project_id, :snapshot_id, :dataclip_id,
        :starting_node_id, 'available', :queue, :priority, :options, :run_timeout_ms,
        :attempt, :retry_of, :rerun_of, :not_before, :limited, :languages, :now);

-- name: claim_lock_limits
-- First statement of a claim (postgres/queries.sql says why it is there). SQLite's write
-- lock, held from BEGIN IMMEDIATE, already lets one claim at a time count the runs in
-- flight, so this takes no lock: it only says whether runs under a limit are waiting.
SELECT 1 AS waiting WHERE EXISTS (SELECT 1 FROM runs WHERE state = 'available' AND limited = 1);

-- name: claim_runs
-- Claim up to :demand available runs for one worker, best first, in one statement (the
-- caller wraps it in BEGIN IMMEDIATE, SQLite's single writer lock, so no two claims overlap).
-- Order (worker-protocol.md §4.4): the claimer's queue preference, then priority (0 before 1),
-- then arrival (seq), i.e. FIFO within a priority. A run whose not_before is still ahead (a
-- retry waiting for its backoff) is not available yet. A run needs a set of job languages
-- (runs.languages); :languages (JSON) lists every set the worker can run all of
-- (fulmen.plan.runnable_masks), and a run whose set is not among them is left for another.
--   wanted   the claim's queue list (JSON) with each name's position.
--   allowed  the language sets the claimer can run.
--   ranked   every queue this claim may take, with its rank: a listed queue ranks at its
--            position; an unlisted one at the position of '*' when '*' is listed, and not at
--            all otherwise (a list without '*' is a filter).
--   open     runs under no limit: per ranked queue and allowed language set, its first
--            :demand available runs, read from the runs_claim_open index by one seek (so a
--            claim costs the same with 100 or 100,000 runs queued).
--   budget   (claim_runs runs only when runs under a limit wait, else claim_open_runs)
--            every workflow under a
--            limit, its own or its project's, with the slots left: the limit minus its runs
--            in flight (claimed or started), for the workflow and for its project.
--   heads    per rationed workflow, its first :demand available runs in the workflow's own
--            order (priority, then seq: 1 means strictly one at a time, in order, and a
--            manual run keeps its priority), of which the first workflow_free may go...
--   released ...and of those, per project, the first project_free in the project's order.
--            The claimer's queues and languages filter them only now: a run that is not next
--            in its workflow's order is never taken because the next one sits in another
--            queue or needs a language the claimer does not run.
--   picked   the best :demand of both kinds.
WITH wanted (name, rank) AS (
    SELECT value, key FROM json_each(:queues)
), allowed (mask) AS (
    SELECT value FROM json_each(:languages)
), ranked (name, rank) AS (
    SELECT q.name, coalesce(w.rank, star.rank)
    FROM queues q
    LEFT JOIN wanted w ON w.name = q.name
    LEFT JOIN wanted star ON star.name = '*'
    WHERE coalesce(w.rank, star.rank) IS NOT NULL
), open AS (
    SELECT r.id, ranked.rank, r.priority, r.seq
    FROM ranked CROSS JOIN allowed
    JOIN runs r ON r.id IN (
        SELECT id FROM runs
        WHERE state = 'available' AND limited = 0 AND queue = ranked.name
          AND languages = allowed.mask
          AND (not_before IS NULL OR not_before <= :now)
        ORDER BY priority, seq
        LIMIT :demand
    )
), budget AS (
    SELECT w.id AS workflow_id, w.project_id,
           w.concurrency - (SELECT count(*) FROM runs f
                            WHERE f.workflow_id = w.id AND f.state IN ('claimed', 'started'))
               AS workflow_free,
           p.concurrency - (SELECT count(*) FROM runs f
                            WHERE f.project_id = p.id AND f.state IN ('claimed', 'started'))
               AS project_free
    FROM workflows w JOIN projects p ON p.id = w.project_id
    WHERE (w.concurrency IS NOT NULL OR p.concurrency IS NOT NULL)
), heads AS (
    SELECT r.id, r.queue, r.languages, r.priority, r.seq, b.project_id, b.workflow_free,
           b.project_free,
           row_number() OVER (PARTITION BY b.workflow_id ORDER BY r.priority, r.seq) AS place
    FROM budget b
    JOIN runs r ON r.id IN (
        SELECT id FROM runs
        WHERE workflow_id = b.workflow_id AND state = 'available' AND limited = 1
          AND (not_before IS NULL OR not_before <= :now)
        ORDER BY priority, seq
        LIMIT :demand
    )
), released AS (
    SELECT id, queue, languages, priority, seq FROM (
        SELECT h.*, row_number() OVER (PARTITION BY h.project_id ORDER BY h.priority, h.seq)
                   AS project_place
        FROM heads h
        WHERE h.workflow_free IS NULL OR h.place <= h.workflow_free
    ) h
    WHERE h.project_free IS NULL OR h.project_place <= h.project_free
), picked AS (
    SELECT c.id FROM (
        SELECT id, rank, priority, seq FROM open
        UNION ALL
        SELECT r.id, ranked.rank, r.priority, r.seq
        FROM released r JOIN ranked ON ranked.name = r.queue
        WHERE r.languages IN (SELECT mask FROM allowed)
    ) c
    ORDER BY c.rank, c.priority, c.seq
    LIMIT :demand
)
UPDATE runs
SET state = 'claimed', claimed_at = :now, worker_name = :worker_name,
    joined_at = :joined_at, joined_by_claim = :by_claim
WHERE id IN (SELECT id FROM picked) AND state = 'available'
RETURNING id, workflow_id, project_id, queue, priority, seq, run_timeout_ms, claimed_at,
    dataclip_id;

-- name: claim_open_runs
-- claim_runs when no run under a limit is waiting (claim_lock_limits found none), which is
-- nearly always: only its open part, a seventh of its cost (no temporary indexes for the
-- queue list, no rationed workflows to scan). The same order and the same rows.
WITH allowed (mask) AS (
    SELECT value FROM json_each(:languages)
), ranked (name, rank) AS (
    SELECT name, rank FROM (
        SELECT q.name AS name, coalesce(
            (SELECT key FROM json_each(:queues) WHERE value = q.name),
            (SELECT key FROM json_each(:queues) WHERE value = '*')) AS rank
        FROM queues q)
    WHERE rank IS NOT NULL
), picked AS (
    SELECT r.id
    FROM ranked CROSS JOIN allowed
    JOIN runs r ON r.id IN (
        SELECT id FROM runs
        WHERE state = 'available' AND limited = 0 AND queue = ranked.name
          AND languages = allowed.mask
          AND (not_before IS NULL OR not_before <= :now)
        ORDER BY priority, seq
        LIMIT :demand
    )
    ORDER BY ranked.rank, r.priority, r.seq
    LIMIT :demand
)
UPDATE runs
SET state = 'claimed', claimed_at = :now, worker_name = :worker_name,
    joined_at = :joined_at, joined_by_claim = :by_claim
WHERE id IN (SELECT id FROM picked) AND state = 'available'
RETURNING id, workflow_id, project_id, queue, priority, seq, run_timeout_ms, claimed_at,
    dataclip_id;

-- name: lock_run
-- The run, read before a transition (the write lock is already held).
SELECT * FROM runs WHERE id = :id;

-- name: run_policies
-- What happens after a run of this workflow ends: its retries, and whether bodies are kept.
SELECT w.max_retries, w.retry_backoff_ms, w.retry_backoff_max_ms, w.retry_on_fail,
       p.retention_policy
FROM workflows w JOIN projects p ON p.id = w.project_id
WHERE w.id = :workflow_id;

-- name: request_cancel
-- Someone asked to cancel a run a worker has; the worker is told (the first time counts).
UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, :now)
WHERE id = :id AND state = :from_state;

-- name: cancel_requested_runs
-- Runs in flight whose worker was asked to cancel them (and may not have heard).
SELECT id FROM runs
WHERE cancel_requested_at IS NOT NULL AND state IN ('claimed', 'started')
ORDER BY cancel_requested_at, id;

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
-- (spec §4.6). Runs in any other state, or already joined, are left alone; a run joined by
-- its claim (claim:fetch, joined_by_claim) goes back too while still claimed: only
-- the claim's own reply, lost, names it here (the sweep below reads unjoined runs only).
UPDATE runs SET state = 'available', claimed_at = NULL, worker_name = NULL, joined_at = NULL,
    joined_by_claim = 0
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'claimed'
  AND (joined_at IS NULL OR joined_by_claim = 1)
RETURNING id;

-- name: unjoined_claims
-- What the sweep form of rollback_runs rolls back: every run claimed before :claimed_before
-- and never joined, with its claim (for the note on the run, issue 14). The second state
-- term is runs_in_flight's condition, and the order that index's: SQLite reads the runs in
-- flight claimed before then (ordered by id, it read every run ever made, in id order: 1.8 s
-- at a million runs, at every sweep of the reaper).
SELECT id, worker_name, claimed_at FROM runs
WHERE state = 'claimed' AND state IN ('claimed', 'started') AND joined_at IS NULL
  AND claimed_at < :claimed_before
ORDER BY claimed_at, id;

-- name: lose_runs
-- Spec §7.5: runs in flight for longer than their timeout plus a grace period are lost; the
-- error type says whether the worker had started them. Reads only runs_in_flight.
UPDATE runs
SET state = 'lost', finished_at = :now,
    error_type = CASE state WHEN 'claimed' THEN 'LostAfterClaim' ELSE 'LostAfterStart' END
WHERE state IN ('claimed', 'started')
  AND coalesce(started_at, claimed_at)
      + (coalesce(run_timeout_ms, :default_timeout_ms) + :grace_ms) * 1000 < :now
RETURNING *;

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

-- -- log frames sent again (issue 14, events.append_logs) -----------------------------------

-- name: advance_log_head
-- The run's last frame of log lines is now :digest. No row back: the run does not exist, or
-- its last frame already was :digest (the same frame sent again, its reply lost). Waits for
-- another transaction advancing the same head. :bytes, its lines' messages, add to the run's.
INSERT INTO log_heads (run_id, digest, bytes)
SELECT id, :digest, :bytes FROM runs WHERE id = :run_id
ON CONFLICT (run_id) DO UPDATE
SET digest = excluded.digest, bytes = log_heads.bytes + excluded.bytes
    WHERE log_heads.digest <> excluded.digest
RETURNING run_id;

-- name: latest_log_ids
-- The ids of the run's latest :count lines stamped from :first to :last, newest first.
SELECT id FROM log_lines
WHERE run_id = :run_id AND logged_at BETWEEN :first AND :last
ORDER BY id DESC
LIMIT :count;


-- name: get_run
-- The run with the version of the workflow it runs.
SELECT r.*, s.version AS snapshot_version
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.id = :id;

-- name: get_step
-- A step with what a rerun from it needs of its run.
SELECT s.*, r.work_order_id, r.workflow_id, r.project_id
FROM steps s JOIN runs r ON r.id = s.run_id
WHERE s.id = :id;

-- name: latest_step_of_job
-- The step of a job in the latest run of a work order that has one (a rerun from that job).
SELECT s.*
FROM runs r JOIN steps s ON s.run_id = r.id
WHERE r.work_order_id = :work_order_id AND s.job_id = :job_id
ORDER BY r.seq DESC, s.started_at DESC
LIMIT 1;

-- name: first_run_of_work_order
SELECT * FROM runs WHERE work_order_id = :work_order_id ORDER BY seq LIMIT 1;

-- name: get_steps
SELECT * FROM steps WHERE run_id = :run_id ORDER BY started_at, id;

-- name: list_runs
-- Newest first; the cursor is the seq of the last run of the previous page. Filters left
-- NULL do not apply; time bounds are on inserted_at, from inclusive, until exclusive.
-- For a listing of no one work order, workflow or project: for one, reads.py takes
-- list_runs_of_work_order, _workflow or _project, which read its index. This query reads
-- the runs newest first until a page is full: for a quiet workflow in a long history that
-- was every run (some 120 ms at a million, on SQLite on the event loop: bench/history.py).
-- A member's listing (of some projects only) merges list_runs_of_project's of each; a text
-- search's window is read the same ways (reads.py, search_window).
SELECT r.*, s.version AS snapshot_version
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE (:project_id IS NULL OR r.project_id = :project_id)
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:workflow_id IS NULL OR r.workflow_id = :workflow_id)
  AND (:work_order_id IS NULL OR r.work_order_id = :work_order_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: list_runs_of_work_order
-- list_runs with :work_order_id given (store/reads.py): read through runs_work_order,
-- newest first, however many other runs the history holds.
SELECT r.*, s.version AS snapshot_version
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.work_order_id = :work_order_id
  AND (:project_id IS NULL OR r.project_id = :project_id)
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:workflow_id IS NULL OR r.workflow_id = :workflow_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: list_runs_of_workflow
-- list_runs with :workflow_id given (store/reads.py): read through runs_workflow,
-- newest first, however many other runs the history holds.
SELECT r.*, s.version AS snapshot_version
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.workflow_id = :workflow_id
  AND (:project_id IS NULL OR r.project_id = :project_id)
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:work_order_id IS NULL OR r.work_order_id = :work_order_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: list_runs_of_project
-- list_runs with :project_id given (store/reads.py): read through runs_project,
-- newest first, however many other runs the history holds.
SELECT r.*, s.version AS snapshot_version
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.project_id = :project_id
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:workflow_id IS NULL OR r.workflow_id = :workflow_id)
  AND (:work_order_id IS NULL OR r.work_order_id = :work_order_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: search_window
-- A text search's window of the runs (reads.py): the seqs of the :limit runs list_runs would
-- list, read as it reads them; search_runs then looks in them.
SELECT r.seq FROM runs r
WHERE (:project_id IS NULL OR r.project_id = :project_id)
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:workflow_id IS NULL OR r.workflow_id = :workflow_id)
  AND (:work_order_id IS NULL OR r.work_order_id = :work_order_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: search_window_of_work_order
-- A text search's window of one work order's runs (reads.py): the seqs of the :limit runs
-- list_runs_of_work_order would list, read as it reads them; search_runs then looks in them.
SELECT r.seq FROM runs r
WHERE r.work_order_id = :work_order_id
  AND (:project_id IS NULL OR r.project_id = :project_id)
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:workflow_id IS NULL OR r.workflow_id = :workflow_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: search_window_of_workflow
-- A text search's window of one workflow's runs (reads.py): the seqs of the :limit runs
-- list_runs_of_workflow would list, read as it reads them; search_runs then looks in them.
SELECT r.seq FROM runs r
WHERE r.workflow_id = :workflow_id
  AND (:project_id IS NULL OR r.project_id = :project_id)
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:work_order_id IS NULL OR r.work_order_id = :work_order_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: search_window_of_project
-- A text search's window of one project's runs (reads.py): the seqs of the :limit runs
-- list_runs_of_project would list, read as it reads them; search_runs then looks in them.
SELECT r.seq FROM runs r
WHERE r.project_id = :project_id
  AND (:project_ids IS NULL OR r.project_id IN (SELECT value FROM json_each(:project_ids)))
  AND (:workflow_id IS NULL OR r.workflow_id = :workflow_id)
  AND (:work_order_id IS NULL OR r.work_order_id = :work_order_id)
  AND (:states IS NULL OR r.state IN (SELECT value FROM json_each(:states)))
  AND (:inserted_from IS NULL OR r.inserted_at >= :inserted_from)
  AND (:inserted_until IS NULL OR r.inserted_at < :inserted_until)
  AND (:before_seq IS NULL OR r.seq < :before_seq)
ORDER BY r.seq DESC
LIMIT :limit;

-- name: search_runs
-- list_runs with text: of :seqs (a page's window, newest first: reads.py reads it with
-- search_window or its anchored kin, as the listing of the other filters would), the first
-- :limit runs whose log lines or dataclips (the run's input and final output, its steps' inputs
-- and outputs) contain :pattern, a LIKE pattern escaped with '\', in the window's order. Bodies
-- are searched only in the projects of :body_projects (unless NULL): where the caller may read
-- them; elsewhere a run matches by its log lines alone.
SELECT r.*, s.version AS snapshot_version
FROM json_each(:seqs) w
JOIN runs r ON r.seq = w.value
JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE EXISTS (SELECT 1 FROM log_lines l
              WHERE l.run_id = r.id AND l.message LIKE :pattern ESCAPE '\')
   OR ((:body_projects IS NULL
        OR r.project_id IN (SELECT value FROM json_each(:body_projects)))
       AND (EXISTS (SELECT 1 FROM dataclips d
                    WHERE d.id IN (r.dataclip_id, r.final_dataclip_id)
                      AND d.body LIKE :pattern ESCAPE '\')
            OR EXISTS (SELECT 1 FROM steps st
                       JOIN dataclips d ON d.id IN (st.input_dataclip_id, st.output_dataclip_id)
                       WHERE st.run_id = r.id AND d.body LIKE :pattern ESCAPE '\')))
ORDER BY w.key
LIMIT :limit;

-- name: get_logs
-- In time order; the cursor is the (logged_at, id) of the last line of the previous page.
SELECT * FROM log_lines
WHERE run_id = :run_id
  AND (:after_logged_at IS NULL OR (logged_at, id) > (:after_logged_at, :after_id))
ORDER BY logged_at, id
LIMIT :limit;

-- name: queue_depth
-- Available runs per queue that may be claimed now (a retry waiting for its backoff is not
-- counted until its time comes, so that workers are not woken for it before then).
-- The second state term is runs_pending_input's condition: SQLite reads that index's
-- runs then, not every run ever made (it does not see that the first term implies it).
SELECT queue, count(*) AS depth FROM runs
WHERE state = 'available' AND state IN ('available', 'claimed', 'started')
  AND (not_before IS NULL OR not_before <= :now)
GROUP BY queue;

-- name: get_run_plan
-- What fetch:plan needs: the run and the snapshot it runs.
SELECT r.id, r.project_id, r.dataclip_id, r.starting_node_id, r.options, r.snapshot_id,
       s.document
FROM runs r JOIN workflow_snapshots s ON s.id = r.snapshot_id
WHERE r.id = :id;

-- name: run_counts
-- Runs queued or in flight per state, for the coordinator's metrics. The state term is
-- runs_pending_input's condition, word for word: the runs read are those of that index,
-- never the ended ones, however many there are.
SELECT state, count(*) AS count FROM runs
WHERE state IN ('available', 'claimed', 'started')
GROUP BY state;

-- name: run_endings
-- Runs ended per final state, ever (0019_run_endings.sql).
SELECT state, sum(count) AS count FROM run_endings GROUP BY state;

-- name: count_run_ending
-- One more run ended in :state (a shard of its count: endings.py).
INSERT INTO run_endings (state, shard, count) VALUES (:state, :shard, 1)
ON CONFLICT (state, shard) DO UPDATE SET count = run_endings.count + 1;


-- name: list_cron_triggers
-- Every enabled cron trigger with its cursor, if it has one yet.
SELECT t.id, t.workflow_id, t.cron_expression, t.timezone, t.cron_cursor,
       t.cron_cursor_job_id, c.expression AS cursor_expression, c.timezone AS cursor_timezone, c.next_fire_at
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


-- name: last_run_final_state
-- The cron cursor 'last_run': the final state of the workflow's last successful run that
-- still has one (a wiped body is no state to start from).
SELECT r.final_dataclip_id AS dataclip_id
FROM runs r JOIN dataclips d ON d.id = r.final_dataclip_id
WHERE r.workflow_id = :workflow_id AND r.state = 'success' AND d.wiped_at IS NULL
ORDER BY r.seq DESC
LIMIT 1;

-- name: last_job_output
-- The cron cursor 'job': the job's last successful output that is still stored.
SELECT s.output_dataclip_id AS dataclip_id
FROM steps s JOIN dataclips d ON d.id = s.output_dataclip_id
WHERE s.job_id = :job_id AND s.exit_reason = 'success' AND d.wiped_at IS NULL
ORDER BY s.finished_at DESC
LIMIT 1;


-- name: insert_api_token
INSERT INTO api_tokens (id, name, digest, inserted_at, user_id, project_id, role)
VALUES (:id, :name, :digest, :now, :user_id, :project_id, :role);

-- name: get_api_token
SELECT * FROM api_tokens WHERE id = :id;

-- name: list_api_tokens
SELECT * FROM api_tokens ORDER BY inserted_at, id;

-- name: list_user_api_tokens
SELECT * FROM api_tokens WHERE user_id = :user_id ORDER BY inserted_at, id;

-- name: list_project_api_tokens
-- A project's service tokens.
SELECT * FROM api_tokens WHERE project_id = :project_id ORDER BY inserted_at, id;

-- name: adopt_operator_api_tokens
-- The first instance admin takes over the tokens made before any user existed.
UPDATE api_tokens SET user_id = :user_id WHERE user_id IS NULL AND project_id IS NULL;

-- name: delete_api_token
DELETE FROM api_tokens WHERE id = :id;

-- name: touch_api_token
-- A token was used now (the check that it is valid came first).
UPDATE api_tokens SET last_used_at = :now WHERE id = :id;



-- name: insert_webhook_auth_method
INSERT INTO webhook_auth_methods
    (id, project_id, name, auth_type, sealed_secret, inserted_at, updated_at)
VALUES (:id, :project_id, :name, :auth_type, :sealed_secret, :now, :now);

-- name: get_webhook_auth_method
-- Without the secret: it leaves the store only through trigger_auth_secrets.
SELECT id, project_id, name, auth_type, inserted_at, updated_at
FROM webhook_auth_methods WHERE id = :id;

-- name: list_webhook_auth_methods
SELECT id, project_id, name, auth_type, inserted_at, updated_at
FROM webhook_auth_methods WHERE project_id = :project_id
ORDER BY name, id;

-- name: delete_webhook_auth_method
-- Detaches it from every trigger too (ON DELETE CASCADE).
DELETE FROM webhook_auth_methods WHERE id = :id;

-- name: detach_trigger_auth_methods
DELETE FROM trigger_auth_methods WHERE trigger_id = :trigger_id;

-- name: attach_trigger_auth_method
INSERT INTO trigger_auth_methods (trigger_id, method_id)
VALUES (:trigger_id, :method_id)
ON CONFLICT DO NOTHING;

-- name: list_trigger_auth_methods
SELECT m.id, m.project_id, m.name, m.auth_type, m.inserted_at, m.updated_at
FROM trigger_auth_methods a JOIN webhook_auth_methods m ON m.id = a.method_id
WHERE a.trigger_id = :trigger_id
ORDER BY m.name, m.id;

-- name: trigger_auth_secrets
-- The sealed secrets of the methods a trigger takes, for checking one webhook request.
SELECT m.id, m.auth_type, m.sealed_secret
FROM trigger_auth_methods a JOIN webhook_auth_methods m ON m.id = a.method_id
WHERE a.trigger_id = :trigger_id
ORDER BY m.id;


-- name: delete_old_work_orders
-- Retention: up to :limit of the project's work orders made before :before, with their
-- runs, steps and logs (ON DELETE CASCADE), as many as fit :max_bytes of log messages (at
-- least one; log_heads.bytes), unless one of their runs is newer than that (a rerun or
-- retry keeps its work order) or has not ended.
DELETE FROM work_orders WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.size, sum(c.size) OVER (ORDER BY c.id ROWS UNBOUNDED PRECEDING) AS upto
        FROM (
            SELECT o.id,
                   (SELECT coalesce(sum(h.bytes), 0)
                    FROM runs r JOIN log_heads h ON h.run_id = r.id
                    WHERE r.work_order_id = o.id) AS size
            FROM workflows w JOIN work_orders o ON o.workflow_id = w.id
            WHERE w.project_id = :project_id AND o.inserted_at < :before
              AND NOT EXISTS (
                  SELECT 1 FROM runs r
                  WHERE r.work_order_id = o.id
                    AND (r.inserted_at >= :before
                         OR r.state IN ('available', 'claimed', 'started')))
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);

-- name: delete_old_dataclips
-- Retention: up to :limit of the project's dataclips stored before :before (what still names
-- one of them is set to NULL), oldest first, as many as fit :max_bytes of bodies (at least
-- one), but none that a run which has not ended still needs.
DELETE FROM dataclips WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.body_bytes AS size,
               sum(c.body_bytes) OVER (ORDER BY c.inserted_at, c.id ROWS UNBOUNDED PRECEDING)
                   AS upto
        FROM (
            SELECT d.id, d.inserted_at, d.body_bytes FROM dataclips d
            WHERE d.project_id = :project_id AND d.inserted_at < :before
              AND NOT EXISTS (
                  SELECT 1 FROM runs r
                  WHERE r.dataclip_id = d.id AND r.state IN ('available', 'claimed', 'started'))
            ORDER BY d.inserted_at
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);

-- name: wipe_old_dataclips
-- Retention: up to :limit bodies of the project's dataclips stored before :before, read from
-- dataclips_unwiped oldest first, as many as fit :max_bytes (at least one), but none that a
-- run which has not ended still needs, nor any stored before :kept_from (the history cutoff:
-- those rows go whole).
UPDATE dataclips SET body = NULL, request = NULL, body_bytes = 0, wiped_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.body_bytes AS size,
               sum(c.body_bytes) OVER (ORDER BY c.inserted_at, c.id ROWS UNBOUNDED PRECEDING)
                   AS upto
        FROM (
            SELECT d.id, d.inserted_at, d.body_bytes FROM dataclips d
            WHERE d.project_id = :project_id AND d.wiped_at IS NULL
              AND d.inserted_at < :before
              AND (:kept_from IS NULL OR d.inserted_at >= :kept_from)
              AND NOT EXISTS (
                  SELECT 1 FROM runs r
                  WHERE r.dataclip_id = d.id AND r.state IN ('available', 'claimed', 'started'))
            ORDER BY d.inserted_at
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);


-- -- the dashboard's sessions (dashboard_sessions.py) ---------------------------------------

-- name: insert_dashboard_session
INSERT INTO dashboard_sessions (digest, user_id, token_id, stage, address, inserted_at, seen_at)
VALUES (:digest, :user_id, :token_id, :stage, :address, :now, :now);

-- name: get_dashboard_session
-- A session of a disabled user, or whose token is gone (the foreign key), is no session.
SELECT s.user_id, s.token_id, s.stage, s.inserted_at, s.seen_at
FROM dashboard_sessions s LEFT JOIN users u ON u.id = s.user_id
WHERE s.digest = :digest AND u.disabled_at IS NULL;

-- name: set_dashboard_session_stage
UPDATE dashboard_sessions SET stage = :stage, seen_at = :now WHERE digest = :digest;

-- name: end_user_dashboard_sessions
-- A password changed, a user disabled: their other sessions end.
DELETE FROM dashboard_sessions WHERE user_id = :user_id AND digest <> :keep;

-- name: touch_dashboard_session
UPDATE dashboard_sessions SET seen_at = :now WHERE digest = :digest;

-- name: delete_dashboard_session
DELETE FROM dashboard_sessions WHERE digest = :digest;

-- name: delete_expired_dashboard_sessions
DELETE FROM dashboard_sessions
WHERE seen_at < :idle_before OR inserted_at < :absolute_before;


-- -- idempotency keys (idempotency.py) ------------------------------------------------------

-- name: claim_idempotency_key
-- The first statement of a request with an Idempotency-Key: the key becomes this request's,
-- new or taken over from an expired row. No row back: the key is live and another request's
-- (read it with get_idempotency_key).
INSERT INTO idempotency_keys (scope, key, fingerprint, inserted_at, expires_at)
VALUES (:scope, :key, :fingerprint, :now, :expires_at)
ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = excluded.fingerprint, status = NULL, body = NULL, deferred = 0,
        inserted_at = excluded.inserted_at, expires_at = excluded.expires_at
    WHERE idempotency_keys.expires_at <= :now
RETURNING scope;

-- name: get_idempotency_key
SELECT fingerprint, status, body, deferred, inserted_at, expires_at
FROM idempotency_keys WHERE scope = :scope AND key = :key;

-- name: answer_idempotency_key
-- The first answer, in the transaction that claimed the key.
UPDATE idempotency_keys SET status = :status, body = :body, deferred = :deferred
WHERE scope = :scope AND key = :key;

-- name: delete_expired_idempotency_keys
-- Retention: up to :limit keys past their expiry.
DELETE FROM idempotency_keys WHERE rowid IN (
    SELECT rowid FROM idempotency_keys WHERE expires_at <= :now LIMIT :limit
);

-- name: return_refused
-- Issue 14: the worker that claimed the run refused it (its run token did not verify there):
-- back to the queue at once, if that claim still holds (not joined, not claimed again since;
-- a run joined by its claim, claim:fetch, too).
UPDATE runs SET state = 'available', claimed_at = NULL, worker_name = NULL, joined_at = NULL,
    joined_by_claim = 0
WHERE id = :id AND state = 'claimed'
  AND (joined_at IS NULL OR joined_by_claim = 1) AND claimed_at < :claimed_before
RETURNING id;


-- -- users and their roles (users.py, members.py) -------------------------------------------

-- name: insert_user
INSERT INTO users (id, email, name, password_hash, instance_admin, inserted_at, updated_at,
                   password_changed_at)
VALUES (:id, :email, :name, :password_hash, :instance_admin, :now, :now, :password_changed_at);

-- name: get_user
SELECT * FROM users WHERE id = :id;

-- name: find_user_by_email
SELECT * FROM users WHERE email = :email;

-- name: list_users
SELECT * FROM users ORDER BY email;

-- name: count_users
SELECT count(*) AS n, coalesce(sum(CASE WHEN instance_admin THEN 1 ELSE 0 END), 0) AS admins
FROM users WHERE disabled_at IS NULL;

-- name: set_user_password
UPDATE users SET password_hash = :password_hash, password_changed_at = :now, updated_at = :now
WHERE id = :id;

-- name: roles_of_user
SELECT project_id, role FROM project_members WHERE user_id = :user_id;

-- name: rehash_user_password
-- The same password, hashed with today's parameters; only over the hash that was checked.
UPDATE users SET password_hash = :new_hash WHERE id = :id AND password_hash = :old_hash;

-- name: set_user_disabled
UPDATE users SET disabled_at = :disabled_at, updated_at = :now WHERE id = :id;

-- name: set_user_instance_admin
UPDATE users SET instance_admin = :admin, updated_at = :now WHERE id = :id;

-- name: lock_active_instance_admins
-- Before removing an instance admin: who the active ones are (SQLite's write lock keeps them
-- so until the transaction ends; PostgreSQL locks their rows).
SELECT id FROM users WHERE instance_admin = 1 AND disabled_at IS NULL;


-- -- invitations (invitations.py) -------------------------------------------------------------

-- name: insert_invitation
INSERT INTO invitations (digest, email, instance_admin, project_id, role, invited_by,
                         inserted_at, expires_at)
VALUES (:digest, :email, :instance_admin, :project_id, :role, :invited_by, :now, :expires_at);

-- name: get_invitation
SELECT * FROM invitations WHERE digest = :digest;

-- name: accept_invitation
-- Once, and only while it has not expired: a second acceptance changes nothing.
UPDATE invitations SET accepted_at = :now
WHERE digest = :digest AND accepted_at IS NULL AND expires_at > :now;

-- name: list_open_invitations
SELECT * FROM invitations WHERE accepted_at IS NULL AND expires_at > :now
ORDER BY inserted_at DESC, digest;

-- name: delete_invitation
DELETE FROM invitations WHERE digest = :digest;


-- -- failed sign-ins, for the rate limit (sign_in_failures.py) -------------------------------

-- name: lock_sign_in_failures
-- First statement of a sign-in attempt (postgres/queries.sql says why). SQLite's write lock,
-- held from BEGIN IMMEDIATE, already lets one attempt at a time count and add failures.
SELECT 1 AS locked;

-- name: prune_sign_in_failures
-- A password attempt's pruning: failures of one kind of subject (email:…, ip:…) past the
-- window; other kinds (mfa:…) keep theirs, counted over their own window.
DELETE FROM sign_in_failures WHERE subject LIKE :kind AND at <= :before;

-- name: recent_sign_in_failures
-- A subject's newest failures (after pruning: all within the window), at most :limit.
SELECT at FROM sign_in_failures WHERE subject = :subject ORDER BY at DESC LIMIT :limit;

-- name: forgive_sign_in_failure
-- One row of the subject at that instant: such rows are alike, any one is the attempt's.
DELETE FROM sign_in_failures WHERE rowid = (
    SELECT rowid FROM sign_in_failures WHERE subject = :subject AND at = :at LIMIT 1
);


-- -- failure alerts and digests (issue 18: alert_config.py, alert_outbox.py) ---------------

-- name: note_alert_ending
-- In the transaction that ends run :run_id (endings.after_end): one pending ending when its
-- workflow's rule is enabled and names the state the run ended in; no row otherwise. The run
-- row is read as just updated, with its final state and error type.
INSERT INTO alert_endings (workflow_id, run_id, outcome, error_type, ended_at)
SELECT r.workflow_id, r.id, r.state, r.error_type, coalesce(r.finished_at, :now)
FROM runs r JOIN alert_rules a ON a.workflow_id = r.workflow_id
WHERE r.id = :run_id AND a.enabled = 1
  AND EXISTS (SELECT 1 FROM json_each(a.outcomes) WHERE value = r.state);

-- name: insert_alert_channel
INSERT INTO alert_channels
    (id, project_id, name, type, recipients, url, sealed_secret, inserted_at, updated_at)
VALUES (:id, :project_id, :name, :type, :recipients, :url, :sealed_secret, :now, :now);

-- name: get_alert_channel
-- Without the secret: it leaves the store only with a claimed delivery.
SELECT id, project_id, name, type, recipients, url, inserted_at, updated_at
FROM alert_channels WHERE id = :id;

-- name: get_alert_channel_by_name
SELECT id FROM alert_channels WHERE project_id = :project_id AND name = :name;

-- name: list_alert_channels
SELECT id, project_id, name, type, recipients, url, inserted_at, updated_at
FROM alert_channels WHERE project_id = :project_id
ORDER BY name, id;

-- name: delete_alert_channel
-- Takes it out of every rule and digest, with its deliveries (ON DELETE CASCADE).
DELETE FROM alert_channels WHERE id = :id;

-- name: alert_channel_failures
-- The project's deliveries that failed and are not sent: retrying ('pending') or given up.
SELECT d.channel_id, d.state, d.attempts, d.next_attempt_at, d.last_error, d.last_failed_at
FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id
WHERE c.project_id = :project_id AND d.last_error IS NOT NULL AND d.state <> 'sent'
ORDER BY d.last_failed_at DESC, d.id
LIMIT 1000;

-- name: alert_channel_last_sent
SELECT d.channel_id, max(d.sent_at) AS last_sent_at
FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id
WHERE c.project_id = :project_id AND d.state = 'sent'
GROUP BY d.channel_id;

-- name: put_alert_rule
-- A rule made or changed; when its latest alert was made is kept.
INSERT INTO alert_rules
    (workflow_id, project_id, enabled, outcomes, period_seconds, inserted_at, updated_at)
VALUES (:workflow_id, :project_id, :enabled, :outcomes, :period_seconds, :now, :now)
ON CONFLICT (workflow_id) DO UPDATE
    SET enabled = excluded.enabled, outcomes = excluded.outcomes,
        period_seconds = excluded.period_seconds, updated_at = excluded.updated_at;

-- name: get_alert_rule
SELECT workflow_id, project_id, enabled, outcomes, period_seconds, last_alert_at
FROM alert_rules WHERE workflow_id = :workflow_id;

-- name: list_alert_rules
SELECT workflow_id, project_id, enabled, outcomes, period_seconds, last_alert_at
FROM alert_rules WHERE project_id = :project_id ORDER BY workflow_id;

-- name: delete_alert_rule
DELETE FROM alert_rules WHERE workflow_id = :workflow_id;

-- name: drop_alert_endings
-- A rule turned off or deleted: its pending endings are alerted about never.
DELETE FROM alert_endings WHERE workflow_id = :workflow_id;

-- name: alert_rule_channels
SELECT channel_id FROM alert_rule_channels WHERE workflow_id = :workflow_id ORDER BY channel_id;

-- name: project_alert_rule_channels
SELECT rc.workflow_id, rc.channel_id
FROM alert_rule_channels rc JOIN alert_rules a ON a.workflow_id = rc.workflow_id
WHERE a.project_id = :project_id ORDER BY rc.workflow_id, rc.channel_id;

-- name: clear_alert_rule_channels
DELETE FROM alert_rule_channels WHERE workflow_id = :workflow_id;

-- name: add_alert_rule_channel
INSERT INTO alert_rule_channels (workflow_id, channel_id) VALUES (:workflow_id, :channel_id);

-- name: due_alert_rules
-- Rules with pending endings whose latest alert is a period old (alert_policy.alert_due, in
-- SQL too so that :limit counts due rules only). SQLite has one writer: no row locks needed.
SELECT a.workflow_id, a.project_id, a.period_seconds, a.last_alert_at
FROM alert_rules a
WHERE a.enabled = 1
  AND EXISTS (SELECT 1 FROM alert_endings e WHERE e.workflow_id = a.workflow_id)
  AND (a.last_alert_at IS NULL OR a.last_alert_at + a.period_seconds * 1000000 <= :now)
ORDER BY a.workflow_id
LIMIT :limit;

-- name: take_alert_endings
-- Every pending ending of the workflow, taken to be folded into one alert.
DELETE FROM alert_endings WHERE workflow_id = :workflow_id
RETURNING run_id, outcome, error_type, ended_at;

-- name: set_alert_rule_alerted
UPDATE alert_rules SET last_alert_at = :now WHERE workflow_id = :workflow_id;

-- name: insert_alert
INSERT INTO alerts (id, project_id, workflow_id, kind, body, inserted_at)
VALUES (:id, :project_id, :workflow_id, :kind, :body, :now);

-- name: insert_alert_delivery
INSERT INTO alert_deliveries (id, alert_id, channel_id, next_attempt_at, inserted_at)
VALUES (:id, :alert_id, :channel_id, :now, :now);

-- name: list_alerts
SELECT id, project_id, workflow_id, kind, body, inserted_at FROM alerts
WHERE project_id = :project_id AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
ORDER BY inserted_at DESC, id
LIMIT :limit;

-- name: prune_alerts
-- Alerts older than :before whose deliveries have all ended, with their deliveries.
DELETE FROM alerts WHERE inserted_at < :before
  AND NOT EXISTS (
      SELECT 1 FROM alert_deliveries d WHERE d.alert_id = alerts.id AND d.state = 'pending');

-- name: put_alert_digest
INSERT INTO alert_digests (project_id, frequency, next_due_at, updated_at)
VALUES (:project_id, :frequency, :next_due_at, :now)
ON CONFLICT (project_id) DO UPDATE
    SET frequency = excluded.frequency, next_due_at = excluded.next_due_at,
        updated_at = excluded.updated_at;

-- name: get_alert_digest
SELECT project_id, frequency, next_due_at FROM alert_digests WHERE project_id = :project_id;

-- name: alert_digest_channels
SELECT channel_id FROM alert_digest_channels WHERE project_id = :project_id
ORDER BY channel_id;

-- name: clear_alert_digest_channels
DELETE FROM alert_digest_channels WHERE project_id = :project_id;

-- name: add_alert_digest_channel
INSERT INTO alert_digest_channels (project_id, channel_id) VALUES (:project_id, :channel_id);

-- name: due_alert_digests
SELECT project_id, frequency, next_due_at FROM alert_digests
WHERE next_due_at IS NOT NULL AND next_due_at <= :now
ORDER BY next_due_at, project_id
LIMIT :limit;

-- name: set_alert_digest_due
UPDATE alert_digests SET next_due_at = :next_due_at WHERE project_id = :project_id;

-- name: digest_outcomes
-- A digest's runs by outcome: the project's runs that ended in [:start, :end). Once a day or
-- a week per project, so it reads the project's runs (runs_project) rather than having every
-- run's end keep one more index up to date.
SELECT state, count(*) AS runs FROM runs
WHERE project_id = :project_id AND finished_at >= :start AND finished_at < :end
GROUP BY state ORDER BY state;

-- name: digest_slowest
-- The project's workflows by their slowest run that ended in [:start, :end).
SELECT r.workflow_id, w.name, count(*) AS runs,
       max(r.finished_at - r.started_at) / 1000 AS max_ms,
       CAST(avg(r.finished_at - r.started_at) / 1000 AS INTEGER) AS avg_ms
FROM runs r JOIN workflows w ON w.id = r.workflow_id
WHERE r.project_id = :project_id AND r.finished_at >= :start AND r.finished_at < :end
  AND r.started_at IS NOT NULL
GROUP BY r.workflow_id, w.name
ORDER BY max_ms DESC, r.workflow_id
LIMIT :limit;

-- name: digest_new_failures
-- Error types of runs that ended in [:start, :end) that no run of the project ended with
-- before :start (as far as the project's history is kept).
SELECT r.error_type, count(*) AS runs, min(r.finished_at) AS first_seen,
       min(r.workflow_id) AS workflow_id
FROM runs r
WHERE r.project_id = :project_id AND r.finished_at >= :start AND r.finished_at < :end
  AND r.error_type IS NOT NULL AND r.state <> 'success'
GROUP BY r.error_type
HAVING NOT EXISTS (
    SELECT 1 FROM runs o
    WHERE o.project_id = :project_id AND o.error_type = r.error_type AND o.finished_at < :start)
ORDER BY first_seen, r.error_type;

-- name: claim_alert_deliveries
-- Up to :limit deliveries due now, each for one more try: attempts is the try's number (the
-- claim's token), and next_attempt_at moves to :until, so that no one else claims it while
-- it is sent, and it is tried again if this claimer dies mid-send.
UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = :until
WHERE id IN (
    SELECT id FROM alert_deliveries
    WHERE state = 'pending' AND next_attempt_at <= :now
    ORDER BY next_attempt_at, id
    LIMIT :limit)
RETURNING id, attempts;

-- name: alert_delivery_targets
-- Claimed deliveries with their channel (and its sealed secret) and alert.
SELECT d.id, d.attempts, c.id AS channel_id, c.name AS channel_name, c.type, c.recipients,
       c.url, c.sealed_secret, a.id AS alert_id, a.project_id, a.workflow_id, a.kind,
       a.body, a.inserted_at
FROM alert_deliveries d
JOIN alert_channels c ON c.id = d.channel_id
JOIN alerts a ON a.id = d.alert_id
WHERE d.id IN (SELECT value FROM json_each(:ids))
ORDER BY d.next_attempt_at, d.id;

-- name: alert_delivery_sent
-- The outcome of try :attempt, recorded by its claimer only.
UPDATE alert_deliveries SET state = 'sent', sent_at = :now
WHERE id = :id AND attempts = :attempt AND state = 'pending';

-- name: alert_delivery_failed
-- Try :attempt failed: tried again at :retry_at, or given up (:give_up).
UPDATE alert_deliveries
SET state = CASE WHEN :give_up = 1 THEN 'failed' ELSE 'pending' END,
    next_attempt_at = coalesce(:retry_at, next_attempt_at),
    last_error = :error, last_failed_at = :now
WHERE id = :id AND attempts = :attempt AND state = 'pending';

-- name: list_alert_deliveries
SELECT d.id, d.alert_id, d.channel_id, d.state, d.attempts, d.next_attempt_at, d.last_error,
       d.last_failed_at, d.sent_at, d.inserted_at, a.kind, a.workflow_id
FROM alert_deliveries d
JOIN alert_channels c ON c.id = d.channel_id
JOIN alerts a ON a.id = d.alert_id
WHERE c.project_id = :project_id
  AND (:channel_id IS NULL OR d.channel_id = :channel_id)
  AND (:failing = 0 OR (d.last_error IS NOT NULL AND d.state <> 'sent'))
ORDER BY d.inserted_at DESC, d.id
LIMIT :limit;


-- -- the second factor, single sign-on, sign-in failures and instance settings ---------------
-- (second_factor.py, sso_requests.py, sign_in_failures.py, instance_settings.py)

-- name: get_user_totp
SELECT totp_secret, totp_enabled_at, totp_last_step, recovery_codes FROM users WHERE id = :id;

-- name: begin_user_totp
-- A new secret to confirm, unless a confirmed one is in place.
UPDATE users SET totp_secret = :secret, totp_enabled_at = NULL, totp_last_step = NULL,
    recovery_codes = NULL, updated_at = :now
WHERE id = :id AND totp_enabled_at IS NULL;

-- name: enable_user_totp
UPDATE users SET totp_enabled_at = :now, totp_last_step = :step, recovery_codes = :codes,
    updated_at = :now
WHERE id = :id AND totp_secret IS NOT NULL AND totp_enabled_at IS NULL;

-- name: use_user_totp_step
-- Compare-and-set: a step at or before the last one taken is a replay.
UPDATE users SET totp_last_step = :step
WHERE id = :id AND totp_enabled_at IS NOT NULL
  AND (totp_last_step IS NULL OR totp_last_step < :step);

-- name: use_user_recovery_code
-- Compare-and-set: only if the list is still the one the code was found in.
UPDATE users SET recovery_codes = :new WHERE id = :id AND recovery_codes = :old;

-- name: replace_user_recovery_codes
UPDATE users SET recovery_codes = :codes, updated_at = :now
WHERE id = :id AND totp_enabled_at IS NOT NULL;

-- name: disable_user_totp
UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL,
    recovery_codes = NULL, updated_at = :now
WHERE id = :id;

-- name: insert_sso_request
INSERT INTO sso_requests (digest, nonce, verifier, redirect_uri, next, expires_at)
VALUES (:digest, :nonce, :verifier, :redirect_uri, :next, :expires_at);

-- name: take_sso_request
DELETE FROM sso_requests WHERE digest = :digest
RETURNING nonce, verifier, redirect_uri, next, expires_at;

-- name: delete_expired_sso_requests
DELETE FROM sso_requests WHERE expires_at <= :now;

-- name: insert_sso_session
INSERT INTO sso_sessions (digest) VALUES (:digest);

-- name: get_sso_session
SELECT digest FROM sso_sessions WHERE digest = :digest;

-- name: insert_sign_in_failure
INSERT INTO sign_in_failures (subject, at) VALUES (:subject, :now);

-- name: list_sign_in_failures
SELECT at FROM sign_in_failures WHERE subject = :subject AND at >= :since ORDER BY at;

-- name: forget_sign_in_failures
DELETE FROM sign_in_failures WHERE subject = :subject AND at < :before;

-- name: clear_sign_in_failures
DELETE FROM sign_in_failures WHERE subject = :subject;

-- name: list_instance_settings
SELECT key, value FROM instance_settings;

-- name: put_instance_setting
INSERT INTO instance_settings (key, value, updated_at) VALUES (:key, :value, :now)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;

-- name: get_member
SELECT m.project_id, m.user_id, m.role, m.inserted_at, u.email, u.name
FROM project_members m JOIN users u ON u.id = m.user_id
WHERE m.project_id = :project_id AND m.user_id = :user_id;

-- name: list_members
SELECT m.project_id, m.user_id, m.role, m.inserted_at, u.email, u.name
FROM project_members m JOIN users u ON u.id = m.user_id
WHERE m.project_id = :project_id
ORDER BY u.email;

-- name: upsert_member
-- A new member, or a member's new role (they stay a member since they first were).
INSERT INTO project_members (project_id, user_id, role, inserted_at)
VALUES (:project_id, :user_id, :role, :now)
ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role;

-- name: delete_member
DELETE FROM project_members WHERE project_id = :project_id AND user_id = :user_id;

-- name: count_owners
-- Under lock_project: how many owners the project has.
SELECT count(*) AS n FROM project_members
WHERE project_id = :project_id AND role = 'owner';


-- -- which project a thing belongs to (ownership.py) ----------------------------------------

-- name: project_of_workflow
SELECT project_id FROM workflows WHERE id = :id;

-- name: project_of_trigger
SELECT w.project_id FROM triggers t JOIN workflows w ON w.id = t.workflow_id
WHERE t.id = :id;

-- name: project_of_snapshot
SELECT w.project_id FROM workflow_snapshots s JOIN workflows w ON w.id = s.workflow_id
WHERE s.id = :id;

-- name: project_of_run
SELECT project_id FROM runs WHERE id = :id;

-- name: project_of_step
SELECT r.project_id FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.id = :id;

-- name: project_of_work_order
SELECT w.project_id FROM work_orders o JOIN workflows w ON w.id = o.workflow_id
WHERE o.id = :id;

-- name: project_of_dataclip
SELECT project_id FROM dataclips WHERE id = :id;

-- name: project_of_credential
SELECT project_id FROM credentials WHERE id = :id;

-- name: project_of_keychain
SELECT project_id FROM keychains WHERE id = :id;

-- name: project_of_webhook_auth_method
SELECT project_id FROM webhook_auth_methods WHERE id = :id;


-- -- the audit trail (audit.py) -------------------------------------------------------------

-- name: insert_audit_record
INSERT INTO audit_records (at, actor_kind, actor_id, actor_name, address, action, project_id,
                           target_type, target_id, target_name, before, after, detail)
VALUES (:at, :actor_kind, :actor_id, :actor_name, :address, :action, :project_id,
        :target_type, :target_id, :target_name, :before, :after, :detail)
RETURNING seq;

-- name: list_audit_records
-- Newest first; the cursor is the seq of the last record of the previous page. Filters left
-- NULL do not apply: :actor is an actor's id or name (in any case), :action a code or the
-- codes under it ('workflow' matches 'workflow.updated'), :target a target's id; :since is
-- inclusive, :until exclusive. For a listing of none of a target, an actor, an action or a
-- project: for one, audit.py takes list_audit_records_of_target, _actor, _code, _noun or
-- _project, which read its index. This query reads the trail newest first until a page is
-- full: for a filter few records match, that was every record (bench/history.py).
SELECT * FROM audit_records
WHERE (:project_id IS NULL OR project_id = :project_id)
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:target IS NULL OR target_id = :target)
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_recent
-- list_audit_records with :since given and none of the filters that have an index
-- (store/audit.py), among the :probe newest records below :before_seq only: where
-- these hold a page, it is the page; else list_audit_records_since finds it.
SELECT * FROM (
    SELECT * FROM audit_records
    WHERE (:before_seq IS NULL OR seq < :before_seq)
    ORDER BY seq DESC
    LIMIT :probe
) recent
WHERE (:project_id IS NULL OR project_id = :project_id)
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:target IS NULL OR target_id = :target)
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_since
-- list_audit_records with :since given and none of the filters that have an index
-- (store/audit.py): the records since then through audit_records_at, sorted by seq: read
-- when the newest records hold no page (list_audit_records_recent), so those since then
-- are few, or in a window that is past. INDEXED BY: SQLite would rather read the whole
-- trail in seq order, which needs no sort.
SELECT * FROM audit_records INDEXED BY audit_records_at
WHERE at >= :since
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:target IS NULL OR target_id = :target)
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_of_target
-- list_audit_records with :target given (store/audit.py): through audit_records_target,
-- newest first, however long the rest of the trail.
SELECT * FROM audit_records
WHERE target_id = :target
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_of_actor
-- list_audit_records with :actor given (store/audit.py): the actor's newest records by
-- id (audit_records_actor) and by name (audit_records_actor_name), each side read newest
-- first until a page is full, however long the rest of the trail; the page is the newest
-- of both.
SELECT * FROM audit_records WHERE seq IN (
    SELECT seq FROM (
        SELECT seq FROM audit_records
        WHERE actor_id = :actor
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:action IS NULL OR action = :action
               OR substr(action, 1, length(:action) + 1) = :action || '.')
          AND (:target IS NULL OR target_id = :target)
          AND (:since IS NULL OR at >= :since)
          AND (:until IS NULL OR at < :until)
          AND (:before_seq IS NULL OR seq < :before_seq)
        ORDER BY seq DESC LIMIT :limit)
    UNION
    SELECT seq FROM (
        SELECT seq FROM audit_records
        WHERE lower(actor_name) = lower(:actor)
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:action IS NULL OR action = :action
               OR substr(action, 1, length(:action) + 1) = :action || '.')
          AND (:target IS NULL OR target_id = :target)
          AND (:since IS NULL OR at >= :since)
          AND (:until IS NULL OR at < :until)
          AND (:before_seq IS NULL OR seq < :before_seq)
        ORDER BY seq DESC LIMIT :limit)
)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_of_code
-- list_audit_records with a code for :action (store/audit.py): through audit_records_code,
-- whose expression is the action up to its second dot; :action_key is the filter's.
-- Newest first, however long the rest of the trail.
SELECT * FROM audit_records
WHERE substr(action, 1, instr(action, '.') + instr(substr(action, instr(action, '.') + 1) || '.', '.') - 1) = :action_key
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:target IS NULL OR target_id = :target)
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_of_noun
-- list_audit_records with a noun for :action (store/audit.py): through audit_records_noun,
-- whose expression is the action up to its first dot; :action_key is the filter.
-- Newest first, however long the rest of the trail.
SELECT * FROM audit_records
WHERE substr(action, 1, instr(action, '.') - 1) = :action_key
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:target IS NULL OR target_id = :target)
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: list_audit_records_of_project
-- list_audit_records with :project_id given (store/audit.py): through
-- audit_records_project, newest first, however long the rest of the trail.
SELECT * FROM audit_records
WHERE project_id = :project_id
  AND (:actor IS NULL OR actor_id = :actor OR lower(actor_name) = lower(:actor))
  AND (:action IS NULL OR action = :action
       OR substr(action, 1, length(:action) + 1) = :action || '.')
  AND (:target IS NULL OR target_id = :target)
  AND (:since IS NULL OR at >= :since)
  AND (:until IS NULL OR at < :until)
  AND (:before_seq IS NULL OR seq < :before_seq)
ORDER BY seq DESC
LIMIT :limit;

-- name: allow_audit_sweep
-- The retention sweep's leave to delete records older than :before, for its own transaction
-- (the schema's audit_records_no_delete trigger reads it; end_audit_sweep takes it back).
INSERT INTO audit_sweeps (before) VALUES (:before);

-- name: end_audit_sweep
DELETE FROM audit_sweeps;

-- name: delete_old_audit_records
-- One batch of the project's records older than :before, oldest first: read through
-- audit_records_project_at, so a batch reads what it deletes, and a sweep with nothing to
-- delete (every day but the first) reads nothing, however long the project's trail.
DELETE FROM audit_records WHERE seq IN (
    SELECT seq FROM audit_records
    WHERE project_id = :project_id AND at < :before
    ORDER BY at
    LIMIT :limit
);

-- name: delete_old_instance_audit_records
-- One batch of the records older than :before of the whole instance (no project) and of
-- projects that no longer exist, each read through audit_records_project_at (the kept
-- projects' records are never read). The projects the trail names are found one index
-- seek each (named: the next project_id after the last), not by reading every record.
DELETE FROM audit_records WHERE seq IN (
    WITH RECURSIVE named (project_id) AS (
        SELECT min(project_id) FROM audit_records
        UNION ALL
        SELECT (SELECT min(a.project_id) FROM audit_records a WHERE a.project_id > n.project_id)
        FROM named n WHERE n.project_id IS NOT NULL
    )
    SELECT seq FROM (
        SELECT seq FROM (SELECT seq FROM audit_records
                         WHERE project_id IS NULL AND at < :before
                         ORDER BY at LIMIT :limit) instance
        UNION ALL
        SELECT a.seq FROM named n JOIN audit_records a ON a.project_id = n.project_id
        WHERE a.at < :before
          AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = n.project_id)
    ) old
    LIMIT :limit
);


-- name: upsert_keychain
-- Create, or replace its name, path and default; never moves a keychain to another project
-- (then no row comes back).
INSERT INTO keychains (id, project_id, name, path, default_credential_id, inserted_at,
                       updated_at)
VALUES (:id, :project_id, :name, :path, :default_credential_id, :now, :now)
ON CONFLICT (id) DO UPDATE
SET name = excluded.name, path = excluded.path,
    default_credential_id = excluded.default_credential_id, updated_at = excluded.updated_at
WHERE keychains.project_id = excluded.project_id
RETURNING *;

-- name: keychain_named
-- Another keychain of the project with this name (names are unique in a project).
SELECT id FROM keychains WHERE project_id = :project_id AND name = :name AND id <> :id;

-- name: delete_keychain_entries
DELETE FROM keychain_entries WHERE keychain_id = :id;

-- name: insert_keychain_entry
INSERT INTO keychain_entries (keychain_id, project_id, value, credential_id)
VALUES (:keychain_id, :project_id, :value, :credential_id);

-- name: get_keychain
SELECT * FROM keychains WHERE id = :id;

-- name: list_keychains
SELECT * FROM keychains WHERE project_id = :project_id ORDER BY name, id;

-- name: keychain_entries
SELECT value, credential_id FROM keychain_entries WHERE keychain_id = :id ORDER BY value;

-- name: keychain_users
-- A few of the jobs that name a keychain (which is then not deleted).
SELECT id FROM jobs WHERE keychain_id = :id ORDER BY id LIMIT 5;

-- name: delete_keychain
DELETE FROM keychains WHERE id = :id;

-- name: credential_keychains
-- A few of the keychains that can choose a credential (which is then not deleted).
SELECT id FROM keychains WHERE default_credential_id = :id
UNION
SELECT keychain_id FROM keychain_entries WHERE credential_id = :id
ORDER BY id LIMIT 5;

-- name: project_keychains
-- Which of the given keychain ids belong to the project.
SELECT id FROM keychains
WHERE project_id = :project_id AND id IN (SELECT value FROM json_each(:ids));

-- name: insert_run_keychain
INSERT INTO run_keychains (run_id, keychain_id, keychain_name, path, credential_id, matched)
VALUES (:run_id, :keychain_id, :keychain_name, :path, :credential_id, :matched);

-- name: run_keychains
SELECT * FROM run_keychains WHERE run_id = :run_id ORDER BY keychain_name, keychain_id;

-- name: fail_new_run
-- A run made failed: a keychain of it chose no credential (store/keychains.py). It never
-- reaches a worker.
UPDATE runs SET state = 'exception', finished_at = :now, error_type = :error_type,
                error_message = :error_message
WHERE id = :id AND state = 'available';
-- -- OAuth2 credentials (issue 19: store/oauth2.py) ------------------------------------------

-- name: insert_oauth2_credential
INSERT INTO oauth2_credentials (credential_id, grant_type, authorization_url, token_url,
    client_id, scopes, sealed_secrets, oauth2_status, problem, expires_at, refreshed_at)
VALUES (:id, :grant_type, :authorization_url, :token_url, :client_id, :scopes,
    :sealed_secrets, :status, :problem, :expires_at, :refreshed_at)
ON CONFLICT (credential_id) DO UPDATE SET grant_type = excluded.grant_type,
    authorization_url = excluded.authorization_url, token_url = excluded.token_url,
    client_id = excluded.client_id, scopes = excluded.scopes,
    sealed_secrets = excluded.sealed_secrets, oauth2_status = excluded.oauth2_status,
    problem = excluded.problem, expires_at = excluded.expires_at,
    refreshed_at = excluded.refreshed_at, refresh_lease_until = NULL,
    refresh_lease_holder = NULL;

-- name: get_oauth2_credential
SELECT * FROM oauth2_credentials WHERE credential_id = :id;

-- name: list_oauth2_credentials
SELECT o.* FROM oauth2_credentials o JOIN credentials c ON c.id = o.credential_id
WHERE c.project_id = :project_id ORDER BY o.credential_id;

-- name: take_oauth2_lease
-- The right to refresh the token now, unless another coordinator holds it (until its lease
-- ends: one that died holding it does not hold it for ever).
UPDATE oauth2_credentials SET refresh_lease_until = :until, refresh_lease_holder = :holder
WHERE credential_id = :id
  AND (refresh_lease_until IS NULL OR refresh_lease_until <= :now)
RETURNING *;

-- name: save_oauth2_tokens
-- New tokens (connected), and the lease given back, in one write.
UPDATE oauth2_credentials SET sealed_secrets = :sealed_secrets, oauth2_status = 'connected',
    problem = '', expires_at = :expires_at, refreshed_at = :now, refresh_lease_until = NULL,
    refresh_lease_holder = NULL
WHERE credential_id = :id;

-- name: set_oauth2_status
-- Not connected, or needing re-authorisation (with why), and the lease given back.
UPDATE oauth2_credentials SET oauth2_status = :status, problem = :problem,
    refresh_lease_until = NULL, refresh_lease_holder = NULL
WHERE credential_id = :id;

-- name: release_oauth2_lease
UPDATE oauth2_credentials SET refresh_lease_until = NULL, refresh_lease_holder = NULL
WHERE credential_id = :id AND refresh_lease_holder = :holder;

-- name: insert_oauth2_authorization
INSERT INTO oauth2_authorizations (digest, credential_id, session_digest, verifier,
    redirect_uri, expires_at)
VALUES (:digest, :credential_id, :session_digest, :verifier, :redirect_uri, :expires_at);

-- name: take_oauth2_authorization
DELETE FROM oauth2_authorizations WHERE digest = :digest
RETURNING credential_id, session_digest, verifier, redirect_uri, expires_at;

-- name: delete_expired_oauth2_authorizations
DELETE FROM oauth2_authorizations WHERE expires_at <= :now;


-- Issue 19: collections (store/collections.py).

-- name: create_collection
INSERT INTO collections (id, project_id, name, item_count, inserted_at, updated_at)
VALUES (:id, :project_id, :name, 0, :now, :now)
RETURNING *;

-- name: get_collection_by_name
SELECT * FROM collections WHERE name = :name;

-- name: list_collections
-- A project's collections by name, a page at a time (keyset on the name).
SELECT * FROM collections
WHERE project_id = :project_id AND (:after IS NULL OR name > :after)
ORDER BY name
LIMIT :limit;

-- name: delete_collection
-- With what is left of its items (ON DELETE CASCADE): the store deletes them in batches
-- first (delete_collection_items_matching).
DELETE FROM collections WHERE id = :id;

-- name: project_collection_ids
SELECT id FROM collections WHERE project_id = :project_id ORDER BY id;

-- name: lock_collection
-- Taken before a write counts what it adds (SQLite's write lock already holds every other
-- writer off; PostgreSQL's twin locks the row).
SELECT item_count FROM collections WHERE id = :id;

-- name: count_existing_keys
-- How many of :keys (a JSON array) the collection already holds.
SELECT count(*) AS n FROM collection_items
WHERE collection_id = :collection_id AND key IN (SELECT value FROM json_each(:keys));

-- name: grow_collection
-- Counts :added new items, unless that would take the collection over :max_items (no row).
UPDATE collections SET item_count = item_count + :added, updated_at = :now
WHERE id = :id AND item_count + :added <= :max_items
RETURNING item_count;

-- name: shrink_collection
UPDATE collections SET item_count = max(item_count - :removed, 0), updated_at = :now
WHERE id = :id;

-- name: upsert_collection_items
-- Every item of :items (a JSON array of [key, value] pairs, no key twice) in one statement;
-- an existing key keeps its id and inserted_at. One json_each over pairs, not two joined:
-- a join of two table-valued functions is quadratic. (The WHERE true resolves SQLite's
-- parsing ambiguity of INSERT ... SELECT ... ON CONFLICT.)
INSERT INTO collection_items (collection_id, key, value, value_bytes, inserted_at, updated_at)
SELECT :collection_id, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),
       length(CAST(json_extract(j.value, '$[1]') AS BLOB)), :now, :now
FROM json_each(:items) AS j
WHERE true
ORDER BY j.key
ON CONFLICT (collection_id, key) DO UPDATE
SET value = excluded.value, value_bytes = excluded.value_bytes, updated_at = excluded.updated_at;

-- name: get_collection_item
SELECT id, key, value, inserted_at, updated_at FROM collection_items
WHERE collection_id = :collection_id AND key = :key;

-- name: delete_collection_item
DELETE FROM collection_items WHERE collection_id = :collection_id AND key = :key;

-- name: delete_collection_items_matching
-- A batch of the items whose key matches the GLOB :pattern (store/collections.py makes it
-- from a `*` pattern, its other wildcards escaped; GLOB, unlike SQLite's LIKE, tells case
-- apart, as PostgreSQL's LIKE does), every item when :pattern is NULL: up to :limit in id
-- order, as many as fit :max_bytes of values (at least one; store/batches.py).
DELETE FROM collection_items WHERE id IN (
    SELECT id FROM (
        SELECT c.id, c.value_bytes AS size,
               sum(c.value_bytes) OVER (ORDER BY c.id ROWS UNBOUNDED PRECEDING)
                   AS upto
        FROM (
            SELECT i.id, i.value_bytes FROM collection_items i
            WHERE i.collection_id = :collection_id AND (:pattern IS NULL OR i.key GLOB :pattern)
            ORDER BY i.id
            LIMIT :limit) c)
    WHERE upto <= :max_bytes OR upto = size
);

-- name: plan_item_pages
-- Nothing to do: PostgreSQL's twin keeps a page of list_collection_items off a generic plan;
-- SQLite's plan for it walks the index whatever the values.
SELECT 1;

-- name: list_collection_items
-- One keyset page of a collection's items in id order, after the id :after, filtered by key
-- pattern (GLOB, as above) and by the times of insertion and last update ([after, before)).
SELECT id, key, value, inserted_at, updated_at FROM collection_items
WHERE collection_id = :collection_id AND id > :after
  AND (:pattern IS NULL OR key GLOB :pattern)
  AND (:created_after IS NULL OR inserted_at >= :created_after)
  AND (:created_before IS NULL OR inserted_at < :created_before)
  AND (:updated_after IS NULL OR updated_at >= :updated_after)
  AND (:updated_before IS NULL OR updated_at < :updated_before)
ORDER BY id
LIMIT :limit;
