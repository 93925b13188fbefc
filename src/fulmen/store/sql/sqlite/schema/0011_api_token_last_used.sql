-- Issue 17: when each REST API token was last used, for the dashboard's token list (a token
-- nobody has used for months is one to revoke). NULL: never used since this column came.
-- Written at most once a minute per token (coordinator/api/auth.py), not on every request.
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
