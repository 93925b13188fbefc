-- Issue 15: a run says which job languages it needs (python 1, javascript 2, as a bit set:
-- fulmen.plan.LANGUAGE_BITS), copied from its workflow version when it is made, so that a
-- claim hands a worker only runs whose every job it can run. Every run made before is Python
-- (jobs had no other language until 0008), but for runs of a version with a JavaScript job.
ALTER TABLE runs ADD COLUMN languages smallint NOT NULL DEFAULT 1
    CHECK (languages BETWEEN 1 AND 3);

UPDATE runs
SET languages = versions.languages
FROM (
    SELECT s.id,
           bool_or(job ->> 'language' IS DISTINCT FROM 'javascript')::int
           | (bool_or(job ->> 'language' = 'javascript')::int * 2) AS languages
    FROM workflow_snapshots s, jsonb_array_elements(s.document -> 'jobs') AS job
    WHERE jsonb_typeof(s.document -> 'jobs') = 'array'
    GROUP BY s.id
    HAVING bool_or(job ->> 'language' = 'javascript')
) versions
WHERE runs.snapshot_id = versions.id;

-- The claim seeks each queue once per set of languages the worker can run (at most three),
-- in the same order as before within each.
DROP INDEX runs_claim_open;
CREATE INDEX runs_claim_open ON runs (queue, languages, priority, seq)
    WHERE state = 'available' AND NOT limited;
