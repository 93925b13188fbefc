-- Issue 19: OAuth2 credentials that refresh themselves (store/oauth2.py).
--
-- A credential of kind OAuth2 keeps its credentials row (name, project, and the sealed body:
-- fields given besides the token, merged into what a worker receives) and one row here: the
-- provider's settings in plain text (no secret among them), the client secret and the tokens
-- sealed under the credential key (purpose "oauth2"), when the access token expires, and
-- whether it is connected. ``refresh_lease_until``/``refresh_lease_holder``: a coordinator
-- refreshing the token right now (the others wait for it rather than refresh again).
CREATE TABLE oauth2_credentials (
    credential_id        TEXT PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    grant_type           TEXT NOT NULL
        CHECK (grant_type IN ('authorization_code', 'client_credentials')),
    authorization_url    TEXT NOT NULL,
    token_url            TEXT NOT NULL,
    client_id            TEXT NOT NULL,
    scopes               TEXT NOT NULL,
    sealed_secrets       BLOB NOT NULL,
    oauth2_status        TEXT NOT NULL
        CHECK (oauth2_status IN ('not_connected', 'connected', 'needs_reauthorization')),
    problem              TEXT NOT NULL,
    expires_at           INTEGER,
    refreshed_at         INTEGER,
    refresh_lease_until  INTEGER,
    refresh_lease_holder TEXT
);

-- An authorization begun from the dashboard ("Connect") and not yet come back: kept under
-- the SHA-256 of its state, bound to the dashboard session that began it, with the PKCE
-- verifier and the redirect URI the provider was given. Taken (deleted) by the callback, once.
CREATE TABLE oauth2_authorizations (
    digest         TEXT PRIMARY KEY,
    credential_id  TEXT NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    session_digest TEXT NOT NULL,
    verifier       TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX oauth2_authorizations_expiry ON oauth2_authorizations (expires_at);
