"""Reading a document someone gave us, with one set of words for each fault.

Plans (from Lightning or ``fulmen run``), project files (``fulmen deploy``) and smart-worker
specs (the runner's API) are JSON-like trees that a person wrote or a peer sent. Each used to
be read by code of its own, so one fault had four wordings (``required``, ``is required``,
``expected a string, got a list``, ``must be text``). A :class:`Reader` walks a tree and says
every fault the same way, at the path of its key::

    workflows.sync.jobs[1].name: is required
    jobs[0].id: must be text, not a list
    options.job_log_level: must be one of debug, info, warn, error, none, not 'loud'
    triggers[0].enabled: must be true or false, not text

It collects every problem rather than stopping at the first, reading a faulty value as absent
so that the walk can go on: a user fixes a file in one round, not one fault per try. What
error a caller raises with the problems (ProjectFileError, ContractError, RunnerError) and
whether it shows all of them or the first is the caller's; the words are this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["Problem", "Reader", "join", "kind"]

T = TypeVar("T")

#: ``(path, message)``; the path is empty for the document itself.
Problem = tuple[str, str]


def join(path: str, key: str | int) -> str:
    """The path of ``key`` (a name, or an index) under ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def kind(value: object) -> str:
    """What a value is, in the words of the messages (``not a list``)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    names = {dict: "an object", list: "a list", str: "text"}
    for known, name in names.items():
        if isinstance(value, known):
            return name
    return type(value).__name__


class Reader:
    """Walks a document, collecting problems; see the module docstring."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def lines(self) -> list[str]:
        """Each problem as ``path: message`` (the message alone for the document itself)."""
        return [f"{path}: {message}" if path else message for path, message in self.problems]

    # -- shapes --------------------------------------------------------------------------

    def mapping(
        self, value: Any, path: str, keys: frozenset[str] | None = None
    ) -> Mapping[str, Any] | None:
        """An object; with ``keys``, any other key is a problem too."""
        if not isinstance(value, Mapping):
            self.problem(path, f"must be an object, not {kind(value)}")
            return None
        if keys is not None:
            for key in value:
                if key not in keys:
                    self.problem(
                        join(path, str(key)), f"unknown key (known: {', '.join(sorted(keys))})"
                    )
        return value

    def typed(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        check: Callable[[Any], T | None],
        expected: str,
        *,
        required: bool = False,
    ) -> T | None:
        """``node[key]`` if ``check`` accepts it; absent (``None``) is a problem if required.
        The key's path is made only for a problem: a plan is read on every run."""
        if key not in node or node[key] is None:
            if required:
                self.problem(join(path, key), "is required")
            return None
        value = check(node[key])
        if value is None:
            self.problem(join(path, key), f"must be {expected}, not {kind(node[key])}")
        return value

    def text(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        empty: bool = False,
    ) -> str | None:
        value = self.typed(node, key, path, _str, "text", required=required)
        if value is not None and not empty and not value.strip():
            self.problem(join(path, key), "must not be empty")
            return None
        return value

    def flag(self, node: Mapping[str, Any], key: str, path: str, *, default: bool = True) -> bool:
        value = self.typed(node, key, path, _bool, "true or false")
        return default if value is None else value

    def positive(self, node: Mapping[str, Any], key: str, path: str) -> int | None:
        """A whole number of at least 1."""
        value = self.typed(node, key, path, _int, "a whole number")
        if value is not None and value < 1:
            self.problem(join(path, key), "must be at least 1")
            return None
        return value

    def positive_number(self, node: Mapping[str, Any], key: str, path: str) -> float | None:
        """A number greater than 0, whole or not."""
        value = self.typed(node, key, path, _number, "a number")
        if value is not None and value <= 0:
            self.problem(join(path, key), "must be more than 0")
            return None
        return value

    def choice(
        self, node: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...]
    ) -> str | None:
        value = self.text(node, key, path)
        if value is not None and value not in choices:
            self.problem(join(path, key), f"must be one of {', '.join(choices)}, not {value!r}")
            return None
        return value

    def items(self, node: Mapping[str, Any], key: str, path: str) -> list[Any]:
        """A list; absent is empty."""
        value = node.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(join(path, key), f"must be a list, not {kind(value)}")
            return []
        return value

    def texts(self, node: Mapping[str, Any], key: str, path: str) -> list[str]:
        """A list of non-empty texts; absent is empty."""
        found: list[str] = []
        for i, item in enumerate(self.items(node, key, path)):
            if not isinstance(item, str):
                self.problem(join(join(path, key), i), f"must be text, not {kind(item)}")
            elif not item.strip():
                self.problem(join(join(path, key), i), "must not be empty")
            else:
                found.append(item)
        return found


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
