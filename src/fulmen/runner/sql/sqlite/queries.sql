-- The runner's named queries (registry.py), loaded by the store's loader (fulmen.store.queries).

-- name: insert_worker
INSERT INTO workers (
    id, name, type, script, script_sha256, schedule, timezone, events, args, policy,
    identity_name, identity_id, run_on_create, error_policy, state, created_at, last_run,
    next_run, mac
) VALUES (
    :id, :name, :type, :script, :script_sha256, :schedule, :timezone, :events, :args, :policy,
    :identity_name, :identity_id, :run_on_create, :error_policy, :state, :created_at,
    :last_run, :next_run, :mac
);

-- name: insert_sealed_config
INSERT INTO sealed_configs (worker_id, blob) VALUES (:worker_id, :blob);

-- name: delete_worker
-- Its sealed config and run history go with it (ON DELETE CASCADE); its keys stay.
DELETE FROM workers WHERE id = :id;

-- name: list_workers
SELECT id, name, type, script, script_sha256, schedule, timezone, events, args, policy,
       identity_name, identity_id, run_on_create, error_policy, state, created_at, last_run,
       next_run
FROM workers
ORDER BY created_at, id;

-- name: list_macs
SELECT id, mac FROM workers;

-- name: set_mac
UPDATE workers SET mac = :mac WHERE id = :id;

-- name: set_state
UPDATE workers SET state = :state WHERE id = :id;

-- name: set_times
UPDATE workers SET last_run = coalesce(:last_run, last_run), next_run = :next_run
WHERE id = :id;

-- name: get_sealed_config
SELECT blob FROM sealed_configs WHERE worker_id = :worker_id;

-- name: insert_run
INSERT INTO runs (worker_id, trigger, scheduled_at, started_at, ended_at, outcome, error)
VALUES (:worker_id, :trigger, :scheduled_at, :started_at, :ended_at, :outcome, :error)
RETURNING id;

-- name: finish_run
UPDATE runs SET ended_at = :ended_at, outcome = :outcome, error = :error WHERE id = :id;

-- name: list_runs
SELECT id, worker_id, trigger, scheduled_at, started_at, ended_at, outcome, error
FROM runs
WHERE worker_id = :worker_id
ORDER BY id DESC
LIMIT :limit;

-- name: insert_sealed_key
-- The first key stored for (store, identity) wins; a racing second one is dropped.
INSERT INTO sealed_keys (store, identity_id, blob, created_at)
VALUES (:store, :identity_id, :blob, :created_at)
ON CONFLICT DO NOTHING;

-- name: get_sealed_key
SELECT blob FROM sealed_keys WHERE store = :store AND identity_id = :identity_id;

-- name: delete_sealed_key
DELETE FROM sealed_keys WHERE store = :store AND identity_id = :identity_id;

-- name: insert_identity
INSERT INTO identities (name, identity_id, policy, token_sha256)
VALUES (:name, :identity_id, :policy, :token_sha256);

-- name: get_identity
SELECT name, identity_id, policy, token_sha256 FROM identities WHERE name = :name;

-- name: set_identity_policy
UPDATE identities SET policy = :policy WHERE name = :name;
