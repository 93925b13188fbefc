"""The Store conformance suite (run on SQLite and PostgreSQL)."""
