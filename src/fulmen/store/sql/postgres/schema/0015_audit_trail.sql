-- Issue 18: the audit trail. Every change to projects, workflows, credentials, webhook auth
-- methods, members, tokens and settings, every sign-in and every refused attempt, with who
-- (kind, id and name as they were then), when, from where, what, on which target, and the
-- target's document before and after (never a secret).
--
-- No foreign keys: a record outlives the project, the user and the token it names.
CREATE TABLE audit_records (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the trail's order
    at          timestamptz NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    text NOT NULL,
    actor_name  text NOT NULL,
    address     text NOT NULL DEFAULT '',
    action      text NOT NULL,
    project_id  text,                                             -- NULL: the whole instance's
    target_type text NOT NULL,
    target_id   text NOT NULL,
    target_name text NOT NULL DEFAULT '',
    before      jsonb,
    after       jsonb,
    detail      jsonb
);
CREATE INDEX audit_records_project ON audit_records (project_id, seq);
CREATE INDEX audit_records_at ON audit_records (at);
CREATE INDEX audit_records_target ON audit_records (target_id, seq);
CREATE INDEX audit_records_actor ON audit_records (actor_id, seq);

-- Append-only, for everyone: no statement changes, deletes or truncates a record, except the
-- retention sweep's deletes. The sweep says so for its own transaction only, by setting
-- fulmen.audit_sweep_before (set_config(..., true): it ends with the transaction) to the time
-- before which records may go; only records older than that may be deleted, and only then.
CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.at < nullif(current_setting('fulmen.audit_sweep_before', true), '')::timestamptz
        THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit records are append-only: only the retention sweep removes records, once past their retention'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'audit records are append-only: a record is never changed (%)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
