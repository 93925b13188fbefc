-- The audit trail's filtered listings and its retention sweep, each read through an index
-- that holds what it returns or deletes. The trail grows with every user action (each
-- sign-in is a record), and the listings read it newest first until a page was full: a
-- filter on a rare actor, code or project read the whole trail, and so did the daily sweep
-- that found nothing old enough to go (bench/history.py; store/audit.py).
--
-- An actor is found by id (audit_records_actor) or by name in any case (this one).
CREATE INDEX audit_records_actor_name ON audit_records (lower(actor_name), seq);
-- An action filter is a noun ('sign_in': every sign_in.…) or a code ('sign_in.failed', and
-- the codes under it): the noun is the action up to its first dot, the code up to its
-- second. queries.sql's list_audit_records_of_noun and _of_code name these expressions.
CREATE INDEX audit_records_noun ON audit_records (split_part(action, '.', 1), seq);
CREATE INDEX audit_records_code ON audit_records (
    (split_part(action, '.', 1) || '.' || split_part(action, '.', 2)), seq
);
-- The sweep's: a project's records (or the instance's, NULL) older than a time.
CREATE INDEX audit_records_project_at ON audit_records (project_id, at);
