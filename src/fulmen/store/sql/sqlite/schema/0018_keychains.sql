-- Issue 19: keychain credentials. A keychain picks one of its project's credentials for a
-- run by the value at a JSONPath in the run's input: each entry maps a value to a
-- credential; the default (if any) is taken when no entry matches (store/keychains.py).
CREATE TABLE keychains (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    path                  TEXT NOT NULL,
    default_credential_id TEXT,
    inserted_at           INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (project_id, name),
    UNIQUE (id, project_id),
    -- Only a credential of its own project; a credential it uses cannot go.
    FOREIGN KEY (default_credential_id, project_id) REFERENCES credentials (id, project_id)
);

CREATE TABLE keychain_entries (
    keychain_id   TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    value         TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    PRIMARY KEY (keychain_id, value),
    FOREIGN KEY (keychain_id, project_id) REFERENCES keychains (id, project_id)
        ON DELETE CASCADE,
    FOREIGN KEY (credential_id, project_id) REFERENCES credentials (id, project_id)
);
CREATE INDEX keychain_entries_credential ON keychain_entries (credential_id);

-- A job names a credential or a keychain (store/catalog.py checks the project and that it
-- is not both); a keychain a job uses cannot go.
ALTER TABLE jobs ADD COLUMN keychain_id TEXT REFERENCES keychains (id);
CREATE INDEX jobs_keychain ON jobs (keychain_id) WHERE keychain_id IS NOT NULL;

-- What each keychain of a run chose when the run was made, as it was then: the credential
-- (NULL: none, and the run was made failed), the value that matched (NULL: the default, or
-- none). Never a credential's value. Kept when the keychain or credential goes later.
CREATE TABLE run_keychains (
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    keychain_id   TEXT NOT NULL,
    keychain_name TEXT NOT NULL,
    path          TEXT NOT NULL,
    credential_id TEXT,
    matched       TEXT,
    PRIMARY KEY (run_id, keychain_id)
);
