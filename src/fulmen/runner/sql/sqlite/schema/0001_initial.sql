-- The runner's state file (registry.py): workers, their sealed configs, run history, sealed
-- keys and named identities. Times are seconds since the epoch (REAL), as the runner's API
-- reports them.
--
-- IF NOT EXISTS throughout: state files made before the runner's schema was versioned hold
-- these tables already (the registry adds their missing ``mac`` column first); this file
-- then only records them as version 1.

CREATE TABLE IF NOT EXISTS workers (
    id            TEXT PRIMARY KEY,
    name          TEXT UNIQUE,
    type          TEXT NOT NULL,
    script        TEXT NOT NULL,
    script_sha256 TEXT NOT NULL,
    schedule      TEXT,
    timezone      TEXT NOT NULL,
    events        TEXT NOT NULL,
    args          TEXT NOT NULL,
    policy        TEXT NOT NULL,
    identity_name TEXT,
    identity_id   BLOB NOT NULL,
    run_on_create INTEGER NOT NULL,
    error_policy  TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    REAL NOT NULL,
    last_run      REAL,
    next_run      REAL,
    mac           BLOB
);
-- workers.mac: the runner's HMAC of the row's fixed fields (WorkerRecord.signed); NULL for a
-- row from before rows were signed, which the runner signs when it next starts. (Comments stay
-- out of CREATE TABLE: SQLite keeps the statement's text, and ALTER TABLE edits it.)

CREATE TABLE IF NOT EXISTS sealed_configs (
    worker_id TEXT PRIMARY KEY REFERENCES workers (id) ON DELETE CASCADE,
    blob      BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id    TEXT NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    trigger      TEXT NOT NULL,
    scheduled_at REAL,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    outcome      TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_worker ON runs (worker_id, id);

CREATE TABLE IF NOT EXISTS sealed_keys (
    store       TEXT NOT NULL,
    identity_id BLOB NOT NULL,
    blob        BLOB NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (store, identity_id)
);

CREATE TABLE IF NOT EXISTS identities (
    name         TEXT PRIMARY KEY,
    identity_id  BLOB NOT NULL UNIQUE,
    policy       TEXT NOT NULL,
    token_sha256 BLOB NOT NULL
);
