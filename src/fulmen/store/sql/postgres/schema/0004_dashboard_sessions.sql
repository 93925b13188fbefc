-- The dashboard's sign-in sessions (issue 13). The cookie holds a random id; the store keeps
-- only its SHA-256, with the API token that signed in: deleting that token deletes its
-- sessions. A session ends when unused for the idle limit or older than the absolute limit
-- (the coordinator's settings); expired rows are removed as new sessions open.
CREATE TABLE dashboard_sessions (
    digest      text PRIMARY KEY,
    token_id    text NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    inserted_at timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_token ON dashboard_sessions (token_id);
