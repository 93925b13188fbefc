-- Issue 15: a job says which language its body is in, python or javascript. Every job saved
-- before this file was run as Python, whatever its adaptor (a Fulmen worker ran
-- @openfn/language-common@... as Fulmen's Python common adaptor), so the jobs already saved
-- are python, and so are the jobs of every snapshot saved before: the runs of those versions,
-- retried or rerun, run as they always did. The default is for those rows only: every save
-- names the language (upsert_job).
ALTER TABLE jobs ADD COLUMN language text NOT NULL DEFAULT 'python'
    CHECK (language IN ('python', 'javascript'));

-- A language already there is left alone; the jobs keep their order.
UPDATE workflow_snapshots
SET document = jsonb_set(
    document, '{jobs}',
    (
        SELECT coalesce(jsonb_agg(jsonb_build_object('language', 'python') || job
                                  ORDER BY position), '[]'::jsonb)
        FROM jsonb_array_elements(document -> 'jobs') WITH ORDINALITY AS element(job, position)
    )
)
WHERE jsonb_typeof(document -> 'jobs') = 'array';
