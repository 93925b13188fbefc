"""The instance's settings an admin changes at run time (issue 18): one row per setting,
its value as JSON, read back into :class:`~fulmen.store.models.sign_in.InstanceSettings`
(a setting never written has its default there)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from fulmen.errors import InputError
from fulmen.store.db import Tx, dumps, loads
from fulmen.store.models.common import JSONValue
from fulmen.store.models.sign_in import InstanceSettings

__all__ = ["get_instance_settings", "set_instance_settings"]

#: Each setting's name and the type its value must have.
_TYPES: Final = {f.name: f.type for f in dataclasses.fields(InstanceSettings)}
_PYTHON: Final = {"bool": bool, "int": int, "str": str}


async def get_instance_settings(tx: Tx) -> InstanceSettings:
    """The settings; a stored value of a setting this Fulmen does not know is left out."""
    values = {}
    for row in await tx.fetchall("list_instance_settings"):
        if row["key"] in _TYPES:
            values[row["key"]] = loads(row["value"])
    return InstanceSettings(**values)


async def set_instance_settings(
    tx: Tx, changes: Mapping[str, JSONValue], now: datetime
) -> InstanceSettings:
    """Set each setting named in ``changes`` (the others keep their values).

    Raises:
        InputError: ``unknown_setting`` or ``bad_setting`` (a value of the wrong type),
            naming the setting; nothing is changed then.
    """
    for key, value in changes.items():
        kind = _TYPES.get(key)
        if kind is None:
            known = ", ".join(sorted(_TYPES))
            raise InputError(
                f"{key!r} is not an instance setting (there are: {known})",
                code="unknown_setting",
                field=key,
            )
        expected = _PYTHON[str(kind)]
        if type(value) is not expected:
            raise InputError(f"{key} must be a {expected.__name__}", code="bad_setting", field=key)
    for key, value in changes.items():
        await tx.execute("put_instance_setting", {"key": key, "value": dumps(value), "now": now})
    return await get_instance_settings(tx)
