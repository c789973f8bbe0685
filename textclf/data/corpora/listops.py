"""The ``listops`` corpus: nested MAX / MIN expressions over the digits 0-9,
stratified by nesting depth, with the expression value as the label.

After ListOps (Nangia & Bowman 2018), reduced to MAX and MIN so that the
task is hierarchy, not arithmetic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from textclf.core.errors import DataError
from textclf.data.corpora._common import check_int, stream
from textclf.data.corpora.diagnostics import tokens_of

OPERATORS = ("MAX", "MIN")
_OTHER = {"MAX": "MIN", "MIN": "MAX"}
DIGITS = tuple(str(d) for d in range(10))


def _parse(expr: str | Sequence[str]) -> tuple[int, int]:
    """(value, depth) of an expression; ValueError for anything malformed."""
    stack: list[tuple[str, list[int]]] = []
    result: tuple[int, int] | None = None
    depth = 0
    for tok in tokens_of(expr):
        if result is not None:
            raise ValueError(f"trailing token {tok!r} after a complete expression")
        if tok.startswith("["):
            if tok[1:] not in OPERATORS:
                raise ValueError(f"unknown operator {tok[1:]!r}; ListOps here has {' and '.join(OPERATORS)} only")
            stack.append((tok[1:], []))
            depth = max(depth, len(stack))
        elif tok == "]":
            if not stack:
                raise ValueError("unbalanced ']'")
            op, args = stack.pop()
            if not args:
                raise ValueError(f"{op} needs at least one argument")
            value = max(args) if op == "MAX" else min(args)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value, depth
        elif tok in DIGITS and stack:
            stack[-1][1].append(int(tok))
        else:
            raise ValueError(f"unexpected token {tok!r}")
    if result is None:
        raise ValueError("incomplete expression")
    return result


def evaluate_listops(expr: str | Sequence[str]) -> int:
    """Value (0-9) of an expression such as ``[MAX 2 [MIN 4 7 ] 0 ]`` (4).

    Operators: MAX and MIN only; any other (MED, SM, ...) is a ValueError.
    """
    return _parse(expr)[0]


def listops_depth(expr: str | Sequence[str]) -> int:
    """Nesting depth of an expression: 1 for ``[MAX 1 2 ]``, 2 for
    ``[MAX 2 [MIN 4 7 ] 0 ]``."""
    return _parse(expr)[1]


# Chance that an argument other than the deepest one is itself an expression.
_NEST = 0.3


def _shortest(depth: int) -> int:
    """Tokens in the shortest expression of a depth: two arguments per
    operator, one of them a digit (``[MAX 1 [MIN 2 3 ] ]`` for depth 2)."""
    return 3 * depth + 1


def _draw(rng: random.Random, depth: int, op: str, value: int, max_args: int, tokens: list[str], room: int) -> None:
    """Append an expression of exactly ``depth`` levels, value ``value`` and at
    most ``room`` tokens (``room >= _shortest(depth)``).

    One argument (the spine) has depth ``depth - 1``, the others are digits
    or, with probability ``_NEST``, shallower expressions. One argument drawn
    uniformly (the winner) takes ``value``; every other argument takes a value
    strictly on the losing side (below for MAX, above for MIN) where one
    exists, so the winner alone decides. Nested operators always differ from
    their parent: MAX inside MAX is a flat MAX and would not need the brackets.

    The tokens beyond the shortest expression (``slack``) are spent argument
    by argument; where an argument would overspend, it gets fewer arguments
    or less nesting. Capping instead of redrawing keeps the time per row
    bounded for any ``room``; with the default options fewer than 1 row in
    1000 is affected.
    """
    n = rng.randint(2, min(max_args, room - _shortest(depth) + 2))
    slack = room - (_shortest(depth) + n - 2)
    spine = rng.randrange(n) if depth > 1 else -1
    winner = rng.randrange(n)
    tokens.append("[" + op)
    for i in range(n):
        if i == winner:
            v = value
        elif op == "MAX":
            v = rng.randrange(value) if value > 0 else 0
        else:
            v = rng.randint(value + 1, 9) if value < 9 else 9
        if i == spine:
            sub = depth - 1  # its shortest form is already counted in `room`
        elif depth > 1 and rng.random() < _NEST:
            # Instead of one digit: at least _shortest(sub) - 1 more tokens.
            sub = min(rng.randint(1, depth - 1), slack // 3)
            slack -= 3 * sub
        else:
            sub = 0
        if sub:
            start = len(tokens)
            _draw(rng, sub, _OTHER[op], v, max_args, tokens, _shortest(sub) + slack)
            slack -= len(tokens) - start - _shortest(sub)
        else:
            tokens.append(DIGITS[v])
    tokens.append("]")


def listops(
    *, seed: int, size: int = 3000, max_depth: int = 6, max_args: int = 4, max_length: int = 200
) -> dict[str, list]:
    """Evaluate nested MAX / MIN expressions (ListOps, Nangia & Bowman 2018).

    Text: a bracketed prefix expression, tokens separated by spaces, e.g.
    ``[MAX 2 [MIN 4 7 ] 0 ]``. Each operator has 2..``max_args`` arguments;
    a nested operator always differs from its parent (MIN inside MAX and vice
    versa). At depth d one argument of the top operator is an expression of
    depth d - 1, the others are digits or (probability 0.3) shallower
    expressions; no text exceeds ``max_length`` tokens (where the budget gets
    tight, the remaining arguments get fewer and shallower).
    Label: the value "0".."9" (see ``evaluate_listops``).
    Extra column ``depth``: the nesting depth as an int (see
    ``listops_depth``), 1..``max_depth``.
    Balance: every depth has the same number of rows, and the labels are
    balanced within each depth and overall (counts differ by at most one).
    Each row's depth and label are fixed first and the expression is built
    top-down to have that value: the argument that attains it is chosen
    uniformly, and the others are drawn strictly on the losing side where
    possible.

    Claim: a sequential reader handles nesting only as far as its state can
    stand in for a stack; accuracy falls with depth, and more (stacked)
    layers are claimed to help on hierarchical input (Nangia & Bowman 2018:
    an LSTM stays far below a tree model that is given the parse).
    Why the set-up can show it: to evaluate depth d left to right, a reader
    must keep an operator and a running value for every open bracket, so the
    state it needs grows with d; the depth column gives accuracy per depth.
    Depth matters: from depth 2 on, the top operator applied to its direct
    digit arguments alone is right about half the time, and applied to all
    digits with the brackets ignored about 1 time in 6 or less (measured in
    the tests), so a model that does not track the brackets stays far below
    100%.

    Options: ``max_depth`` 1-20, ``max_args`` 2-10, ``max_length`` 4-5000
    and at least ``3 * max_depth + 1`` (the shortest expression of depth
    ``max_depth``).
    """
    check_int("max_depth", max_depth, 1, 20)
    check_int("max_args", max_args, 2, 10)
    check_int("max_length", max_length, 4, 5000)
    if max_length < 3 * max_depth + 1:
        raise DataError(
            f"option max_length={max_length} is out of range for max_depth={max_depth}; allowed: at least "
            f"3 * max_depth + 1 = {3 * max_depth + 1} (raise max_length or lower max_depth)"
        )
    # Row i has depth 1 + i % max_depth; labels cycle through 0-9 over the rows
    # taken depth by depth, so depth, label and (depth, label) counts are all
    # as equal as the size allows.
    grouped = sorted(1 + i % max_depth for i in range(size))
    plan = [(depth, j % 10) for j, depth in enumerate(grouped)]
    stream("listops", "order", seed).shuffle(plan)
    rng = stream("listops", "text", seed)
    texts, labels, depths = [], [], []
    for depth, value in plan:
        tokens: list[str] = []
        _draw(rng, depth, OPERATORS[rng.randrange(2)], value, max_args, tokens, max_length)
        texts.append(" ".join(tokens))
        labels.append(DIGITS[value])
        depths.append(depth)
    return {"text": texts, "label": labels, "depth": depths}
