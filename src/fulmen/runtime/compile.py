"""From a job's source to its operations.

The source is run statement by statement in a namespace that holds the adaptor's names. A
top-level expression that evaluates to an Operation is a step, and so is a function decorated
with ``@fn``; anything else (imports, helpers, constants) just runs. This is how OpenFn's
compiler treats the top-level calls of a JavaScript job, done with Python's own ``ast``.

Building happens before any operation runs, so a job that does not parse fails with a
CompileError that names the line, and nothing has happened yet. A top level that parses but
raises while it runs (``x = {}["b"]``) is the job's runtime error (StatementError around what
it raised), reported as an operation's would be, with the job's line.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from fulmen.adaptors.operation import Operation
from fulmen.errors import CompileError

__all__ = ["ASYNC_LIBRARIES", "StatementError", "check_syntax", "compile_job", "names_any"]

#: The libraries whose functions, called from a plain function, may need a running event loop
#: (``asyncio.ensure_future``, ``asyncio.gather``, ``get_event_loop().run_in_executor``...).
ASYNC_LIBRARIES = frozenset({"asyncio", "anyio"})


def check_syntax(source: str, filename: str) -> ast.Module:
    """Parse a job; CompileError names the line when it does not parse. Runs no user code."""
    try:
        return ast.parse(source, filename=filename)
    except (SyntaxError, ValueError) as exc:  # ValueError: source with NUL bytes
        lineno = getattr(exc, "lineno", None)
        where = f"line {lineno}" if lineno else "an unknown line"
        line = getattr(exc, "text", None)
        text = f": {line.strip()}" if line and line.strip() else ""
        message = getattr(exc, "msg", str(exc))
        raise CompileError(f"SyntaxError at {where}: {message}{text}") from exc


def names_any(tree: ast.Module, names: frozenset[str], source: str | None = None) -> bool:
    """Whether the job's code imports or names one of ``names`` (a module's top name).

    ``source``, the text ``tree`` was parsed from, spares most jobs the walk of every node
    (a fifth of a trivial run's Python time in the runtime, ``ast.walk`` being pure Python): a
    name that is nowhere in an ASCII text is in no node either. Identifiers are
    NFKC-normalised, so a text that is not ASCII may spell one in other letters: it is walked.
    """
    if source is not None and source.isascii() and not any(name in source for name in names):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            return True
        if isinstance(node, ast.Import) and any(
            alias.name.partition(".")[0] in names for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").partition(".")[0] in names:
            return True
    return False


class StatementError(Exception):
    """A top-level statement of the job raised while it ran: the job's runtime error (``error``,
    with its traceback), reported as one, not as a CompileError: the code parsed."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def compile_job(
    source: str, scope: Mapping[str, Any], filename: str, tree: ast.Module | None = None
) -> list[Operation]:
    """The job's operations, in order.

    ``tree`` is what :func:`check_syntax` returned for ``source``, when the caller has it.

    Raises:
        CompileError: the source does not parse, or a statement does not compile.
        StatementError: a top-level statement raised while it ran (what it raised inside).
        MemoryError: as anywhere.
    """
    if tree is None:
        tree = check_syntax(source, filename)
    namespace: dict[str, Any] = {"__name__": "__job__", **scope}
    operations: list[Operation] = []
    for statement in tree.body:
        try:
            operation = _run_statement(statement, namespace, filename)
        except (MemoryError, StatementError, CompileError):
            raise
        except BaseException as exc:
            raise CompileError(f"{type(exc).__name__} at line {statement.lineno}: {exc}") from exc
        if operation is not None:
            operations.append(operation)
    return operations


def _run_statement(
    statement: ast.stmt, namespace: dict[str, Any], filename: str
) -> Operation | None:
    """Run one top-level statement; return the Operation it makes a step, if any."""
    if isinstance(statement, ast.Expr):
        code = compile(ast.Expression(statement.value), filename, "eval")
        value = _running(eval, code, namespace)
        return value if isinstance(value, Operation) else None
    module = ast.Module(body=[statement], type_ignores=[])
    _running(exec, compile(module, filename, "exec"), namespace)
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        value = namespace.get(statement.name)
        if statement.decorator_list and isinstance(value, Operation):
            return value
    return None


def _running(run: Any, code: Any, namespace: dict[str, Any]) -> Any:
    """``run(code, namespace)``; what the job's code raises comes out as a StatementError."""
    try:
        return run(code, namespace)
    except MemoryError:
        raise
    except BaseException as exc:
        raise StatementError(exc) from exc
