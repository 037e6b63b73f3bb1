"""The test suite can fail: no assert compares an expression with itself, no ``or`` makes an assert always true.

A static (ast) walk over every ``tests/*.py`` and ``tests/benchmarks/*.py``. It flags:

* a comparison (``==``, ``<=``, ``>=``, ``is``) whose two sides have the same ast dump (``x == x``), including
  ``x == pytest.approx(x)`` and ``np.testing.assert_allclose(x, x)`` / ``assert_array_equal(x, x)``;
* a boolean ``or`` in an assert with an always-true operand: ``or True``, ``or <non-empty literal>``, or a bare
  ``name > 0`` / ``name >= 0`` beside a comparison of the same name with ``approx`` or a literal (the
  ``rate == approx(60) or rate > 0`` pattern, true for any positive rate);
* an assert of a non-empty literal (``assert (cond, "message")`` is always true) and ``len(x) >= 0``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
_SELF_COMPARE_OPS = (ast.Eq, ast.LtE, ast.GtE, ast.Is)
_SAME_ARG_CALLS = {"assert_allclose", "assert_array_equal", "assert_equal", "assert_array_almost_equal",
                   "assert_almost_equal", "isclose", "allclose", "array_equal"}


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _unwrap_approx(node: ast.AST) -> ast.AST:
    """``pytest.approx(x, ...)`` / ``approx(x)`` -> ``x``; anything else unchanged."""
    if isinstance(node, ast.Call) and node.args:
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name == "approx":
            return node.args[0]
    return node


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)


def _always_true_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return bool(node.value) and node.value is not Ellipsis or node.value is True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return len(node.elts) > 0
    if isinstance(node, ast.Dict):
        return len(node.keys) > 0
    return False


def _bare_positive_check(node: ast.AST) -> str | None:
    """``name > 0`` / ``name >= 0`` (also ``0 < name``): the dump of ``name``, else None."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    zero = lambda n: isinstance(n, ast.Constant) and not isinstance(n.value, bool) and n.value == 0  # noqa: E731
    if isinstance(op, (ast.Gt, ast.GtE)) and zero(right):
        return _dump(left)
    if isinstance(op, (ast.Lt, ast.LtE)) and zero(left):
        return _dump(right)
    return None


def _len_at_least_zero(node: ast.AST) -> bool:
    """``len(x) >= 0`` / ``0 <= len(x)``: true for every sized object."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return False
    left, op, right = node.left, node.ops[0], node.comparators[0]

    def is_len(n):
        return isinstance(n, ast.Call) and getattr(n.func, "id", None) == "len"

    def zero(n):
        return isinstance(n, ast.Constant) and n.value == 0 and not isinstance(n.value, bool)

    return (isinstance(op, ast.GtE) and is_len(left) and zero(right)) or (isinstance(op, ast.LtE) and zero(left)
                                                                          and is_len(right))


def _compared_names(node: ast.AST) -> set[str]:
    """Dumps of the operands of a comparison with ``approx`` or a numeric literal (the 'meant' check)."""
    out: set[str] = set()
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        has_target = any(isinstance(_unwrap_approx(s), ast.Constant) or s is not _unwrap_approx(s) for s in sides)
        if has_target:
            out.update(_dump(s) for s in sides if not isinstance(s, ast.Constant) and s is _unwrap_approx(s))
    return out


def problems_in(source: str, filename: str = "<snippet>") -> list[str]:
    """Every self-comparison and always-true ``or`` inside asserts (and same-argument assert calls)."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def where(n: ast.AST) -> str:
        return f"{filename}:{getattr(n, 'lineno', '?')}"

    def check_expr(expr: ast.AST) -> None:
        for n in ast.walk(expr):
            if isinstance(n, ast.Compare):
                sides = [n.left, *n.comparators]
                for op, a, b in zip(n.ops, sides, sides[1:]):
                    if isinstance(op, _SELF_COMPARE_OPS) and _dump(_unwrap_approx(a)) == _dump(_unwrap_approx(b)):
                        found.append(f"{where(n)}: compares an expression with itself: {ast.unparse(n)}")
            elif isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or):
                for i, v in enumerate(n.values):
                    if _always_true_literal(v):
                        found.append(f"{where(n)}: 'or' with an always-true operand: {ast.unparse(n)}")
                    name = _bare_positive_check(v)
                    meant: set[str] = set()
                    for w in n.values[:i] + n.values[i + 1:]:
                        meant |= _compared_names(w)
                    if name is not None and name in meant:
                        found.append(f"{where(n)}: 'or {ast.unparse(v)}' makes the check always pass for any "
                                     f"positive value: {ast.unparse(n)}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            if _always_true_literal(node.test):          # assert (cond, "message"), assert "text"
                found.append(f"{where(node)}: asserts a non-empty literal (always true): {ast.unparse(node.test)}")
            check_expr(node.test)
            for n in ast.walk(node.test):
                if _len_at_least_zero(n):
                    found.append(f"{where(n)}: a length is always >= 0: {ast.unparse(n)}")
        elif isinstance(node, ast.Call) and _call_name(node) in _SAME_ARG_CALLS and len(node.args) >= 2:
            if _dump(node.args[0]) == _dump(node.args[1]):
                found.append(f"{where(node)}: {_call_name(node)} of an expression with itself: {ast.unparse(node)}")
    return found


def _suite_files() -> list[Path]:
    return sorted(TESTS.glob("*.py")) + sorted((TESTS / "benchmarks").glob("*.py"))


def test_no_tautologies_in_the_suite():
    found = []
    for path in _suite_files():
        found += problems_in(path.read_text(), str(path.relative_to(TESTS.parent)))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "assert x == x",
    "assert a.b[1:] >= a.b[1:]",
    "assert rate == pytest.approx(rate)",
    "assert f(1) == approx(f(1), rel=1e-3)",
    "np.testing.assert_allclose((m + l)[ok], (m + l)[ok])",
    "assert ok or True",
    "assert ok or 'always'",
    "assert ok or [1]",
    "assert rate_hz == pytest.approx(60.0) or rate_hz > 0",
    "assert raw.rate_hz == 60 or raw.rate_hz >= 0",
    "assert n == 3 or 0 < n",
    "assert (x == 1, 'x must be one')",
    "assert len(rows) >= 0",
])
def test_the_checker_catches_bad_snippets(snippet):
    assert problems_in(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "assert x == y",
    "assert rate_hz == pytest.approx(120.0)",
    "assert a > 0 or b > 0",                               # two different quantities: a real disjunction
    "assert x == pytest.approx(1.0) or y > 0",
    "np.testing.assert_allclose(med + lat, axial)",
    "assert ok or False",
    "assert ok or ''",
    "assert (x == 1), 'x must be one'",
    "assert len(rows) >= 1",
])
def test_the_checker_passes_good_snippets(snippet):
    assert problems_in(snippet) == [], snippet
