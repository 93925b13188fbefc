-- The coordinator's own bookkeeping: the cron scheduler's cursors and the REST API's tokens.

-- One row per cron trigger: when it fires next, and the expression and zone that time was
-- computed for (a trigger whose schedule changed gets a fresh time). Firing a tick moves
-- next_fire_at on with a compare-and-set, in the transaction that enqueues the tick's run, so
-- each tick is enqueued once whichever coordinator fires it and however often they restart.
-- No reference to triggers: a workflow save rewrites its trigger rows, and the cursor must
-- survive that; the scheduler reads cursors through the triggers that exist.
CREATE TABLE cron_cursors (
    trigger_id    text PRIMARY KEY,
    expression    text NOT NULL,
    timezone      text NOT NULL,
    next_fire_at  timestamptz NOT NULL,
    last_fired_at timestamptz,
    updated_at    timestamptz NOT NULL
);

-- Bearer tokens of the REST API. Only a SHA-256 digest of each token's secret part is kept:
-- the token is shown once, when it is made.
CREATE TABLE api_tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    digest      text NOT NULL,
    inserted_at timestamptz NOT NULL
);
