"""No function in the package is longer than 60 lines (migrations aside): a reader sees each
one whole. ruff's PLR0915 and C901 bound statements and branches; this bounds the lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mailer"
MAX_LINES = 60

def long_functions(source: str, name: str) -> dict[str, int]:
    """'file:function' → lines, for every function (methods and nested ones too) over MAX_LINES,
    counted from its `def` to its last line."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_LINES:
                found[f"{name}:{node.name}"] = lines
    return found


def package_long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" not in path.relative_to(PACKAGE).parts:
            name = path.relative_to(PACKAGE.parent).as_posix()
            found.update(long_functions(path.read_text(encoding="utf-8"), name))
    return found


def test_the_measure_counts_from_def_to_last_line() -> None:
    def source(body_lines: int) -> str:
        return "class A:\n    def f(self):\n" + "        x = 1\n" * body_lines

    assert long_functions(source(MAX_LINES - 1), "m.py") == {}
    assert long_functions(source(MAX_LINES), "m.py") == {"m.py:f": MAX_LINES + 1}


def test_no_function_is_longer_than_60_lines() -> None:
    too_long = package_long_functions()
    assert too_long == {}, f"split these functions (at most {MAX_LINES} lines): {too_long}"

