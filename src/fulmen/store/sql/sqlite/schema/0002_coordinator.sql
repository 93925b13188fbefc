-- The coordinator's own bookkeeping: the cron scheduler's cursors and the REST API's tokens.

-- One row per cron trigger: when it fires next, and the expression and zone that time was
-- computed for (a trigger whose schedule changed gets a fresh time). Firing a tick moves
-- next_fire_at on with a compare-and-set, in the transaction that enqueues the tick's run, so
-- each tick is enqueued once whichever coordinator fires it and however often they restart.
-- No reference to triggers: a workflow save rewrites its trigger rows, and the cursor must
-- survive that; the scheduler reads cursors through the triggers that exist.
CREATE TABLE cron_cursors (
    trigger_id    TEXT PRIMARY KEY,
    expression    TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    next_fire_at  INTEGER NOT NULL,
    last_fired_at INTEGER,
    updated_at    INTEGER NOT NULL
);

-- Bearer tokens of the REST API. Only a SHA-256 digest of each token's secret part is kept:
-- the token is shown once, when it is made.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    inserted_at INTEGER NOT NULL
);
