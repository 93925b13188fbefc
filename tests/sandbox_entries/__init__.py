"""Sandbox entries for the sandbox's integration tests and benchmark.

Importable by the zygote because the tests pass this directory's parent as
``extra_sys_path``; each entry is ``sandbox_entries.entries:<name>``.
"""
