-- The dashboard's sign-in sessions (issue 13). The cookie holds a random id; the store keeps
-- only its SHA-256, with the API token that signed in: deleting that token deletes its
-- sessions. A session ends when unused for the idle limit or older than the absolute limit
-- (the coordinator's settings); expired rows are removed as new sessions open.
CREATE TABLE dashboard_sessions (
    digest      TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    inserted_at INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_token ON dashboard_sessions (token_id);
