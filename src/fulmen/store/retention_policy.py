"""What a project's retention settings mean at a given moment. Pure: no I/O, no clock.

A project keeps its run history ``history_retention_period`` days and its dataclip bodies
``dataclip_retention_period`` days; bodies never outlive the history they belong to, so a
missing or longer body period means "as long as the history". In ``erase_all`` mode bodies
are wiped as soon as their runs are done with them (the store does that when a run ends);
the sweep only catches what a crash left behind, after ``ERASE_GRACE``.

The sweep (fulmen.store.retention) turns :func:`cutoffs` into bounded deletes and wipes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fulmen.errors import InputError
from fulmen.store.models.catalog import Project, RetentionPolicy

__all__ = [
    "ERASE_GRACE",
    "MAX_DAYS",
    "Cutoffs",
    "audit_cutoff",
    "check_project",
    "cutoffs",
    "keeps_bodies",
]

#: In ``erase_all`` mode, a body still there this long after it was stored was missed (the
#: coordinator stopped before the run ended, say): the sweep wipes it, unless a run that has
#: not ended still needs it.
ERASE_GRACE = timedelta(hours=1)
#: The longest period a project keeps anything (100 years); longer is "forever" (none).
#: Dates this far back are well inside what ``datetime`` can hold.
MAX_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What was stored before these times goes; ``None``: nothing goes."""

    #: Work orders (with their runs, steps and logs) and dataclip rows.
    history_before: datetime | None
    #: Dataclip bodies (the rows stay until the history goes).
    bodies_before: datetime | None

    @property
    def anything(self) -> bool:
        return self.history_before is not None or self.bodies_before is not None


def cutoffs(project: Project, now: datetime) -> Cutoffs:
    """The project's cutoffs at ``now``."""
    history = project.history_retention_period
    bodies = project.dataclip_retention_period
    if history is not None and (bodies is None or bodies > history):
        bodies = history
    body_cutoff = _before(now, bodies)
    if project.retention_policy is RetentionPolicy.ERASE_ALL:
        erase = now - ERASE_GRACE
        body_cutoff = erase if body_cutoff is None else max(body_cutoff, erase)
    return Cutoffs(history_before=_before(now, history), bodies_before=body_cutoff)


def audit_cutoff(
    project: Project | None, now: datetime, *, floor_days: int, instance_days: int
) -> datetime | None:
    """Before when audit records may go (issue 18); ``None``: they are kept for good.

    A project's records are kept as long as its history (for good, without a period), but
    never fewer than ``floor_days`` days, whatever its period: a project cannot shorten its
    own trail below what the operator set. With ``project`` ``None``: the records of the
    whole instance (sign-ins, users) and of deleted projects, kept ``instance_days`` days,
    never fewer than ``floor_days`` either.
    """
    if project is None:
        return _before(now, max(instance_days, floor_days))
    if project.history_retention_period is None:
        return None
    return _before(now, max(project.history_retention_period, floor_days))


def _before(now: datetime, days: int | None) -> datetime | None:
    """``days`` before ``now``; none for none, and for a period longer than any a project
    may have (a row stored before :data:`MAX_DAYS` was checked): its date would be out of
    ``datetime``'s range, and nothing that old exists."""
    if days is None or days > MAX_DAYS:
        return None
    return now - timedelta(days=days)


def keeps_bodies(project: Project) -> bool:
    """Whether the project's runs send and store their outputs (plan ``output_dataclips``)."""
    return project.retention_policy is not RetentionPolicy.ERASE_ALL


def check_project(project: Project) -> None:
    """Refuse retention settings that cannot be stored (InputError naming the field)."""
    for name in ("history_retention_period", "dataclip_retention_period"):
        days = getattr(project, name)
        if days is not None and (isinstance(days, bool) or not 1 <= days <= MAX_DAYS):
            raise InputError(f"{name} is a number of days (1 to {MAX_DAYS}) or none, not {days!r}")
    history, bodies = project.history_retention_period, project.dataclip_retention_period
    if history is not None and bodies is not None and bodies > history:
        raise InputError(
            f"dataclip_retention_period ({bodies} days) cannot be longer than "
            f"history_retention_period ({history} days): bodies go with their history"
        )
    try:
        RetentionPolicy(project.retention_policy)
    except ValueError:
        known = ", ".join(policy.value for policy in RetentionPolicy)
        raise InputError(
            f"retention_policy is one of {known}, not {project.retention_policy!r}"
        ) from None
