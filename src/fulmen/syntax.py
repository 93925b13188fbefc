"""Whether a job's body, or an edge's condition, parses in its language, and where it does not.

A workflow is refused when it is saved (the REST API, ``fulmen deploy``) if a job's body or an
edge's condition cannot run, with the line and column of the fault, rather than saved and
then crashing every run with a CompileError. Nothing here runs user code: it only parses.

* Python is compiled by Python itself, as the runtime compiles a job (``exec`` mode, so that
  ``return`` outside a function is refused here as it would be there) and a condition
  (``eval`` mode: one expression).
* JavaScript is parsed with tree-sitter's JavaScript grammar, which accepts what OpenFn's
  compiler does (ES modules, ``async``/``await``, optional chaining…) and JSX besides. A
  condition must be one expression, as OpenFn's runtime evaluates it (``return <condition>``).

Tree-sitter does not stop at the first error: it recovers, wrapping what it could not place in
``ERROR`` nodes, or inserting a ``MISSING`` token. Its error nodes are coarse (an unclosed
``{`` can make the whole rest of the body one ``ERROR``), so the fault is told from the tokens:
a missing token where the grammar wanted it, a closing bracket with nothing open, the end of
the source with a bracket still open, else the first token tree-sitter could not place.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import tree_sitter
import tree_sitter_javascript

from fulmen.plan import JAVASCRIPT, is_named_condition

__all__ = ["SyntaxProblem", "body_problem", "condition_problem"]


_OPENERS: Final = {"(": ")", "[": "]", "{": "}", "${": "}"}
_CLOSERS: Final = frozenset(_OPENERS.values())
#: How much of an unexpected token a message quotes.
_QUOTED: Final = 20


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """Where a source stops parsing: ``line`` and ``column`` count from 1, in characters."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"SyntaxError at line {self.line}, column {self.column}: {self.message}"


def body_problem(source: str, language: str) -> SyntaxProblem | None:
    """Why a job's body in ``language`` does not parse, or ``None`` when it does."""
    if language == JAVASCRIPT:
        return _javascript(source)
    return _python(source, "exec")


def condition_problem(condition: str, language: str) -> SyntaxProblem | None:
    """Why an edge condition in ``language`` is neither a keyword (``always``…) nor one
    expression, or ``None`` when it is fine. A blank condition means ``always``."""
    if is_named_condition(condition):
        return None
    if language == JAVASCRIPT:
        return _javascript_expression(condition)
    return _python(condition, "eval")


# -- Python ------------------------------------------------------------------------------------


def _python(source: str, mode: str) -> SyntaxProblem | None:
    try:
        compile(source, "<job>" if mode == "exec" else "<condition>", mode, dont_inherit=True)
    except SyntaxError as error:  # IndentationError and TabError too
        return SyntaxProblem(error.lineno or 1, error.offset or 1, error.msg)
    except ValueError as error:  # a NUL character, or text that is not Unicode
        return SyntaxProblem(1, 1, f"{error}")
    except RecursionError:
        return SyntaxProblem(1, 1, "nested too deeply to compile")
    return None


# -- JavaScript --------------------------------------------------------------------------------


@functools.cache
def _grammar() -> tree_sitter.Language:
    """The JavaScript grammar, loaded once (it is immutable; parsers are made per parse)."""
    return tree_sitter.Language(tree_sitter_javascript.language())


def _parse(text: str) -> tuple[tree_sitter.Node, bytes] | SyntaxProblem:
    try:
        source = text.encode("utf-8")
    except UnicodeEncodeError as error:
        return SyntaxProblem(1, 1, f"not Unicode text ({error.reason})")
    tree = tree_sitter.Parser(_grammar()).parse(source)
    return tree.root_node, source


def _javascript(text: str) -> SyntaxProblem | None:
    parsed = _parse(text)
    if isinstance(parsed, SyntaxProblem):
        return parsed
    root, source = parsed
    return _fault(root, source) if root.has_error else None


def _javascript_expression(text: str) -> SyntaxProblem | None:
    """One expression: a program of one expression statement (OpenFn's runtime evaluates
    ``return <condition>``, so ``a; b``, a ``return`` or a block is not a condition)."""
    parsed = _parse(text)
    if isinstance(parsed, SyntaxProblem):
        return parsed
    root, source = parsed
    if root.has_error:
        return _fault(root, source)
    statements = [child for child in root.named_children if child.type != "comment"]
    if len(statements) == 1 and statements[0].type == "expression_statement":
        return None
    found = f"{len(statements)} statements" if len(statements) > 1 else _kind(statements)
    where = statements[1] if len(statements) > 1 else statements[0] if statements else root
    return _at(source, where.start_point, f"a condition is one expression, not {found}")


def _kind(statements: list[tree_sitter.Node]) -> str:
    if not statements:
        return "nothing"
    return "a " + statements[0].type.removesuffix("_statement").replace("_", " ") + " statement"


def _fault(root: tree_sitter.Node, source: bytes) -> SyntaxProblem:
    """The first fault of a tree that has one, in the order the module docstring gives."""
    leaves = list(_leaves(root))
    missing = next((leaf for leaf in leaves if leaf.is_missing), None)
    if missing is not None:
        return _at(source, missing.start_point, f"missing {missing.type!r}")
    stray, unclosed = _brackets(leaves)
    error = _first_error(root)
    if stray is not None:
        return _at(source, stray.start_point, f"unexpected {_quote(stray)}")
    if error is not None and not source[error.end_byte :].strip():
        ending = len(source.rstrip())
        if unclosed is not None:
            row, column = _point(source, unclosed.start_point)
            message = f"the {_quote(unclosed)} at line {row}, column {column} is not closed"
        else:
            message = f"{_quote(_leaves(error)[-1])} needs something after it"
        return _at_byte(source, ending, f"unexpected end of the source: {message}")
    if error is not None:
        first = next(iter(_leaves(error)), error)
        return _at(source, error.start_point, f"unexpected {_quote(first)}")
    return SyntaxProblem(1, 1, "does not parse")  # has_error always leaves a node to blame


def _leaves(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    """The tokens under ``node``, in source order (comments and string parts included)."""
    out: list[tree_sitter.Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.child_count == 0:
            out.append(current)
        else:
            stack.extend(reversed(current.children))
    return out


def _brackets(
    leaves: list[tree_sitter.Node],
) -> tuple[tree_sitter.Node | None, tree_sitter.Node | None]:
    """The first closing bracket that closes nothing, and the innermost bracket still open at
    the end. Brackets inside strings, comments and regular expressions are parts of those
    tokens, not tokens of their own, so they do not count."""
    open_: list[tree_sitter.Node] = []
    for leaf in leaves:
        if leaf.is_named or leaf.is_missing:
            continue
        if leaf.type in _OPENERS:
            open_.append(leaf)
        elif leaf.type in _CLOSERS:
            if not open_ or _OPENERS[open_[-1].type] != leaf.type:
                return leaf, None
            open_.pop()
    return None, (open_[-1] if open_ else None)


def _first_error(node: tree_sitter.Node) -> tree_sitter.Node | None:
    if node.is_error:
        return node
    for child in node.children:
        if child.has_error:
            found = _first_error(child)
            if found is not None:
                return found
    return None


def _quote(node: tree_sitter.Node) -> str:
    text = (node.text or b"").decode("utf-8", errors="replace").split("\n")[0]
    return repr(text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "…")


def _point(source: bytes, point: tree_sitter.Point) -> tuple[int, int]:
    """A tree-sitter point (0-based row, byte column) as a 1-based line and character column."""
    row, byte_column = point
    line = source.split(b"\n")[row] if row < source.count(b"\n") + 1 else b""
    return row + 1, len(line[:byte_column].decode("utf-8", errors="replace")) + 1


def _at(source: bytes, point: tree_sitter.Point, message: str) -> SyntaxProblem:
    line, column = _point(source, point)
    return SyntaxProblem(line, column, message)


def _at_byte(source: bytes, offset: int, message: str) -> SyntaxProblem:
    before = source[:offset]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
    return SyntaxProblem(line, column, message)
