"""Sandbox child<->parent framing (sans-I/O)."""
