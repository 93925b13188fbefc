-- Issue 18: the audit trail. Every change to projects, workflows, credentials, webhook auth
-- methods, members, tokens and settings, every sign-in and every refused attempt, with who
-- (kind, id and name as they were then), when, from where, what, on which target, and the
-- target's document before and after (never a secret).
--
-- No foreign keys: a record outlives the project, the user and the token it names.
CREATE TABLE audit_records (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the trail's order
    at          INTEGER NOT NULL,                   -- microseconds since the epoch, UTC
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    address     TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    project_id  TEXT,                               -- NULL: the whole instance's
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    target_name TEXT NOT NULL DEFAULT '',
    before      TEXT,                               -- JSON documents
    after       TEXT,
    detail      TEXT
);
CREATE INDEX audit_records_project ON audit_records (project_id, seq);
CREATE INDEX audit_records_at ON audit_records (at);
CREATE INDEX audit_records_target ON audit_records (target_id, seq);
CREATE INDEX audit_records_actor ON audit_records (actor_id, seq);

-- Append-only, for everyone: no statement changes a record, and none deletes one, except the
-- retention sweep's. The sweep says so by putting a row here, in its own transaction, with
-- the time before which records may go; it removes the row before that transaction ends, so
-- no other connection ever sees one. Nothing else writes this table.
CREATE TABLE audit_sweeps (
    before INTEGER NOT NULL
);

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: a record is never changed');
END;

CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
WHEN NOT EXISTS (SELECT 1 FROM audit_sweeps s WHERE OLD.at < s.before)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: only the retention sweep removes records, once past their retention');
END;
