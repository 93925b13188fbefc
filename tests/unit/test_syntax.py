"""fulmen.syntax: a body or condition that does not parse in its language is found, and the
message names the line and column a person would look at."""

from __future__ import annotations

import pytest

from fulmen.plan import JAVASCRIPT, PYTHON
from fulmen.syntax import SyntaxProblem, body_problem, condition_problem


@pytest.mark.parametrize(
    "body",
    [
        "fn(s => s)",
        "// Get some data\nget('https://example.com/patients');\nfn(state => state);",
        "fn(async (state) => { const r = await fetch(x); return { ...state, r }; })",
        "each('$.items[*]', fn(s => s?.data ?? {}))",
        "fn(s => `count: ${s.data.count}`)",
        "import { fn } from '@openfn/language-common';\nexport default [fn(s => s)];",
        "fn(s => { const é = 'ü'; return s })",
        "",
    ],
)
def test_javascript_bodies_that_parse(body: str) -> None:
    assert body_problem(body, JAVASCRIPT) is None


@pytest.mark.parametrize(
    ("body", "line", "column", "says"),
    [
        # a stray token: where it is
        ("fn(state => {\n  const x = 1 +;\n  return state;\n});", 2, 15, "unexpected '+'"),
        ("fn(s => s))", 1, 11, "unexpected ')'"),
        ("fn(s => { const é = 'ü'; return s )", 1, 35, "unexpected ')'"),  # characters
        # the end reached with a bracket open: the end, and the bracket
        ("get('/x'\npost('/y')", 2, 11, "the '(' at line 1, column 4 is not closed"),
        ("fn(s => {\n  return s\n", 2, 11, "the '{' at line 1, column 9 is not closed"),
        ("x = [1, 2", 1, 10, "the '[' at line 1, column 5 is not closed"),
        # the end reached in the middle of an expression
        ("const a = 1\nlet b = a +\n", 2, 12, "'+' needs something after it"),
    ],
)
def test_javascript_bodies_that_do_not_parse_name_the_place(
    body: str, line: int, column: int, says: str
) -> None:
    problem = body_problem(body, JAVASCRIPT)
    assert problem is not None
    assert (problem.line, problem.column) == (line, column), problem
    assert says in problem.message
    assert str(problem).startswith(f"SyntaxError at line {line}, column {column}: ")


def test_a_javascript_body_that_is_python_does_not_parse() -> None:
    """Issue 15: a Python job sent to a JavaScript worker, or the other way round."""
    assert body_problem("@fn\ndef count(state):\n    return state\n", JAVASCRIPT) is not None
    assert body_problem("fn(s => s)", PYTHON) == SyntaxProblem(1, 7, "invalid syntax")


def test_python_bodies_are_compiled_as_the_runtime_compiles_them() -> None:
    assert body_problem("fn(lambda s: s)\n@fn\ndef f(state):\n    return state\n", PYTHON) is None
    never_closed = body_problem("x = 1\nfn(lambda s: s\n", PYTHON)
    assert never_closed == SyntaxProblem(2, 3, "'(' was never closed")
    outside = body_problem("return 1", PYTHON)  # ast.parse takes it; compile does not
    assert outside is not None and "outside function" in outside.message
    nul = body_problem("a\x00b", PYTHON)
    assert nul is not None and "null" in nul.message


@pytest.mark.parametrize(
    "condition",
    [
        "state.data.count > 2 && !state.errors",
        "state.data?.items?.length >= 1",
        "!!state.references.at(-1)",
        "state.x === 'a' ||\n  state.y === 'b'",
        "state.ok // a comment",
        "always",
        "on_job_success",
        "on_job_failure",
        "",
    ],
)
def test_javascript_conditions_that_are_one_expression(condition: str) -> None:
    assert condition_problem(condition, JAVASCRIPT) is None


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("state.data.count >", "'>' needs something after it"),
        ("state.data.x = = 1", "unexpected '='"),
        ("state.a; state.b", "a condition is one expression, not 2 statements"),
        ("return state.ok", "a condition is one expression, not a return statement"),
        ("(state.ok", "the '(' at line 1, column 1 is not closed"),
    ],
)
def test_javascript_conditions_that_are_not(condition: str, says: str) -> None:
    problem = condition_problem(condition, JAVASCRIPT)
    assert problem is not None and says in problem.message, problem


def test_python_conditions_keep_their_rules() -> None:
    assert condition_problem("state.data.count > 0", PYTHON) is None
    assert condition_problem('state["data"]["count"] > 0', PYTHON) is None
    assert condition_problem("state.data.count > 2 && !state.errors", PYTHON) is not None
    assert condition_problem("x = 1", PYTHON) is not None
