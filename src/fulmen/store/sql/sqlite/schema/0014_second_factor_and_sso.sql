-- Issue 18: the TOTP second factor and single sign-on with OpenID Connect.
--
-- The last 30-second step whose code was accepted for a user (RFC 6238 §5.2: a code is
-- accepted once): a code of that step or an earlier one is refused as a replay. Set by a
-- compare-and-set, so that two requests carrying one code cannot both pass.
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

-- A single sign-on begun and not yet come back: the browser holds the state (a random
-- value, in a short-lived cookie and in the provider's redirect), the store only its
-- SHA-256, with the nonce the ID token must carry, the PKCE verifier, the redirect URI the
-- provider was given and where to go afterwards. Taken (deleted) by the callback, once.
CREATE TABLE sso_requests (
    digest       TEXT PRIMARY KEY,
    nonce        TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    next         TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sso_requests_expiry ON sso_requests (expires_at);

-- Sessions begun through single sign-on: the provider vouched for the second factor, so
-- an instance that requires one does not send their holders to enrol a local one.
CREATE TABLE sso_sessions (
    digest TEXT PRIMARY KEY REFERENCES dashboard_sessions (digest) ON DELETE CASCADE
);
