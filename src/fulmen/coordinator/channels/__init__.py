"""The two Lightning channels a worker joins: ``worker:queue`` and ``run:<id>`` (spec §4, §5)."""
