-- Each dataclip's size: the bytes of its body and request, 0 once wiped. Wiping and deleting
-- bodies goes in batches of a bounded number of bytes (store/batches.py): on SQLite a
-- batch's pages are held in memory until it commits (temp_store = MEMORY keeps the statement
-- journal, which holds them in clear, off the disk), and a body may be megabytes. Reading the
-- size from the row would walk the body's overflow pages (it comes after them), so the two
-- indexes the batches read carry it.
ALTER TABLE dataclips ADD COLUMN body_bytes INTEGER NOT NULL DEFAULT 0 CHECK (body_bytes >= 0);

UPDATE dataclips
SET body_bytes = coalesce(length(CAST(body AS BLOB)), 0)
                 + coalesce(length(CAST(request AS BLOB)), 0)
WHERE wiped_at IS NULL;

DROP INDEX dataclips_project;
CREATE INDEX dataclips_project ON dataclips (project_id, inserted_at, body_bytes);
DROP INDEX dataclips_unwiped;
CREATE INDEX dataclips_unwiped ON dataclips (project_id, inserted_at, body_bytes)
    WHERE wiped_at IS NULL;

-- The same for a collection's items: the bytes of each value, which deleting a collection or
-- a pattern's items sums in the same way.
ALTER TABLE collection_items ADD COLUMN value_bytes INTEGER NOT NULL DEFAULT 0
    CHECK (value_bytes >= 0);
UPDATE collection_items SET value_bytes = length(CAST(value AS BLOB));
DROP INDEX collection_items_order;
CREATE INDEX collection_items_order ON collection_items (collection_id, id, value_bytes);

-- And a run's log: the bytes of the messages of the frames the worker sent (the run's log
-- head keeps it with each frame, in the same statement), which the batches that delete work
-- orders with their runs sum. The runs logged before this file get theirs from their lines
-- (an upgrade reads the log once).
ALTER TABLE log_heads ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0);
UPDATE log_heads SET bytes = (
    SELECT coalesce(sum(length(CAST(l.message AS BLOB))), 0) FROM log_lines l WHERE l.run_id = log_heads.run_id);
