-- Each dataclip's size: the bytes of its body and request as JSON text, 0 once wiped.
-- Wiping and deleting bodies goes in batches of a bounded number of bytes (store/batches.py),
-- so that a transaction's size does not depend on how large the bodies were (a body may be
-- megabytes): on PostgreSQL, what a batch writes to the WAL. The two indexes the batches read
-- carry it, as on SQLite.
ALTER TABLE dataclips ADD COLUMN body_bytes BIGINT NOT NULL DEFAULT 0 CHECK (body_bytes >= 0);

UPDATE dataclips
SET body_bytes = coalesce(octet_length(body::text), 0)
                 + coalesce(octet_length(request::text), 0)
WHERE wiped_at IS NULL;

DROP INDEX dataclips_project;
CREATE INDEX dataclips_project ON dataclips (project_id, inserted_at, body_bytes);
DROP INDEX dataclips_unwiped;
CREATE INDEX dataclips_unwiped ON dataclips (project_id, inserted_at, body_bytes)
    WHERE wiped_at IS NULL;

-- The same for a collection's items: the bytes of each value, which deleting a collection or
-- a pattern's items sums in the same way.
ALTER TABLE collection_items ADD COLUMN value_bytes BIGINT NOT NULL DEFAULT 0
    CHECK (value_bytes >= 0);
UPDATE collection_items SET value_bytes = octet_length(value);
DROP INDEX collection_items_order;
CREATE INDEX collection_items_order ON collection_items (collection_id, id, value_bytes);

-- And a run's log: the bytes of the messages of the frames the worker sent (the run's log
-- head keeps it with each frame, in the same statement), which the batches that delete work
-- orders with their runs sum. The runs logged before this file get theirs from their lines
-- (an upgrade reads the log once).
ALTER TABLE log_heads ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0);
UPDATE log_heads SET bytes = (
    SELECT coalesce(sum(octet_length(l.message)), 0) FROM log_lines l WHERE l.run_id = log_heads.run_id);
