-- Issue 18: people with their own accounts and roles per project.
--
-- A user signs in with an e-mail and a password (an argon2id hash; NULL until set: invited,
-- or signing in only through single sign-on), optionally a TOTP second factor (its secret
-- sealed with the credentials' key, its recovery codes kept as digests). Instance admins
-- manage the instance (users, instance settings) and act as owners of every project.
CREATE TABLE users (
    id                  text PRIMARY KEY,
    email               text NOT NULL UNIQUE,  -- lower case
    name                text NOT NULL DEFAULT '',
    password_hash       text,
    instance_admin      boolean NOT NULL DEFAULT false,
    totp_secret         text,                  -- sealed; NULL: no second factor
    totp_enabled_at     timestamptz,           -- NULL while enrolment is unconfirmed
    recovery_codes      text,                  -- JSON list of SHA-256 digests, used ones removed
    disabled_at         timestamptz,
    password_changed_at timestamptz,
    inserted_at         timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

-- A user's role in a project; no row: the project is not theirs to see.
CREATE TABLE project_members (
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    inserted_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

-- Viewers see dataclip bodies (run inputs and outputs) only where a project allows it.
ALTER TABLE projects ADD COLUMN viewers_see_bodies boolean NOT NULL DEFAULT false;

-- A token belongs to a user (a personal token, acting with that user's roles) or to one
-- project with one role (a service token). A token with neither was made before users
-- existed: it becomes the first instance admin's when that user is created.
ALTER TABLE api_tokens ADD COLUMN user_id text REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN project_id text REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN role text
    CHECK (role IS NULL OR role IN ('owner', 'admin', 'editor', 'viewer'));
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Sessions now belong to a user (or, before any user exists, to the token that signed in).
-- The sessions of the old table were a token's: they end here, and their holders sign in
-- again. ``stage`` is 'mfa' between a correct password and the second factor: such a
-- session opens nothing but the second factor's page.
DROP TABLE dashboard_sessions;
CREATE TABLE dashboard_sessions (
    digest      text PRIMARY KEY,
    user_id     text REFERENCES users (id) ON DELETE CASCADE,
    token_id    text REFERENCES api_tokens (id) ON DELETE CASCADE,
    stage       text NOT NULL DEFAULT 'full' CHECK (stage IN ('full', 'mfa')),
    address     text NOT NULL DEFAULT '',
    inserted_at timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL,
    CHECK ((user_id IS NULL) <> (token_id IS NULL))
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_token ON dashboard_sessions (token_id);

-- An invitation: a link holding a random secret, of which the store keeps the SHA-256. It
-- makes (or finds) the user with ``email``, sets their password, and gives them ``role`` in
-- ``project_id`` if one is named. No e-mail server is needed: the admin passes the link on.
CREATE TABLE invitations (
    digest         text PRIMARY KEY,
    email          text NOT NULL,
    instance_admin boolean NOT NULL DEFAULT false,
    project_id     text REFERENCES projects (id) ON DELETE CASCADE,
    role           text CHECK (role IS NULL OR role IN ('owner', 'admin', 'editor', 'viewer')),
    invited_by     text REFERENCES users (id) ON DELETE SET NULL,
    inserted_at    timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    accepted_at    timestamptz
);

-- Failed sign-ins, by what they were counted against ('email:<address>' and
-- 'ip:<address>'), for the rate limit: shared by every coordinator of the store.
CREATE TABLE sign_in_failures (
    subject text NOT NULL,
    at      timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_subject ON sign_in_failures (subject, at);

-- The instance's settings an admin changes at run time (e.g. require_mfa): JSON values.
CREATE TABLE instance_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL
);
