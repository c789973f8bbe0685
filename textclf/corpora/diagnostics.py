"""Synthetic diagnostic corpora that isolate one ability of a sequence model.

* ``long-range``: remember one token across many distractors.
* ``listops``: evaluate nested list operations (hierarchical structure).
* ``context``: a cue whose meaning depends on what comes after it.

Each corpus comes with a small function that computes the label from the
text (``long_range_label``, ``evaluate_listops``, ``context_label``); the
generators are checked against them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from textclf.corpora._common import balanced_labels, check_int, stream
from textclf.errors import DataError

# Pseudo-words used as distractors / filler: two consonant-vowel syllables
# ("bako", "dipu", ...), so they can never collide with signal or cue words.
_SYLLABLES = [c + v for c in "bdgklmnprt" for v in "aiou"]
FILLER = tuple(a + b for a in _SYLLABLES for b in _SYLLABLES)[::16]  # 100 words


def _tokens_text(tokens: Sequence[str]) -> str:
    return " ".join(tokens)


def _split_tokens(text: str | Sequence[str]) -> list[str]:
    return text.split() if isinstance(text, str) else list(text)


# --------------------------------------------------------------------------
# long-range
# --------------------------------------------------------------------------
SIGNALS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")


def long_range_label(text: str | Sequence[str]) -> str:
    """The single signal token in the text (that token is the label)."""
    found = [t for t in _split_tokens(text) if t in SIGNALS]
    if len(found) != 1:
        raise ValueError(f"expected exactly one signal token, found {found}")
    return found[0]


def long_range(*, seed: int, size: int = 2000, distance: int = 50, classes: int = 2) -> dict[str, list[str]]:
    """Remember a token seen near the start across a long run of distractors.

    Text: 0-2 distractor tokens, one signal token, then exactly ``distance``
    distractor tokens (so a text has ``distance + 1`` to ``distance + 3``
    tokens). Distractors are drawn uniformly from 100 pseudo-words.

    Label: the signal token itself, one of the first ``classes`` of
    alpha, beta, gamma, ... (default 2: "alpha" / "beta").

    Expected: a plain tanh RNN falls toward chance as ``distance`` grows
    (typical range 25-400), while an LSTM or GRU stays near 100%.
    Options: ``distance`` 1-2000, ``classes`` 2-10.
    """
    check_int("distance", distance, 1, 2000)
    check_int("classes", classes, 2, len(SIGNALS))
    labels = balanced_labels(SIGNALS[:classes], size, stream("long-range", "labels", seed))
    rng = stream("long-range", "text", seed)
    texts = []
    for label in labels:
        lead = rng.randint(0, 2)
        tokens = [FILLER[rng.randrange(len(FILLER))] for _ in range(lead + distance)]
        tokens.insert(lead, label)
        texts.append(_tokens_text(tokens))
    return {"text": texts, "label": labels}


# --------------------------------------------------------------------------
# listops
# --------------------------------------------------------------------------
OPERATORS = ("MAX", "MIN", "MED", "SM")


def apply_operator(op: str, values: Sequence[int]) -> int:
    """MAX, MIN, MED (median; for an even count the floor of the mean of the
    two middle values) and SM (sum modulo 10)."""
    if not values:
        raise ValueError(f"{op} needs at least one argument")
    if op == "MAX":
        return max(values)
    if op == "MIN":
        return min(values)
    if op == "MED":
        s = sorted(values)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2
    if op == "SM":
        return sum(values) % 10
    raise ValueError(f"unknown operator {op!r}")


def evaluate_listops(expr: str | Sequence[str]) -> int:
    """Value (0-9) of a ListOps expression such as ``[MAX 2 [MIN 4 7 ] 0 ]``."""
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for tok in _split_tokens(expr):
        if result is not None:
            raise ValueError(f"trailing token {tok!r} after a complete expression")
        if tok.startswith("[") and tok[1:] in OPERATORS:
            stack.append((tok[1:], []))
        elif tok == "]":
            if not stack:
                raise ValueError("unbalanced ']'")
            op, args = stack.pop()
            value = apply_operator(op, args)
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
        elif tok.isdigit() and len(tok) == 1 and stack:
            stack[-1][1].append(int(tok))
        else:
            raise ValueError(f"unexpected token {tok!r}")
    if result is None:
        raise ValueError("incomplete expression")
    return result


# Chance that an argument is itself an expression (when depth allows).
_NEST = 0.3


class _TooLong(Exception):
    """Raised inside expression drawing once the token budget is spent."""


def _random_expression(
    rng: random.Random, depth: int, max_depth: int, max_args: int, tokens: list[str], budget: int
) -> int:
    """Append a random expression to ``tokens`` and return its value.

    Stops early (``_TooLong``) once ``tokens`` exceeds ``budget``, so long
    draws that would be rejected anyway cost little.
    """
    op = OPERATORS[rng.randrange(len(OPERATORS))]
    tokens.append("[" + op)
    values = []
    for _ in range(rng.randint(2, max_args)):
        if depth < max_depth and rng.random() < _NEST:
            value = _random_expression(rng, depth + 1, max_depth, max_args, tokens, budget)
        else:
            value = rng.randrange(10)
            tokens.append(str(value))
        values.append(value)
        if len(tokens) > budget:
            raise _TooLong
    tokens.append("]")
    if len(tokens) > budget:
        raise _TooLong
    return apply_operator(op, values)


def listops(
    *, seed: int, size: int = 3000, max_depth: int = 4, max_args: int = 5, max_length: int = 100
) -> dict[str, list[str]]:
    """Evaluate nested list operations (after the ListOps task, 2018).

    Text: a bracketed prefix expression, tokens separated by spaces, e.g.
    ``[MAX 2 [MIN 4 7 ] 0 ]``. Operators: MAX, MIN, MED (median, even counts
    take the floor of the mean of the two middle values), SM (sum mod 10).
    Every operator has 2..``max_args`` arguments; an argument is a nested
    expression with probability 0.3 while the nesting depth is below
    ``max_depth`` (1 = no nesting); expressions longer than ``max_length``
    tokens are redrawn.

    Label: the value of the expression, "0".."9" (see ``evaluate_listops``).
    Classes are balanced by drawing expressions until each value's quota is
    filled. Options: ``max_depth`` 1-20, ``max_args`` 2-10, ``max_length``
    4-5000.
    """
    check_int("max_depth", max_depth, 1, 20)
    check_int("max_args", max_args, 2, 10)
    check_int("max_length", max_length, 4, 5000)
    classes = tuple(str(d) for d in range(10))
    labels = balanced_labels(classes, size, stream("listops", "labels", seed))
    quota = {c: labels.count(c) for c in classes}
    pools: dict[str, list[str]] = {c: [] for c in classes}
    rng = stream("listops", "text", seed)
    missing, attempts = size, 0
    while missing:
        attempts += 1
        if attempts > 1000 * size + 100_000:
            raise DataError("listops could not balance its classes; raise max_length or max_args")
        tokens: list[str] = []
        try:
            label = str(_random_expression(rng, 1, max_depth, max_args, tokens, max_length))
        except _TooLong:
            continue
        if len(pools[label]) < quota[label]:
            pools[label].append(_tokens_text(tokens))
            missing -= 1
    position = {c: 0 for c in classes}
    texts = []
    for label in labels:
        texts.append(pools[label][position[label]])
        position[label] += 1
    return {"text": texts, "label": labels}


# --------------------------------------------------------------------------
# context
# --------------------------------------------------------------------------
GOOD_CUES = ("good", "fine", "great")
BAD_CUES = ("bad", "poor", "awful")
FLIP_MARKER = "reversed"


def context_label(text: str | Sequence[str]) -> str:
    """Label of a ``context`` text: the polarity of its single cue word,
    flipped once for every flip marker AFTER the cue; markers before the cue
    do nothing."""
    tokens = _split_tokens(text)
    cues = [i for i, t in enumerate(tokens) if t in GOOD_CUES or t in BAD_CUES]
    if len(cues) != 1:
        raise ValueError(f"expected exactly one cue word, found {len(cues)}")
    cue = cues[0]
    positive = tokens[cue] in GOOD_CUES
    flips = sum(1 for t in tokens[cue + 1:] if t == FLIP_MARKER)
    return "positive" if positive ^ (flips % 2 == 1) else "negative"


def context(*, seed: int, size: int = 3000, length: int = 40) -> dict[str, list[str]]:
    """A cue word whose meaning depends on what comes after it.

    Text: ``length`` tokens of pseudo-word filler holding exactly one cue
    word (good: good/fine/great, bad: bad/poor/awful) in the middle half of
    the text and exactly one flip marker ``reversed``, placed either after the
    cue (it flips the cue) or before it (a decoy that does nothing), each
    half of the time.

    Label: "positive" if (cue is good) XOR (the marker follows the cue),
    else "negative" (see ``context_label``). Every text holds one cue and one
    marker, so a bag of words is at chance: only their order matters. A
    left-to-right model that pools its last state must carry the cue to the
    end and notice a later marker; a bidirectional model sees cue and marker
    from both sides. Options: ``length`` 5-2000.
    """
    check_int("length", length, 5, 2000)
    labels = balanced_labels(("positive", "negative"), size, stream("context", "labels", seed))
    rng = stream("context", "text", seed)
    texts = []
    for label in labels:
        good = rng.random() < 0.5
        flip = good != (label == "positive")
        tokens = [FILLER[rng.randrange(len(FILLER))] for _ in range(length)]
        cue = rng.randint(max(1, length // 4), min(length - 2, (3 * length) // 4))
        marker = rng.randint(cue + 1, length - 1) if flip else rng.randint(0, cue - 1)
        tokens[cue] = (GOOD_CUES if good else BAD_CUES)[rng.randrange(3)]
        tokens[marker] = FLIP_MARKER
        texts.append(_tokens_text(tokens))
    return {"text": texts, "label": labels}
