-- The operator's controls (issue 8): webhook authentication, the cron cursor, retries and
-- reruns, cancel requests, concurrency limits in the claim, retention and privacy.
-- Additive only: new columns (each with a default, so existing rows stay valid), new tables
-- and indexes; one index of 0001 is replaced by two narrower ones (see runs_claim_open).

-- -- projects: retention and privacy ----------------------------------------------------

-- Days of run history kept (work orders with their runs, steps and logs); NULL: forever.
ALTER TABLE projects ADD COLUMN history_retention_period integer
    CHECK (history_retention_period IS NULL OR history_retention_period > 0);
-- Days dataclip bodies are kept (then wiped; the rows stay with their history); NULL: as
-- long as the history. Never longer than the history: checked when saved (the store's
-- retention_policy module) and by the table's CHECK below.
ALTER TABLE projects ADD COLUMN dataclip_retention_period integer
    CHECK (dataclip_retention_period IS NULL OR dataclip_retention_period > 0);
-- 'erase_all': no input or output body outlives its use (Lightning's name for the mode).
ALTER TABLE projects ADD COLUMN retention_policy text NOT NULL DEFAULT 'retain_all'
    CHECK (retention_policy IN ('retain_all', 'erase_all'));
ALTER TABLE projects ADD CONSTRAINT projects_dataclips_within_history CHECK (
    dataclip_retention_period IS NULL OR history_retention_period IS NULL
    OR dataclip_retention_period <= history_retention_period);

-- -- workflows: automatic retries ---------------------------------------------------------

-- A run ending crash, kill or lost (and fail when retry_on_fail) is retried up to
-- max_retries times, the n-th retry not before retry_backoff_ms * 2^(n-1) (capped at
-- retry_backoff_max_ms) after the end of the run it retries.
ALTER TABLE workflows ADD COLUMN max_retries integer NOT NULL DEFAULT 0
    CHECK (max_retries BETWEEN 0 AND 100);
ALTER TABLE workflows ADD COLUMN retry_backoff_ms integer NOT NULL DEFAULT 10000
    CHECK (retry_backoff_ms > 0);
ALTER TABLE workflows ADD COLUMN retry_backoff_max_ms integer NOT NULL DEFAULT 600000
    CHECK (retry_backoff_max_ms > 0);
ALTER TABLE workflows ADD COLUMN retry_on_fail boolean NOT NULL DEFAULT false;

-- -- triggers: the cron cursor ------------------------------------------------------------

-- What a cron run starts from: 'none' ({}), 'last_run' (the final state of the workflow's
-- last successful run) or 'job' (the last successful output of cron_cursor_job_id).
ALTER TABLE triggers ADD COLUMN cron_cursor text NOT NULL DEFAULT 'none'
    CHECK (cron_cursor IN ('none', 'last_run', 'job'));
ALTER TABLE triggers ADD COLUMN cron_cursor_job_id text;

-- -- runs: attempts, schedules, cancel requests, limits -------------------------------------

-- 1 for a run made by a trigger, by hand or as a rerun; n + 1 for the retry of attempt n.
ALTER TABLE runs ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt > 0);
-- The run this one retries automatically, or reruns by hand (both in the same work order).
-- No reference: the two always go together, with their work order.
ALTER TABLE runs ADD COLUMN retry_of text;
ALTER TABLE runs ADD COLUMN rerun_of text;
-- A retry is not claimed before its backoff has passed; NULL: at once.
ALTER TABLE runs ADD COLUMN not_before timestamptz;
-- Someone asked to cancel the run while a worker had it; the worker is told (run:cancel).
ALTER TABLE runs ADD COLUMN cancel_requested_at timestamptz;
-- True while the run's workflow or project has a concurrency limit: a copy kept in step with
-- them (enqueue reads them under a key-share lock, saves that change them lock them for
-- update and rewrite the flag of their available runs), so that the claim reads unlimited
-- runs from one index and rationed ones from another.
ALTER TABLE runs ADD COLUMN limited boolean NOT NULL DEFAULT false;

-- The claim's indexes, replacing runs_claim: runs under no limit by queue (one seek per
-- queue, as before), and runs under a limit by workflow (one seek per rationed workflow).
DROP INDEX runs_claim;
CREATE INDEX runs_claim_open ON runs (queue, priority, seq)
    WHERE state = 'available' AND NOT limited;
CREATE INDEX runs_claim_limited ON runs (workflow_id, priority, seq)
    WHERE state = 'available' AND limited;
-- How many runs of a workflow, or of a project, are in flight (the limits' other half).
CREATE INDEX runs_flight_workflow ON runs (workflow_id) WHERE state IN ('claimed', 'started');
CREATE INDEX runs_flight_project ON runs (project_id) WHERE state IN ('claimed', 'started');
-- The runs a worker still has to be told to cancel (the reaper tells them again).
CREATE INDEX runs_cancel_requested ON runs (cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL AND state IN ('claimed', 'started');
-- The cron cursor's "last successful run of the workflow".
CREATE INDEX runs_workflow_success ON runs (workflow_id, seq) WHERE state = 'success';
-- The cron cursor's "last successful output of a job".
CREATE INDEX steps_job_success ON steps (job_id, finished_at) WHERE exit_reason = 'success';

-- Deleting a dataclip sets its references to NULL; these let that be a seek, not a scan of
-- every run and step (the retention sweep deletes dataclips by the thousand).
CREATE INDEX runs_dataclip ON runs (dataclip_id) WHERE dataclip_id IS NOT NULL;
-- The inputs of runs that have not ended: kept from every wipe and delete.
CREATE INDEX runs_pending_input ON runs (dataclip_id)
    WHERE state IN ('available', 'claimed', 'started');
CREATE INDEX runs_final_dataclip ON runs (final_dataclip_id) WHERE final_dataclip_id IS NOT NULL;
CREATE INDEX steps_input_dataclip ON steps (input_dataclip_id)
    WHERE input_dataclip_id IS NOT NULL;
CREATE INDEX steps_output_dataclip ON steps (output_dataclip_id)
    WHERE output_dataclip_id IS NOT NULL;
CREATE INDEX work_orders_dataclip ON work_orders (dataclip_id) WHERE dataclip_id IS NOT NULL;
-- Dataclips whose bodies the retention sweep may still have to wipe.
CREATE INDEX dataclips_unwiped ON dataclips (project_id, inserted_at) WHERE wiped_at IS NULL;

-- -- webhook authentication -----------------------------------------------------------------

-- A project's ways of proving a webhook request: an API key (the x-api-key header) or a
-- username and password (HTTP Basic). The secret part is sealed like a credential body
-- (AES-256-GCM, fulmen/store/cipher.py), bound to the method's id; never the plain value.
CREATE TABLE webhook_auth_methods (
    id            text PRIMARY KEY,
    project_id    text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          text NOT NULL,
    auth_type     text NOT NULL CHECK (auth_type IN ('api', 'basic')),
    sealed_secret bytea NOT NULL,
    inserted_at   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (project_id, name)
);

-- Which methods a webhook trigger takes (any one of them will do); none: the trigger is
-- open. Trigger rows are updated in place on a save, so these stay attached.
CREATE TABLE trigger_auth_methods (
    trigger_id text NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    method_id  text NOT NULL REFERENCES webhook_auth_methods (id) ON DELETE CASCADE,
    PRIMARY KEY (trigger_id, method_id)
);
CREATE INDEX trigger_auth_methods_method ON trigger_auth_methods (method_id);
