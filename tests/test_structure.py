"""The code's rooms stay small: no function over 80 lines, and no module imported under a one-letter name
(``from conversations import inputs as I``), in the packages (bot/, conversations/, scoring/) and the tests.

ast-based: a function's length runs from its ``def`` line to its last line, docstring and comments included,
decorators not; a nested function counts within its parent too.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import SlowInFastTest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "conversations", "scoring")
MAX_FUNCTION_LINES = 80


pytestmark = pytest.mark.fast


def _modules(*tops: str) -> Iterator[tuple[str, ast.Module]]:
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), _parsed(path)


@cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def long_functions(tree: ast.Module, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function in ``tree`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def one_letter_aliases(tree: ast.Module) -> list[str]:
    """``import x as Y`` / ``from x import y as Y`` with a one-letter Y, wherever in the module."""
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    return [f"{alias.name} as {alias.asname}" for node in imports for alias in node.names
            if alias.asname is not None and len(alias.asname) == 1]


def test_no_function_is_over_80_lines() -> None:
    too_long = [f"{path}:{line} {name} ({length} lines)" for path, tree in _modules(*PACKAGES)
                for name, line, length in long_functions(tree)]
    assert too_long == [], f"split these functions (at most {MAX_FUNCTION_LINES} lines):\n" + "\n".join(too_long)


def test_no_module_is_imported_under_a_one_letter_name() -> None:
    found = [f"{path}: {alias}" for path, tree in _modules(*PACKAGES, "tests", "benchmarks")
             for alias in one_letter_aliases(tree)]
    assert found == [], "import the module under its own name:\n" + "\n".join(found)


def test_the_checks_find_what_they_look_for() -> None:
    body = "\n".join(f"    x = {i}" for i in range(80))
    tree = ast.parse(f"def short():\n{body[:-11]}\n\nasync def long():\n{body}\n\n"
                     "from conversations import inputs as I\nimport json as j\nimport re as regex\n")
    assert long_functions(tree) == [("long", 82, 81)]
    assert one_letter_aliases(tree) == ["inputs as I", "json as j"]


def test_a_fast_test_starts_no_process_and_opens_no_server() -> None:
    """The fast mark is checked while the test runs (tests/conftest.py): this module is marked fast."""
    with pytest.raises(SlowInFastTest, match="marked fast but starts a process"):
        subprocess.Popen([sys.executable, "-c", "pass"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(SlowInFastTest, match="marked fast but opens a server"):
            s.listen()
