"""What a generated review says, before it is written: its opinions, and the label they compose to.

An *opinion* is either a :class:`Clause` (an evaluative word with a lexical
polarity, possibly negated, possibly intensified or hedged) or a
:class:`Contrast` (a concession clause and a main clause joined by but /
although / however / ...). A clause's value is its word's polarity, flipped if
negated; a contrast's value is its main clause's; a review's label is
:func:`review_label` of its opinions' values. :func:`plan_review` draws
opinions that produce a wanted label.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

POSITIVE, NEGATIVE, MIXED = "positive", "negative", "mixed"


DOMAINS = ("film", "book", "restaurant", "product", "game")


PHENOMENA = ("plain", "intensified", "negation", "contrast", "long_range")


DEFAULT_MIX = {"plain": 0.35, "intensified": 0.2, "negation": 0.15, "contrast": 0.2, "long_range": 0.1}


# Share of positive / negative reviews that carry a second, agreeing opinion.
SECOND_OPINION = 0.2


# --------------------------------------------------------------------------
# Plans and the composition rule
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Clause:
    """One evaluation: a word of lexical ``polarity`` (+1 / -1), maybe negated.

    ``degree`` ("none", "intensifier", "hedge") changes strength, never sign.
    """

    polarity: int
    negated: bool = False
    degree: str = "none"

    @property
    def value(self) -> int:
        return -self.polarity if self.negated else self.polarity


@dataclass(frozen=True)
class Contrast:
    """A conceded clause and a main clause; the main clause decides."""

    concession: Clause
    main: Clause

    @property
    def value(self) -> int:
        return self.main.value


Opinion = Clause | Contrast


def review_label(opinions: Sequence[Opinion]) -> str:
    """The label of a review from its opinions.

    All opinions positive -> "positive", all negative -> "negative", both
    kinds present (juxtaposed, not joined by a contrast) -> "mixed".
    """
    values = {o.value for o in opinions}
    if not values:
        raise ValueError("a review needs at least one opinion")
    if values == {1}:
        return POSITIVE
    if values == {-1}:
        return NEGATIVE
    return MIXED


@dataclass(frozen=True)
class ReviewPlan:
    domain: str
    phenomenon: str
    opinions: tuple[Opinion, ...]


# --------------------------------------------------------------------------
# Planning a review
# --------------------------------------------------------------------------
def _simple_clause(rng: random.Random, kind: str, value: int) -> Clause:
    if kind == "negation":
        return Clause(-value, negated=True)
    if kind == "intensified":
        return Clause(value, degree="intensifier" if rng.random() < 0.6 else "hedge")
    return Clause(value)


def _opinion(rng: random.Random, kind: str, value: int) -> Opinion:
    """An opinion of the given kind whose value is ``value``."""
    if kind != "contrast":
        return _simple_clause(rng, kind, value)
    # Each half is negated now and then, so negation also nests inside contrast.
    parts = []
    for v in (-value, value):
        negated = rng.random() < 0.2
        parts.append(Clause(-v if negated else v, negated=negated))
    return Contrast(*parts)


def _draw_kind(rng: random.Random, mix: Mapping[str, float], allow_long: bool = True) -> str:
    kinds = [k for k in PHENOMENA if allow_long or k != "long_range"]
    weights = [mix[k] for k in kinds]
    if sum(weights) <= 0:
        return "plain"
    return rng.choices(kinds, weights)[0]


def plan_review(rng: random.Random, label: str, domain: str, mix: Mapping[str, float]) -> ReviewPlan:
    """Opinions that produce ``label`` under ``review_label``."""
    kind = _draw_kind(rng, mix)
    if label == MIXED:
        values = [1, -1] if rng.random() < 0.5 else [-1, 1]
        opinions = tuple(_opinion(rng, _draw_kind(rng, mix, allow_long=False), v) for v in values)
        return ReviewPlan(domain, "mixed+long_range" if kind == "long_range" else "mixed", opinions)
    value = 1 if label == POSITIVE else -1
    if kind == "long_range":
        inner = _draw_kind(rng, {**mix, "contrast": 0.0}, allow_long=False)
        opinions: tuple[Opinion, ...] = (_opinion(rng, inner, value),)
    else:
        opinions = (_opinion(rng, kind, value),)
    if rng.random() < SECOND_OPINION:
        opinions += (_opinion(rng, _draw_kind(rng, mix, allow_long=False), value),)
    return ReviewPlan(domain, kind, opinions)
