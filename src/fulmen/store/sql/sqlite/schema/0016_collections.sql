-- Issue 19: collections, a project's key-value store that its jobs share across runs, as
-- Lightning has them. A collection's name is unique across the instance (Lightning's rule),
-- so ``/collections/<name>`` names one collection and a run's token says which project may
-- use it.
CREATE TABLE collections (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL UNIQUE,
    -- Kept with every write of items, so that the limit on a collection's size and the
    -- listing's counts never count rows.
    item_count  INTEGER NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    inserted_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX collections_project ON collections (project_id, name);

-- id: the order items are listed in (insertion order, as Lightning's) and what a listing's
-- cursor holds; an upsert keeps an item's id.
CREATE TABLE collection_items (
    id            INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    inserted_at   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (collection_id, key)
);
CREATE INDEX collection_items_order ON collection_items (collection_id, id);
