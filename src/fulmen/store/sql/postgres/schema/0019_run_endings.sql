-- How many runs ended in each final state, for /metrics (fulmen_runs_ended_total). Counting
-- the runs table instead read every run ever made at every scrape (some 200 ms at a million
-- runs, on SQLite on the coordinator's event loop). One row per state and shard, added to as
-- each run ends (store/endings.py): coordinators sharing a PostgreSQL store then seldom wait
-- on the same row; a read sums the shards. A run deleted later (retention) stays counted.
CREATE TABLE run_endings (
    state  TEXT NOT NULL,
    shard  INTEGER NOT NULL CHECK (shard >= 0),
    count  BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (state, shard)
);

-- The runs that ended before this table existed, once.
INSERT INTO run_endings (state, shard, count)
SELECT state, 0, count(*) FROM runs
WHERE state NOT IN ('available', 'claimed', 'started')
GROUP BY state;
