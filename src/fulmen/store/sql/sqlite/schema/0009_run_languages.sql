-- Issue 15: a run says which job languages it needs (python 1, javascript 2, as a bit set:
-- fulmen.plan.LANGUAGE_BITS), copied from its workflow version when it is made, so that a
-- claim hands a worker only runs whose every job it can run. Every run made before is Python
-- (jobs had no other language until 0008), but for runs of a version with a JavaScript job.
ALTER TABLE runs ADD COLUMN languages INTEGER NOT NULL DEFAULT 1
    CHECK (languages BETWEEN 1 AND 3);

UPDATE runs
SET languages = (
    SELECT max(CASE WHEN json_extract(job.value, '$.language') = 'javascript' THEN 0 ELSE 1 END)
         | max(CASE WHEN json_extract(job.value, '$.language') = 'javascript' THEN 2 ELSE 0 END)
    FROM workflow_snapshots s, json_each(s.document, '$.jobs') AS job
    WHERE s.id = runs.snapshot_id
)
WHERE snapshot_id IN (
    SELECT s.id
    FROM workflow_snapshots s, json_each(s.document, '$.jobs') AS job
    WHERE json_extract(job.value, '$.language') = 'javascript'
);

-- The claim seeks each queue once per set of languages the worker can run (at most three),
-- in the same order as before within each.
DROP INDEX runs_claim_open;
CREATE INDEX runs_claim_open ON runs (queue, languages, priority, seq)
    WHERE state = 'available' AND limited = 0;
