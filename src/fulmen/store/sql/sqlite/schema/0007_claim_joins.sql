-- A claim that fetched its runs' plans (claim:fetch, issue 20) joins them in its own
-- transaction: joined_at is set, and joined_by_claim says that the claim joined it, not its
-- worker's own join of run:<id>. Such a run is not the unjoined-claims sweep's, but a refusal
-- or a claim answer that could not be sent still puts it back (rollback_runs,
-- return_refused).
ALTER TABLE runs ADD COLUMN joined_by_claim INTEGER NOT NULL DEFAULT 0;
