-- Log lines sent again (issue 14). A worker whose reply was lost (the coordinator restarted,
-- or the socket dropped) rejoins and sends the same run:log or run:batch_logs frame again,
-- to this coordinator or another one sharing the database. A worker sends one frame at a
-- time and waits for its reply, so a frame sent again can only be the last one stored for
-- its run: each run keeps the digest of that frame here, and the same digest again stores
-- nothing. The row is also what serialises two coordinators appending to one run (its lock
-- is held until the frame's lines are committed). Nothing to backfill: a run without a row
-- has simply not had a frame since.
CREATE TABLE log_heads (
    run_id text PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    digest bytea NOT NULL
);
