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
from dataclasses import dataclass

from textclf.corpora import lexicon as lx
from textclf.corpora._common import (
    bad_value,
    balanced_labels,
    check_choice,
    check_float,
    check_int,
    flip_labels,
    stream,
)
from textclf.errors import DataError

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
# Small text helpers
# --------------------------------------------------------------------------
def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _bare(np: str) -> str:
    """'a waste of time' -> 'waste of time'."""
    return np.split(" ", 1)[1] if np.startswith(("a ", "an ")) else np


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


# --------------------------------------------------------------------------
# Choosing evaluative words
# --------------------------------------------------------------------------
_STRENGTH_WEIGHTS = ((3, 0.3), (2, 0.5), (1, 0.2))


def _adjective(rng: random.Random, clause: Clause, domain: str) -> tuple[str, int]:
    """An adjective of the clause's polarity and its strength (1-3)."""
    positive = clause.polarity > 0
    if rng.random() < 0.25:
        return _pick(rng, lx.DOMAIN_ADJ[domain][0 if positive else 1]), 2
    table = lx.POS_ADJ if positive else lx.NEG_ADJ
    allowed = [(s, w) for s, w in _STRENGTH_WEIGHTS
               if not (s == 3 and clause.degree == "hedge")]
    strength = rng.choices([s for s, _ in allowed], [w for _, w in allowed])[0]
    return _pick(rng, table[strength]), strength


def _degree_word(rng: random.Random, degree: str, strength: int) -> str:
    if degree == "intensifier":
        if strength == 3 and rng.random() < 0.5:
            return _pick(rng, lx.STRONG_INTENSIFIERS) + " "
        return _pick(rng, lx.INTENSIFIERS) + " "
    if degree == "hedge":
        return _pick(rng, lx.HEDGES) + " "
    return ""


# --------------------------------------------------------------------------
# Writing one clause (no capital, no final period)
# --------------------------------------------------------------------------
def _adjective_clause(rng: random.Random, clause: Clause, subj: str, domain: str) -> str:
    adj, strength = _adjective(rng, clause, domain)
    cop = _pick(rng, ("is", "was"))
    if not clause.negated:
        d = _degree_word(rng, clause.degree, strength)
        if clause.degree == "none" and rng.random() < 0.1:
            # "not only ... but also" contains a negator and "but", yet it
            # neither negates nor contrasts.
            other, _ = _adjective(rng, clause, domain)
            return f"{subj} {cop} not only {adj} but also {other}"
        forms = (
            f"{subj} {cop} {d}{adj}",
            f"{subj} {cop} {d}{adj} throughout",
            f"I found {subj} {d}{adj}",
            f"{subj} {_pick(rng, ('feels', 'felt', 'seems', 'seemed', 'comes across as'))} {d}{adj}",
            f"{subj} {cop} {d}{adj} from the first minute",
        )
        return _pick(rng, forms)
    nd = _pick(rng, lx.NEGATED_DEGREE) + " " if rng.random() < 0.3 else ""
    short_neg = _pick(rng, ("never", "hardly", "far from", "by no means", "anything but",
                            "in no way", "not remotely", "not exactly", "not at all", "never once"))
    forms = (
        f"{subj} {cop}n't {nd}{adj}",
        f"{subj} {cop} not {nd}{adj}",
        f"{subj} {cop} not {adj} at all",
        f"{subj} {cop} {short_neg} {adj}",
        f"{subj} {cop} {short_neg} {adj}",
        f"I would not say {subj} {cop} {nd}{adj}",
        f"I wouldn't call {subj} {nd}{adj}",
        f"I can't say {subj} {cop} {adj}",
        f"no one could call {subj} {adj}",
        f"I did not find {subj} {nd}{adj}",
        f"nobody would describe {subj} as {adj}",
        f"there {cop} nothing {adj} about {subj}",
        f"{subj} {cop} not what I would call {adj}",
        f"{subj} never {_pick(rng, ('feels', 'felt', 'seems', 'gets'))} {adj}",
    )
    return _pick(rng, forms)


def _noun_clause(rng: random.Random, clause: Clause, subj: str) -> str:
    positive = clause.polarity > 0
    np = _pick(rng, lx.POS_NP if positive else lx.NEG_NP)
    cop = _pick(rng, ("is", "was"))
    if not clause.negated:
        if clause.degree == "intensifier":
            mod = _pick(rng, ("real", "genuine", "complete", "absolute", "total"))
            np = _pick(rng, (f"truly {np}", f"nothing short of {np}", f"{_article(mod)} {mod} {_bare(np)}"))
        elif clause.degree == "hedge":
            np = _pick(rng, (f"something of {np}", f"a bit of {np}", f"more or less {np}", f"in some ways {np}"))
        return _pick(rng, (f"{subj} {cop} {np}", f"{subj} {cop} {np}, plain and simple", f"{subj} turned out to be {np}"))
    forms = [
        f"{subj} {cop} not {np}", f"{subj} {cop}n't {np}", f"{subj} {cop} hardly {np}",
        f"{subj} {cop} far from {np}", f"{subj} {cop} no {_bare(np)}",
        f"{subj} {cop} anything but {np}", f"{subj} {cop} by no means {np}",
        f"I would not call {subj} {np}", f"no one would call {subj} {np}",
        f"{subj} {cop} not what I would call {np}",
    ]
    if positive:
        forms.append(f"{subj} {cop} not quite {np}")
    return _pick(rng, forms)


def _verb_clause(rng: random.Random, clause: Clause, subj: str) -> str:
    positive = clause.polarity > 0
    if rng.random() < 0.4:  # experiencer frame: "I was moved by the score"
        frame = _pick(rng, lx.POS_PASSIVE if positive else lx.NEG_PASSIVE)
        if clause.negated:
            return _pick(rng, (f"I was not {frame} {subj}", f"I was never {frame} {subj}",
                               f"at no point was I {frame} {subj}", f"I wasn't {frame} {subj}"))
        d = _degree_word(rng, clause.degree, 2)
        return f"I was {d}{frame} {subj}"
    if not positive and not clause.negated and rng.random() < 0.25:
        return f"I {_pick(rng, lx.NEG_IDIOMS)} {subj}"
    past, base = _pick(rng, lx.POS_VERBS if positive else lx.NEG_VERBS)
    # Both verb forms occur negated and unnegated, so neither gives the label away.
    if clause.negated:
        return _pick(rng, (f"I did not {base} {subj}", f"I don't {base} {subj}", f"I do not really {base} {subj}",
                           f"I never {past} {subj}", f"I can't say I {past} {subj}", f"I never really {past} {subj}"))
    d = _degree_word(rng, clause.degree, 2)
    return _pick(rng, (f"I {d}{past} {subj}", f"we {d}{past} {subj}", f"I {d}{base} {subj}",
                       f"I {d}{past} {subj} from start to end"))


def write_clause(rng: random.Random, clause: Clause, subj: str, domain: str) -> str:
    """One clause expressing ``clause`` about ``subj`` (lower-case, no period)."""
    r = rng.random()
    if r < 0.6:
        return _adjective_clause(rng, clause, subj, domain)
    if r < 0.78:
        return _noun_clause(rng, clause, subj)
    return _verb_clause(rng, clause, subj)


# --------------------------------------------------------------------------
# Writing opinions as sentences
# --------------------------------------------------------------------------
def _subjects(rng: random.Random, domain: str, item: str, n: int) -> list[str]:
    """``n`` distinct subjects: aspects ("the script"), at most one of them
    replaced by the reviewed item itself ("the film")."""
    subjects = rng.sample(lx.ASPECTS[domain], n)
    if rng.random() < 0.3 + 0.15 * (n - 1):
        subjects[rng.randrange(n)] = item
    return subjects


def _clause_sentence(rng: random.Random, clause: Clause, subj: str, domain: str) -> str:
    text = write_clause(rng, clause, subj, domain)
    if rng.random() < 0.2 and not text.startswith("I "):
        return f"{_pick(rng, lx.FRAMINGS)} {text}."
    if rng.random() < 0.1:
        return _cap(f"{text}, {_pick(rng, lx.SIGN_OFFS)}.")
    return _cap(text) + "."


def _contrast_sentence(rng: random.Random, contrast: Contrast, domain: str, item: str) -> str:
    c_subj, m_subj = _subjects(rng, domain, item, 2)
    conc = contrast.concession
    m = write_clause(rng, contrast.main, m_subj, domain)
    if not conc.negated and c_subj in lx.ASPECTS[domain] and rng.random() < 0.2:
        adj, strength = _adjective(rng, conc, domain)
        noun = c_subj.removeprefix("the ")
        phrase = f"the {_degree_word(rng, conc.degree, strength)}{adj} {noun}"
        if rng.random() < 0.5:
            return _cap(f"despite {phrase}, {m}.")
        return _cap(f"{m}, despite {phrase}.")
    c = write_clause(rng, conc, c_subj, domain)
    forms = (
        f"{c}, but {m}.", f"{c}, but {m}.", f"{c}, yet {m}.", f"sure, {c}, but {m}.",
        f"{c}. However, {m}.", f"{c}. But {m}.", f"{c}. Still, {m}.", f"{c}. Even so, {m}.",
        f"{c}. That said, {m}.", f"{c}. Nevertheless, {m}.", f"{c}. In the end, though, {m}.",
        f"although {c}, {m}.", f"though {c}, {m}.", f"even though {c}, {m}.",
        f"while {c}, {m}.", f"even if {c}, {m}.",
        f"{m}, although {c}.", f"{m}, even though {c}.", f"{m}, despite the fact that {c}.",
        f"{m}, even if {c}.",
    )
    text = _pick(rng, forms)
    # Capitalise every sentence start (a form may hold two sentences).
    return ". ".join(_cap(part) for part in text.split(". "))


def write_opinions(rng: random.Random, opinions: Sequence[Opinion], domain: str, item: str) -> list[str]:
    """Sentences for the opinions; two simple clauses may share one sentence
    joined by "and" (which, unlike "but", does not let one side decide)."""
    simple = [o for o in opinions if isinstance(o, Clause)]
    if len(opinions) == 2 and len(simple) == 2 and rng.random() < 0.35:
        s1, s2 = _subjects(rng, domain, item, 2)
        a = write_clause(rng, opinions[0], s1, domain)
        b = write_clause(rng, opinions[1], s2, domain)
        joiner = _pick(rng, (", and ", ", and ", "; ", ", and also "))
        return [_cap(a + joiner + b) + "."]
    subjects = _subjects(rng, domain, item, len(opinions))
    return [
        _contrast_sentence(rng, o, domain, item) if isinstance(o, Contrast)
        else _clause_sentence(rng, o, subj, domain)
        for o, subj in zip(opinions, subjects)
    ]


# --------------------------------------------------------------------------
# Neutral sentences
# --------------------------------------------------------------------------
def _cast(rng: random.Random) -> dict[str, str]:
    name, name2 = rng.sample(lx.FIRST_NAMES, 2)
    return {"name": name, "name2": name2, "surname": _pick(rng, lx.SURNAMES)}


def _event(rng: random.Random, cast: Mapping[str, str], actor: str = "name") -> str:
    """A plot event done by ``cast[actor]``; any second character is the other one."""
    other = cast["name2"] if actor == "name" else cast["name"]
    return _pick(rng, lx.PLOT_EVENTS).format(
        place=_pick(rng, lx.PLACES), relative=_pick(rng, lx.RELATIVES), name2=other,
        object=_pick(rng, lx.OBJECTS), spot=_pick(rng, lx.SPOTS),
    )


def _follow_up(rng: random.Random, cast: Mapping[str, str]) -> str:
    template = _pick(rng, lx.PLOT_FOLLOW_UPS)
    actor = "name2" if "{name2}" in template else "name"
    return template.format(name=cast["name"], name2=cast["name2"], event=_event(rng, cast, actor))


def _neutral_forms(domain: str) -> list:
    """Neutral sentence makers for a domain; each takes (rng, cast)."""
    p = _pick
    common = [
        lambda r, c: f"I heard about it from {p(r, lx.COMPANIONS)}.",
        lambda r, c: "I went in knowing very little about it.",
        lambda r, c: "It took me a few weeks to get around to writing this.",
        lambda r, c: f"I had read a few reviews before {p(r, ('trying it', 'going', 'buying it', 'starting'))}.",
        lambda r, c: f"This is my {p(r, ('first', 'second', 'third', 'fifth'))} review on this site.",
    ]
    story = [
        lambda r, c: f"The story follows {c['name']}, {p(r, lx.OCCUPATIONS)} from {p(r, lx.PLACES)}, "
                     f"who {_event(r, c)}.",
        lambda r, c: f"It is a {p(r, lx.GENRES)} set {p(r, lx.SETTINGS)}.",
        lambda r, c: f"{c['name']} {_event(r, c)}.",
        lambda r, c: _follow_up(r, c),
    ]
    by_domain = {
        "film": [
            lambda r, c: f"I watched it on a {p(r, lx.WEEKDAYS)} night with {p(r, lx.COMPANIONS)}.",
            lambda r, c: f"{c['name']} {c['surname']} plays {p(r, lx.OCCUPATIONS)} who {_event(r, c)}.",
            lambda r, c: f"It runs just over {r.randint(85, 170)} minutes.",
            lambda r, c: f"It was filmed in {p(r, lx.PLACES)} over {r.randint(2, 14)} weeks.",
            lambda r, c: f"The poster shows {c['name']} holding {p(r, lx.OBJECTS)}.",
        ],
        "book": [
            lambda r, c: f"I read it over {p(r, ('a long weekend', 'two weeks', 'a month', 'a few evenings'))}.",
            lambda r, c: f"It is about {r.randint(18, 70) * 10} pages long.",
            lambda r, c: f"{c['name']} {c['surname']} wrote it after {r.randint(3, 30)} years as "
                         f"{p(r, lx.OCCUPATIONS)}.",
            lambda r, c: f"I picked up a copy from {p(r, lx.STORES)}.",
            lambda r, c: f"Much of it revolves around {p(r, lx.OBJECTS)} that {c['name']} keeps in {p(r, lx.PLACES)}.",
        ],
        "restaurant": [
            lambda r, c: f"We went on a {p(r, lx.WEEKDAYS)} evening with {p(r, lx.COMPANIONS)}.",
            lambda r, c: "We ordered {} and {}.".format(*r.sample(lx.DISHES, 2)),
            lambda r, c: "I had {0} and {2} had {1}.".format(*r.sample(lx.DISHES, 2), p(r, lx.COMPANIONS)),
            lambda r, c: "It is on a side street near the "
                         f"{p(r, ('station', 'harbor', 'old market', 'cathedral', 'university'))}.",
            lambda r, c: f"We booked a table for {r.randint(2, 8)} about a week ahead.",
            lambda r, c: f"The kitchen is run by {c['name']} {c['surname']}, who used to cook in {p(r, lx.PLACES)}.",
            lambda r, c: f"The menu changes every {p(r, ('season', 'month', 'week'))}.",
            lambda r, c: f"I drank {p(r, lx.DRINKS)} and {p(r, lx.COMPANIONS)} stuck to {p(r, lx.DRINKS)}.",
            lambda r, c: f"We sat {p(r, ('outside', 'upstairs', 'at the counter', 'in the back room'))} "
                         f"from {r.randint(6, 9)} until about {r.randint(10, 11)}.",
            lambda r, c: f"Our table was by the {p(r, ('window', 'bar', 'kitchen door', 'fireplace', 'stairs'))}.",
            lambda r, c: f"The bill came to about {r.randint(30, 200)} dollars for the "
                         f"{p(r, ('two', 'three', 'four'))} of us.",
        ],
        "product": [
            lambda r, c: f"I bought it {r.randint(2, 11)} {p(r, ('weeks', 'months'))} ago to replace my old "
                         f"{p(r, lx.OLD_THINGS)}.",
            lambda r, c: "It comes in {} and {}.".format(*r.sample(lx.COLORS, 2)),
            lambda r, c: f"I mostly use it for {p(r, lx.USES)}.",
            lambda r, c: "The box included {} and {}.".format(*r.sample(lx.ACCESSORIES, 2)),
            lambda r, c: f"It has {r.randint(2, 12)} settings and a {p(r, ('dial', 'touch panel', 'switch', 'timer'))}.",
            lambda r, c: f"It weighs about {r.randint(3, 40) * 50} grams.",
            lambda r, c: f"I ordered it from {p(r, lx.STORES)} and it arrived on a {p(r, lx.WEEKDAYS)}.",
            lambda r, c: f"It cost about {r.randint(15, 400)} dollars.",
            lambda r, c: f"I gave the older model to {p(r, lx.COMPANIONS)}.",
        ],
        "game": [
            lambda r, c: f"You play as {c['name']}, {p(r, lx.OCCUPATIONS)} who {_event(r, c)}.",
            lambda r, c: f"I played it on {p(r, lx.PLATFORMS)} for about {r.randint(5, 90)} hours.",
            lambda r, c: f"There are {r.randint(4, 30)} chapters and a separate "
                         f"{p(r, ('co-op', 'arcade', 'survival', 'photo'))} mode.",
            lambda r, c: f"The studio behind it is based in {p(r, lx.PLACES)}.",
            lambda r, c: f"At one point you have to carry {p(r, lx.OBJECTS)} across {p(r, lx.PLACES)}.",
        ],
    }
    forms = by_domain[domain] + common
    if domain in ("film", "book", "game"):
        forms += story
    return forms


_NEUTRAL = {d: _neutral_forms(d) for d in DOMAINS}


def neutral_sentences(rng: random.Random, domain: str, cast: Mapping[str, str], n: int) -> list[str]:
    """``n`` sentences with no evaluative word, negator or contrast marker,
    each from a different template while there are enough templates."""
    forms = _NEUTRAL[domain]
    picks = rng.sample(range(len(forms)), min(n, len(forms)))
    picks += [rng.randrange(len(forms)) for _ in range(n - len(picks))]
    return [forms[i](rng, cast) for i in picks]


def _summary(rng: random.Random, domain: str, cast: Mapping[str, str], n: int) -> list[str]:
    """``n`` neutral sentences; for stories a plot summary that opens the plot."""
    if domain not in ("film", "book", "game"):
        return neutral_sentences(rng, domain, cast, n)
    out = [f"The story follows {cast['name']}, {_pick(rng, lx.OCCUPATIONS)} from "
           f"{_pick(rng, lx.PLACES)}, who {_event(rng, cast)}."]
    while len(out) < n:
        out.append(_follow_up(rng, cast))
    return out[:n]


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
    *, seed: int, size: int = 6000, classes: int = 2, min_sentences: int = 1,
    max_sentences: int = 4, mix: Mapping[str, float] | None = None,
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
    *, seed: int, size: int = 6000, classes: int = 2, noise: float = 0.05,
    min_sentences: int = 1, max_sentences: int = 4,
    mix: Mapping[str, float] | None = None, domains: Sequence[str] | str | None = None,
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
        seed=seed, size=size, classes=classes, min_sentences=min_sentences,
        max_sentences=max_sentences, mix=mix, domains=domains,
    )
    if noise > 0:
        names = (POSITIVE, NEGATIVE, MIXED)[:classes]
        labels = flip_labels(labels, names, noise, stream("reviews", "noise", seed))
    return {"text": texts, "label": labels}
