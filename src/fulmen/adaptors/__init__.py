"""Adaptors: the operations a job has in scope without an import.

An adaptor is a plain Python module whose public names (its ``__all__``) are put in scope for
a job. ``common`` and ``http`` ship with Fulmen; any importable module can be named instead.
"""
