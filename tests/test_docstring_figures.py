"""Measured figures live in docs/benchmarks.md, not in textclf's docstrings and comments, where they go stale.

A module says what it chose and why and points at the measurement
("docs/benchmarks.md, <section>"); the figure itself (a timing, a speed-up, a
memory footprint) is re-measured in one place. This scans every comment and
docstring of the package for the shapes such figures take.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "textclf"

# A timing ("0.66 ms"), a speed-up ("1.45x faster", "20× slower"), a memory footprint ("9.2 GB of memory"),
# or a percentage said to be measured ("measured on ...: 60.8% vs 71.4%").
FIGURE = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?:ms|µs)\b"
    r"|\b\d+(?:\.\d+)?(?:\s?[-–]\s?\d+(?:\.\d+)?)?\s?[x×]\s(?:faster|slower)"
    r"|\b\d+(?:\.\d+)?\s?[KMGT]i?B of memory"
    r"|\bmeasured\b[^.)]*?\d+(?:\.\d+)?\s?%",
    re.IGNORECASE,
)


def figures(source: str) -> list[tuple[int, str]]:
    """(line, figure) for each measured figure in the comments and docstrings of ``source``."""
    texts = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                texts.append((getattr(node, "lineno", 1), doc))
    return [(line, m.group(0)) for line, text in texts for m in FIGURE.finditer(text)]


@pytest.mark.parametrize(
    "source",
    [
        '"""Measured with one thread: 0.66 ms against 2.23 ms."""\n',
        "def f():\n    # 256-text calls ran 1.45× faster on CPU\n    pass\n",
        'class A:\n    """A 100 MB text took 9.2 GB of memory."""\n',
        'def g():\n    """Measured on tune-compare: best of 8 trials 60.8% vs 71.4% unpruned."""\n',
    ],
)
def test_the_scan_finds_a_figure(source):
    assert figures(source)


def test_the_scan_leaves_design_facts_alone():
    source = (
        '"""Three seeds at alpha 0.05: a 95% interval (docs/benchmarks.md, "Dropout mask")."""\n'
        "# keeps padding under 25%; a p50 ms column\n"
        'MESSAGE = "took 12 ms"  # strings a user reads are not docstrings\n'
    )
    assert figures(source) == []


def test_no_measured_figures_in_the_package():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {figure}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, figure in figures(path.read_text(encoding="utf-8"))
    ]
    assert found == [], (
        "move these figures to docs/benchmarks.md (with machine, date and command) and point there:\n"
        + "\n".join(found)
    )
