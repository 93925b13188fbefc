-- Issue 15: a job says which language its body is in, python or javascript. Every job saved
-- before this file was run as Python, whatever its adaptor (a Fulmen worker ran
-- @openfn/language-common@... as Fulmen's Python common adaptor), so the jobs already saved
-- are python, and so are the jobs of every snapshot saved before: the runs of those versions,
-- retried or rerun, run as they always did. The default is for those rows only: every save
-- names the language (upsert_job).
ALTER TABLE jobs ADD COLUMN language TEXT NOT NULL DEFAULT 'python'
    CHECK (language IN ('python', 'javascript'));

-- json_insert leaves a language that is there alone; the jobs keep their order (json_each
-- walks the array in order, and the subquery keeps it).
UPDATE workflow_snapshots
SET document = json_set(
    document, '$.jobs',
    (
        SELECT json_group_array(json(job))
        FROM (
            SELECT json_insert(element.value, '$.language', 'python') AS job
            FROM json_each(workflow_snapshots.document, '$.jobs') AS element
            ORDER BY element.key
        )
    )
)
WHERE json_type(document, '$.jobs') = 'array';
