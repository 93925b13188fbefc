-- Idempotency keys (issue 14): a request retried with the same Idempotency-Key gets the
-- first answer and makes nothing new. A key counts within its scope (a webhook trigger, an
-- API route and the workflow or step it names); the row is written in the transaction that
-- makes the run, first, so that a second request with the same key, on any coordinator,
-- waits on the primary key for that transaction's outcome, and both or neither are
-- committed. status and body (the first answer) are set before that transaction commits: a
-- committed row always has them. deferred: a webhook that answers after its run ends, whose
-- body holds the run's ids. Rows past expires_at are taken over by a new request with the
-- same key, and removed by the retention sweep. body is text, not jsonb, so that a replay
-- gives back the first answer's keys in their order.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    status      integer,
    body        text,
    deferred    boolean NOT NULL DEFAULT false,
    inserted_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
