-- Idempotency keys (issue 14): a request retried with the same Idempotency-Key gets the
-- first answer and makes nothing new. A key counts within its scope (a webhook trigger, an
-- API route and the workflow or step it names); the row is written in the transaction that
-- makes the run, first, so that a second request with the same key waits for it, and both
-- or neither are committed. status and body (the first answer) are set before that
-- transaction commits: a committed row always has them. deferred: a webhook that answers
-- after its run ends, whose body holds the run's ids. Rows past expires_at are taken over
-- by a new request with the same key, and removed by the retention sweep.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER,
    body        TEXT,
    deferred    INTEGER NOT NULL DEFAULT 0,
    inserted_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
