"""Cue-word corpora: the polarity of a cue word depends on a flip marker
nearby (``context``: markers on either side, within a window) or later in the
text (``order``: a control that a left-to-right reader solves as well).

Cue and marker words are the pseudo-words ``POSITIVE_CUES``,
``NEGATIVE_CUES`` and ``FLIP_MARKER`` of :mod:`textclf.data.corpora.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Sequence

from textclf.core.errors import DataError
from textclf.data.corpora._common import bad_value, balanced_labels, check_int, stream
from textclf.data.corpora.diagnostics import (
    FLIP_MARKER,
    NEGATIVE_CUES,
    POSITIVE_CUES,
    fillers,
    tokens_of,
)

POLARITIES = ("positive", "negative")


def _cue_positions(tokens: Sequence[str]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t in POSITIVE_CUES or t in NEGATIVE_CUES]


# --------------------------------------------------------------------------
# context
# --------------------------------------------------------------------------
def context_label(text: str | Sequence[str], window: int = 3) -> str:
    """The label of a ``context`` text: the majority polarity of its cues.

    A cue is flipped iff an odd number of flip markers lie within ``window``
    tokens of it on either side (positions i - window .. i + window, other
    than i); the text needs an odd number of cues, so there is no tie.
    """
    tokens = tokens_of(text)
    cues = _cue_positions(tokens)
    if len(cues) % 2 == 0:
        raise ValueError(f"expected an odd number of cue words, found {len(cues)}")
    votes = 0
    for i in cues:
        near = tokens[max(0, i - window) : i] + tokens[i + 1 : i + 1 + window]
        flipped = near.count(FLIP_MARKER) % 2 == 1
        votes += 1 if (tokens[i] in POSITIVE_CUES) != flipped else -1
    return "positive" if votes > 0 else "negative"


def context(*, seed: int, size: int = 3000, length: int = 60, cues: int = 5, window: int = 3) -> dict[str, list]:
    """Cue words whose polarity is flipped by a marker on either side.

    Text: ``length`` tokens of filler holding ``cues`` cue words (positive
    or negative pseudo-words). Each cue sits in its own block of
    ``2 * window + 1`` tokens (blocks never overlap, so a marker is near at
    most one cue). Half of the cues, at random, get one flip marker inside
    their window, before or after the cue with equal odds, at a uniform
    distance 1..``window``; the others get none. Up to ``cues`` further
    markers are decoys placed outside every window.
    Label: the majority polarity of the cues after flipping (see
    ``context_label``; a cue is flipped iff an odd number of markers lie
    within ``window`` tokens of it, which here means iff its window holds the
    one marker). Flips are independent of the final votes, so the cue words
    alone, and the number of markers, are at chance.

    Claim: reading in both directions gives each position context from both
    sides, so local decisions that depend on what follows need no memory
    (Schuster & Paliwal 1997; Graves & Schmidhuber 2005).
    Why the set-up can show it: half of the flipping markers come after
    their cue. With mean pooling, a bidirectional encoder's state at a cue
    holds the markers before it (forward) and after it (backward), and a
    cue's vote is a sum of one term per side (one marker at most per window),
    which the linear head can read. A left-to-right encoder must defer each
    vote until ``window`` tokens after the cue, keeping the cue's polarity
    meanwhile; one that only looks back gets about a quarter of the votes
    wrong. (Two markers in one window would make a vote the XOR of its two
    sides, which a one-layer bidirectional encoder with a linear head could
    not read without deferring either, so the generator never places them.)

    Options: ``length`` 3-2000, at least ``cues * (2 * window + 1)``;
    ``cues`` an odd number 1-99; ``window`` 1-50.
    """
    check_int("length", length, 3, 2000)
    check_int("window", window, 1, 50)
    if check_int("cues", cues, 1, 99) % 2 == 0:
        raise bad_value("cues", cues, "an odd integer from 1 to 99 (an odd count leaves no tie)")
    block = 2 * window + 1
    if length < cues * block:
        raise DataError(
            f"option length={length} is out of range for cues={cues}, window={window}; allowed: at least "
            f"cues * (2 * window + 1) = {cues * block} (raise length or lower cues or window)"
        )
    labels = balanced_labels(POLARITIES, size, stream("context", "labels", seed))
    rng = stream("context", "text", seed)
    slack = length - cues * block
    texts = []
    for label in labels:
        tokens = fillers(rng, length)
        # Stars and bars: `slack` free tokens spread uniformly over the gaps
        # between and around the blocks.
        starts = [s + i * (block - 1) for i, s in enumerate(sorted(rng.sample(range(slack + cues), cues)))]
        while True:
            votes = [rng.random() < 0.5 for _ in range(cues)]
            if (2 * sum(votes) > cues) == (label == "positive"):
                break
        for start, vote in zip(starts, votes):
            cue = start + window
            flipped = rng.random() < 0.5
            pool = POSITIVE_CUES if vote != flipped else NEGATIVE_CUES
            tokens[cue] = pool[rng.randrange(len(pool))]
            if flipped:
                distance = rng.randint(1, window)
                tokens[cue - distance if rng.random() < 0.5 else cue + distance] = FLIP_MARKER
        inside = {p for start in starts for p in range(start, start + block)}
        outside = [p for p in range(length) if p not in inside]
        for p in rng.sample(outside, rng.randint(0, min(cues, len(outside)))):
            tokens[p] = FLIP_MARKER
        texts.append(" ".join(tokens))
    return {"text": texts, "label": labels}


# --------------------------------------------------------------------------
# order
# --------------------------------------------------------------------------
def order_label(text: str | Sequence[str]) -> str:
    """The label of an ``order`` text: the polarity of its single cue word,
    flipped once for every flip marker AFTER the cue; markers before the cue
    do nothing."""
    tokens = tokens_of(text)
    cues = _cue_positions(tokens)
    if len(cues) != 1:
        raise ValueError(f"expected exactly one cue word, found {len(cues)}")
    cue = cues[0]
    flips = tokens[cue + 1 :].count(FLIP_MARKER)
    return "positive" if (tokens[cue] in POSITIVE_CUES) != (flips % 2 == 1) else "negative"


def order(*, seed: int, size: int = 3000, length: int = 40) -> dict[str, list]:
    """A cue word flipped by a later marker; a control for ``context``.

    Text: ``length`` filler tokens holding exactly one cue word in the middle
    half of the text and exactly one flip marker, placed after the cue (it
    flips the cue) or before it (a decoy that does nothing), each half of the
    time.
    Label: "positive" if (the cue is positive) XOR (the marker follows the
    cue), else "negative" (see ``order_label``).

    Claim (control): the order of two tokens is something both a
    left-to-right and a bidirectional reader can use; no model needs to look
    ahead here.
    Why the set-up can show it: every text holds one cue and one marker, so
    a bag of words is at chance and only their order matters; but a
    left-to-right reader sees the cue before the marker that flips it, so it
    only has to keep the cue's polarity and flip it when a marker comes. A
    gap between encoders here points at training or capacity, not at the
    reading direction, which is what ``context`` is meant to isolate.

    Options: ``length`` 5-2000.
    """
    check_int("length", length, 5, 2000)
    labels = balanced_labels(POLARITIES, size, stream("order", "labels", seed))
    rng = stream("order", "text", seed)
    texts = []
    for label in labels:
        positive = rng.random() < 0.5
        flip = positive != (label == "positive")
        tokens = fillers(rng, length)
        cue = rng.randint(max(1, length // 4), min(length - 2, (3 * length) // 4))
        marker = rng.randint(cue + 1, length - 1) if flip else rng.randint(0, cue - 1)
        pool = POSITIVE_CUES if positive else NEGATIVE_CUES
        tokens[cue] = pool[rng.randrange(len(pool))]
        tokens[marker] = FLIP_MARKER
        texts.append(" ".join(tokens))
    return {"text": texts, "label": labels}
