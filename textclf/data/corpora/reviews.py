"""The ``reviews`` corpus: generated English reviews whose label follows from
sentence structure rather than from which sentiment words occur.

A review is planned first, then written out:

* an *opinion* is either a ``Clause`` (an evaluative word with a lexical
  polarity, possibly negated, possibly intensified or hedged) or a
  ``Contrast`` (a concession clause and a main clause joined by but /
  although / however / ...);
* a clause's value is its word's polarity, flipped if negated; a contrast's
  value is the value of its main clause;
* a review holds one or two opinions plus neutral sentences (setting, plot
  summary, what was ordered, ...), and its label is ``review_label`` of its
  opinions' values.

Because positive words are also used in negative reviews (negated, or in the
conceded half of a contrast) and vice versa, a bag-of-words model sees much
the same sentiment words in both classes; a sequence model can recover the
structure.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from textclf.core.errors import DataError
from textclf.data.corpora import lexicon as lx
from textclf.data.corpora._common import (
    bad_value,
    balanced_labels,
    check_choice,
    check_float,
    check_int,
    flip_labels,
    stream,
)
from textclf.data.corpora.review_plan import (
    DEFAULT_MIX,
    DOMAINS,
    MIXED,
    NEGATIVE,
    PHENOMENA,
    POSITIVE,
    ReviewPlan,
    plan_review,
)
from textclf.data.corpora.review_text import (
    _cast,
    _pick,
    _summary,
    neutral_sentences,
    write_opinions,
)


def write_review(rng: random.Random, plan: ReviewPlan, min_sentences: int, max_sentences: int) -> str:
    """The text of a planned review.

    Ordinary reviews have ``min_sentences``..``max_sentences`` sentences with
    the opinions at random places. Long-range reviews put one verdict first
    (or, a third of the time, last) around a neutral summary of
    ``max_sentences + 1``..``2 * max_sentences + 1`` sentences.
    """
    cast = _cast(rng)
    opinions = write_opinions(rng, plan.opinions, plan.domain, _pick(rng, lx.ITEMS[plan.domain]))
    if plan.phenomenon.endswith("long_range"):
        summary = _summary(rng, plan.domain, cast, rng.randint(max_sentences + 1, 2 * max_sentences + 1))
        if len(opinions) > 1:
            return " ".join([opinions[0], *summary, *opinions[1:]])
        parts = opinions + summary if rng.random() < 2 / 3 else summary + opinions
        return " ".join(parts)
    total = rng.randint(min_sentences, max_sentences)
    sentences = neutral_sentences(rng, plan.domain, cast, max(0, total - len(opinions)))
    for text in opinions:
        sentences.insert(rng.randint(0, len(sentences)), text)
    return " ".join(sentences)


# --------------------------------------------------------------------------
# Option checks and the generator
# --------------------------------------------------------------------------
def _check_mix(mix: object) -> dict[str, float]:
    if mix is None:
        return dict(DEFAULT_MIX)
    if not isinstance(mix, Mapping):
        raise bad_value("mix", mix, "a mapping from " + ", ".join(PHENOMENA) + " to shares")
    unknown = sorted(set(mix) - set(PHENOMENA))
    if unknown:
        raise DataError(f"option mix has unknown phenomenon {unknown[0]!r}; allowed: {', '.join(PHENOMENA)}")
    out = {k: 0.0 for k in PHENOMENA}
    for key, share in mix.items():
        out[key] = check_float(f"mix[{key}]", share, 0.0, 1e9)
    if sum(out.values()) <= 0:
        raise bad_value("mix", mix, "shares >= 0 with a positive total")
    return out


def _check_domains(domains: object) -> tuple[str, ...]:
    if domains is None:
        return DOMAINS
    if isinstance(domains, str):
        domains = [d.strip() for d in domains.split(",") if d.strip()]
    if not isinstance(domains, Sequence) or not domains:
        raise bad_value("domains", domains, "a non-empty list of " + ", ".join(DOMAINS))
    for d in domains:
        check_choice("domains", d, DOMAINS)
    return tuple(d for d in DOMAINS if d in domains)


def reviews_with_plans(
    *,
    seed: int,
    size: int = 6000,
    classes: int = 2,
    min_sentences: int = 1,
    max_sentences: int = 4,
    mix: Mapping[str, float] | None = None,
    domains: Sequence[str] | str | None = None,
) -> tuple[list[str], list[str], list[ReviewPlan]]:
    """Noise-free texts, labels and the plans behind them (see ``reviews``)."""
    check_choice("classes", classes, (2, 3))
    check_int("min_sentences", min_sentences, 1, 30)
    check_int("max_sentences", max_sentences, min_sentences, 30)
    mix_shares = _check_mix(mix)
    domain_list = _check_domains(domains)
    names = (POSITIVE, NEGATIVE, MIXED)[:classes]
    labels = balanced_labels(names, size, stream("reviews", "labels", seed))
    rng = stream("reviews", "text", seed)
    texts, plans = [], []
    for label in labels:
        plan = plan_review(rng, label, _pick(rng, domain_list), mix_shares)
        plans.append(plan)
        texts.append(write_review(rng, plan, min_sentences, max_sentences))
    return texts, labels, plans


def reviews(
    *,
    seed: int,
    size: int = 6000,
    classes: int = 2,
    noise: float = 0.05,
    min_sentences: int = 1,
    max_sentences: int = 4,
    mix: Mapping[str, float] | None = None,
    domains: Sequence[str] | str | None = None,
) -> dict[str, list[str]]:
    """English-like reviews whose sentiment follows from sentence structure.

    Tests: negation and its scope ("not bad at all", "hardly a masterpiece",
    "I would not say it was great"), contrast ("The cast is wonderful, but the
    script is a mess"; "Although the pacing drags, it is a delight"; also with
    the deciding clause first: "It is a delight, even though ..."),
    intensifiers and hedges (strength changes, polarity does not), a verdict
    far from the end of a long neutral summary, and plain cases. Sentiment
    words occur in both classes, so bag-of-words models fall well short.

    Label rule (before noise): each opinion's value is its evaluative word's
    polarity, flipped by negation; a contrast takes the value of its main
    (not conceded) clause; "and" or a sentence break joins opinions without
    overriding. All values +1 -> "positive", all -1 -> "negative", both ->
    "mixed" (only with ``classes=3``).

    A positive or negative review has one opinion of the kind drawn from
    ``mix`` (a fifth of them add a second, agreeing opinion); a mixed review
    has two opinions of opposite value. Neutral sentences (setting, plot,
    what was ordered) fill the rest.

    Options:
      ``classes`` 2 (positive / negative) or 3 (adds mixed; a third of rows).
      ``noise`` 0-1, default 0.05: fraction of labels replaced by another
      class (balance kept; texts do not change with ``noise``).
      ``min_sentences`` / ``max_sentences`` 1-30, default 1 / 4: sentences of
      an ordinary review; a long-range review wraps one verdict around a
      neutral summary of ``max_sentences + 1`` to ``2 * max_sentences + 1``
      sentences.
      ``mix``: shares of plain, intensified, negation, contrast, long_range
      (normalised; missing keys count as 0); default ``DEFAULT_MIX``.
      ``domains``: subset of film, book, restaurant, product, game (list or
      comma-separated string); default all.
    """
    noise = check_float("noise", noise, 0.0, 1.0)
    texts, labels, _ = reviews_with_plans(
        seed=seed,
        size=size,
        classes=classes,
        min_sentences=min_sentences,
        max_sentences=max_sentences,
        mix=mix,
        domains=domains,
    )
    if noise > 0:
        names = (POSITIVE, NEGATIVE, MIXED)[:classes]
        labels = flip_labels(labels, names, noise, stream("reviews", "noise", seed))
    return {"text": texts, "label": labels}
