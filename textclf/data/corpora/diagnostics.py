"""Synthetic diagnostic corpora, each built so that one textbook claim about
recurrent networks can show (or fail to show) in a comparison of encoders.

* ``long-range`` (here): recall the first token across a long gap
  (tanh RNN vs LSTM).
* ``ends`` (here): combine the first and the last token of a long text
  (left-to-right vs bidirectional reading with last-state pooling).
* ``context`` and ``order`` (:mod:`textclf.data.corpora.cues`): cue words
  whose meaning depends on nearby markers on either side (bidirectional
  reading with mean pooling), and a control that depends only on order.
* ``listops`` (:mod:`textclf.data.corpora.listops`): nested MAX / MIN
  expressions, stratified by depth (hierarchy).

Every corpus has a function that computes the label from the text alone
(``long_range_label``, ``ends_label``, ``context_label``, ``order_label``,
``evaluate_listops``); the tests check each generator against it.

The vocabularies are pseudo-words, so no real word brings a meaning of its
own. Filler words are built from the letters b d g k l m n p r t and the
vowels a i o u; every informative word (signal, cue, marker) contains an
"e", so the two sets are disjoint by construction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from textclf.data.corpora._common import (
    balanced_labels,
    check_choice,
    check_int,
    stream,
)

# Filler: two consonant-vowel syllables ("bako", "dipu", ...).
_SYLLABLES = [c + v for c in "bdgklmnprt" for v in "aiou"]
FILLER = tuple(a + b for a in _SYLLABLES for b in _SYLLABLES)[::16]  # 100 words

# Informative words: consonant, "e", consonant, "o" ("feho", "jeso", ...).
_MARKED = tuple(a + "e" + b + "o" for a in "fhjsvwz" for b in "fhjsvwz" if a != b)  # 42 words
SIGNALS = _MARKED[0:10]  # long-range
FIRST_TOKENS = _MARKED[10:20]  # ends: the token at the start
LAST_TOKENS = _MARKED[20:30]  # ends: the token at the end
POSITIVE_CUES = _MARKED[30:33]  # context / order
NEGATIVE_CUES = _MARKED[33:36]
FLIP_MARKER = _MARKED[36]


def tokens_of(text: str | Sequence[str]) -> list[str]:
    """The tokens of a text given as one space-separated string or a token list."""
    return text.split() if isinstance(text, str) else list(text)


def fillers(rng: random.Random, count: int) -> list[str]:
    """``count`` filler words drawn uniformly (with replacement)."""
    return rng.choices(FILLER, k=count)


# --------------------------------------------------------------------------
# long-range
# --------------------------------------------------------------------------
def long_range_label(text: str | Sequence[str]) -> str:
    """The label of a ``long-range`` text: its single signal token."""
    found = [t for t in tokens_of(text) if t in SIGNALS]
    if len(found) != 1:
        raise ValueError(f"expected exactly one signal token, found {found}")
    return found[0]


def long_range(*, seed: int, size: int = 2000, distance: int = 50, classes: int = 10) -> dict[str, list]:
    """Recall the first token of a text after ``distance`` distractors.

    Text: one signal token (one of the first ``classes`` of ``SIGNALS``),
    then exactly ``distance`` filler tokens drawn uniformly from 100
    pseudo-words; ``distance + 1`` tokens in all.
    Label: the signal token (see ``long_range_label``).

    Claim: a tanh RNN's memory of an early input vanishes as the gap grows,
    while an LSTM keeps it (Bengio et al. 1994; Hochreiter & Schmidhuber
    1997); a forget-gate bias that favours remembering helps the LSTM most on
    long gaps (Tallec & Ollivier 2018, chrono initialisation).
    Why the set-up can show it: everything after the first token is noise, so
    with last-state pooling the final state must carry the first token over
    exactly ``distance`` steps. Ten classes need about 3.3 bits of memory:
    with two classes a single saturated unit of an orthogonally initialised
    tanh RNN can latch the signal and hide the vanishing memory.

    Options: ``distance`` 1-2000, ``classes`` 2-10.
    """
    check_int("distance", distance, 1, 2000)
    check_int("classes", classes, 2, len(SIGNALS))
    labels = balanced_labels(SIGNALS[:classes], size, stream("long-range", "labels", seed))
    rng = stream("long-range", "text", seed)
    texts = [" ".join([label, *fillers(rng, distance)]) for label in labels]
    return {"text": texts, "label": labels}


# --------------------------------------------------------------------------
# ends
# --------------------------------------------------------------------------
ENDS_RULES = ("pair", "sum")


def _ends_class(a: int, b: int, classes: int, rule: str) -> str:
    return f"{a}-{b}" if rule == "pair" else str((a + b) % classes)


def ends_label(text: str | Sequence[str], classes: int = 4, rule: str = "pair") -> str:
    """The label of an ``ends`` text from its first and last token.

    With first token ``FIRST_TOKENS[a]`` and last token ``LAST_TOKENS[b]``:
    rule "pair" gives "a-b" (both indices), rule "sum" gives
    ``str((a + b) % classes)``.
    """
    tokens = tokens_of(text)
    if len(tokens) < 2 or tokens[0] not in FIRST_TOKENS[:classes] or tokens[-1] not in LAST_TOKENS[:classes]:
        raise ValueError(
            f"an ends text starts with one of {FIRST_TOKENS[:classes]} and ends with one of {LAST_TOKENS[:classes]}"
        )
    if rule not in ENDS_RULES:
        raise ValueError(f"unknown rule {rule!r}; one of {ENDS_RULES}")
    return _ends_class(FIRST_TOKENS.index(tokens[0]), LAST_TOKENS.index(tokens[-1]), classes, rule)


def ends(*, seed: int, size: int = 4000, length: int = 100, classes: int = 4, rule: str = "pair") -> dict[str, list]:
    """Combine the first and the last token of a long text.

    Text: a start token ``FIRST_TOKENS[a]``, exactly ``length`` filler
    tokens, an end token ``LAST_TOKENS[b]`` (``length + 2`` tokens), with
    a and b from 0 to ``classes - 1``.
    Label (see ``ends_label``): rule "pair" (default), the pair "a-b"
    (``classes`` squared classes); rule "sum", ``(a + b) % classes``.
    Every (a, b) pair occurs equally often (counts differ by at most one), so
    under "sum" the label counts given either end alone are uniform (each end
    alone is at chance), and under "pair" either end alone leaves the other
    index uniform, capping its accuracy at 1 / ``classes``.

    Claim: with last-state pooling a left-to-right reader must carry the
    first token across the whole text, while a bidirectional reader ends each
    direction next to one of the two informative tokens (the motivation of
    Schuster & Paliwal 1997; Graves & Schmidhuber 2005).
    Why the set-up can show it: under "pair" the label is an additive
    function of the two ends, which the linear head reads off the concatenated
    final states of a bidirectional encoder with no memory at all, while a
    left-to-right encoder that forgets the first token is capped at
    1 / ``classes``. Under "sum" a linear head over one summary of each end
    cannot be right on every cell: summed over the cells of class c, the
    score margin of c over another class d is (as each end meets every class
    equally often) a quantity that changes sign when c and d swap, so it
    cannot be positive for both. A bidirectional encoder must then carry one
    end across the text as well: "sum" tests memory without partial credit,
    not reading direction.

    Options: ``length`` 1-2000, ``classes`` 2-10, ``rule`` "pair" or "sum".
    """
    check_int("length", length, 1, 2000)
    check_int("classes", classes, 2, len(FIRST_TOKENS))
    check_choice("rule", rule, ENDS_RULES)
    k = classes
    # One cell per (a, b) pair; consecutive cell numbers cycle through the
    # classes under both rules, so class counts differ by at most one too.
    cells = balanced_labels(range(k * k), size, stream("ends", "labels", seed))
    rng = stream("ends", "text", seed)
    texts, labels = [], []
    for cell in cells:
        if rule == "pair":
            a, b = divmod(cell, k)
        else:
            a, label = divmod(cell, k)
            b = (label - a) % k
        texts.append(" ".join([FIRST_TOKENS[a], *fillers(rng, length), LAST_TOKENS[b]]))
        labels.append(_ends_class(a, b, k, rule))
    return {"text": texts, "label": labels}
