"""The Python examples of README.md and docs/*.md run as written and print what their comments say.

A block runs statement by statement in one namespace. A statement that is an expression (a bare
value or a ``print(...)``) states its result in a comment: at the end of its last line, or on the
comment lines right under it. The result is compared as doctest compares it (``...`` elides, spaces
are normalised); a note after two spaces in parentheses, ``# 0.747...  (soft-F1)``, is not part of it.
Blocks that name ``report_weights_dir`` need real scorer weights: they are only compiled.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "recipes" / "README.md"]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
NOTE = re.compile(r"\s{2,}\(.*\)$")
CHECKER = doctest.OutputChecker()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks() -> list:
    blocks = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2  # the block's first code line
            blocks.append(pytest.param(match.group(1), id=f"{doc.relative_to(REPO)}:{line}"))
    return blocks


def stated_result(lines: list[str], node: ast.stmt) -> str | None:
    """The result a statement's comment states, or None when it states none."""
    last = lines[node.end_lineno - 1]
    code_end = node.end_col_offset
    trailing = last[code_end:].strip()
    if trailing.startswith("#"):
        return NOTE.sub("", trailing[1:].strip())
    below = []
    for line in lines[node.end_lineno:]:
        if not line.startswith("#"):
            break
        below.append(line[1:].removeprefix(" "))
    if not below:
        return None
    below[-1] = NOTE.sub("", below[-1])
    return "\n".join(below)


def test_the_docs_have_runnable_examples():
    assert len(python_blocks()) >= 5  # README and docs/grounding.md carry the runnable ones


@pytest.mark.parametrize("block", python_blocks())
def test_example_runs_and_prints_what_it_states(block):
    tree = ast.parse(block)  # a syntax error fails here, also for the compile-only blocks
    if "report_weights_dir" in block:
        pytest.skip("needs real scorer weights (report_weights_dir); compiled only")
    lines = block.splitlines()
    namespace: dict = {"__name__": "doc_example"}
    checked = 0
    for node in tree.body:
        module = ast.Module(body=[node], type_ignores=[])
        expected = stated_result(lines, node) if isinstance(node, ast.Expr) else None
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            if isinstance(node, ast.Expr) and not (isinstance(node.value, ast.Call)
                                                   and getattr(node.value.func, "id", None) == "print"):
                value = eval(compile(ast.Expression(node.value), "<doc>", "eval"), namespace)  # noqa: S307
                if value is not None:
                    print(repr(value))
            else:
                exec(compile(module, "<doc>", "exec"), namespace)  # noqa: S102
        if expected is not None:
            got = printed.getvalue()
            assert CHECKER.check_output(expected + "\n", got, FLAGS), (
                f"line {node.lineno}: the docs say\n{expected}\nbut it printed\n{got}")
            checked += 1
    assert checked, "a runnable example should state at least one result"
