"""House rule: no function in src/ is longer than 60 lines (a longer one says two things; split it)."""

from __future__ import annotations

import ast

from workflow_helpers import ROOT

LIMIT = 60


def long_functions(source: str, limit: int = LIMIT) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method longer than ``limit`` lines, decorators excluded."""
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_the_length_check_finds_a_long_function_and_passes_a_short_one():
    body = "".join(f"    x{i} = {i}\n" for i in range(LIMIT))
    assert long_functions(f"def long():\n{body}") == [("long", 1, LIMIT + 1)]
    assert long_functions("def short():\n    return 1\n") == []


def test_no_function_in_src_is_longer_than_60_lines():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for name, line, length in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "split these functions:\n" + "\n".join(offenders)
