"""How a planned review is written out: clauses, contrasts and neutral sentences in varied English.

Positive words also appear in negative reviews (negated, or in the conceded
half of a contrast) and vice versa, so the same sentiment words occur in
both classes; only the structure decides the label.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from textclf.data.corpora import lexicon as lx
from textclf.data.corpora.review_plan import DOMAINS, Clause, Contrast, Opinion


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
    allowed = [(s, w) for s, w in _STRENGTH_WEIGHTS if not (s == 3 and clause.degree == "hedge")]
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
    short_neg = _pick(
        rng,
        (
            "never",
            "hardly",
            "far from",
            "by no means",
            "anything but",
            "in no way",
            "not remotely",
            "not exactly",
            "not at all",
            "never once",
        ),
    )
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
        return _pick(
            rng, (f"{subj} {cop} {np}", f"{subj} {cop} {np}, plain and simple", f"{subj} turned out to be {np}")
        )
    forms = [
        f"{subj} {cop} not {np}",
        f"{subj} {cop}n't {np}",
        f"{subj} {cop} hardly {np}",
        f"{subj} {cop} far from {np}",
        f"{subj} {cop} no {_bare(np)}",
        f"{subj} {cop} anything but {np}",
        f"{subj} {cop} by no means {np}",
        f"I would not call {subj} {np}",
        f"no one would call {subj} {np}",
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
            return _pick(
                rng,
                (
                    f"I was not {frame} {subj}",
                    f"I was never {frame} {subj}",
                    f"at no point was I {frame} {subj}",
                    f"I wasn't {frame} {subj}",
                ),
            )
        d = _degree_word(rng, clause.degree, 2)
        return f"I was {d}{frame} {subj}"
    if not positive and not clause.negated and rng.random() < 0.25:
        return f"I {_pick(rng, lx.NEG_IDIOMS)} {subj}"
    past, base = _pick(rng, lx.POS_VERBS if positive else lx.NEG_VERBS)
    # Both verb forms occur negated and unnegated, so neither gives the label away.
    if clause.negated:
        return _pick(
            rng,
            (
                f"I did not {base} {subj}",
                f"I don't {base} {subj}",
                f"I do not really {base} {subj}",
                f"I never {past} {subj}",
                f"I can't say I {past} {subj}",
                f"I never really {past} {subj}",
            ),
        )
    d = _degree_word(rng, clause.degree, 2)
    return _pick(
        rng,
        (f"I {d}{past} {subj}", f"we {d}{past} {subj}", f"I {d}{base} {subj}", f"I {d}{past} {subj} from start to end"),
    )


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
        f"{c}, but {m}.",
        f"{c}, but {m}.",
        f"{c}, yet {m}.",
        f"sure, {c}, but {m}.",
        f"{c}. However, {m}.",
        f"{c}. But {m}.",
        f"{c}. Still, {m}.",
        f"{c}. Even so, {m}.",
        f"{c}. That said, {m}.",
        f"{c}. Nevertheless, {m}.",
        f"{c}. In the end, though, {m}.",
        f"although {c}, {m}.",
        f"though {c}, {m}.",
        f"even though {c}, {m}.",
        f"while {c}, {m}.",
        f"even if {c}, {m}.",
        f"{m}, although {c}.",
        f"{m}, even though {c}.",
        f"{m}, despite the fact that {c}.",
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
        _contrast_sentence(rng, o, domain, item) if isinstance(o, Contrast) else _clause_sentence(rng, o, subj, domain)
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
        place=_pick(rng, lx.PLACES),
        relative=_pick(rng, lx.RELATIVES),
        name2=other,
        object=_pick(rng, lx.OBJECTS),
        spot=_pick(rng, lx.SPOTS),
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
        lambda r, c: (
            f"The story follows {c['name']}, {p(r, lx.OCCUPATIONS)} from {p(r, lx.PLACES)}, who {_event(r, c)}."
        ),
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
            lambda r, c: (
                f"{c['name']} {c['surname']} wrote it after {r.randint(3, 30)} years as {p(r, lx.OCCUPATIONS)}."
            ),
            lambda r, c: f"I picked up a copy from {p(r, lx.STORES)}.",
            lambda r, c: f"Much of it revolves around {p(r, lx.OBJECTS)} that {c['name']} keeps in {p(r, lx.PLACES)}.",
        ],
        "restaurant": [
            lambda r, c: f"We went on a {p(r, lx.WEEKDAYS)} evening with {p(r, lx.COMPANIONS)}.",
            lambda r, c: "We ordered {} and {}.".format(*r.sample(lx.DISHES, 2)),
            lambda r, c: "I had {0} and {2} had {1}.".format(*r.sample(lx.DISHES, 2), p(r, lx.COMPANIONS)),
            lambda r, c: (
                "It is on a side street near the "
                f"{p(r, ('station', 'harbor', 'old market', 'cathedral', 'university'))}."
            ),
            lambda r, c: f"We booked a table for {r.randint(2, 8)} about a week ahead.",
            lambda r, c: f"The kitchen is run by {c['name']} {c['surname']}, who used to cook in {p(r, lx.PLACES)}.",
            lambda r, c: f"The menu changes every {p(r, ('season', 'month', 'week'))}.",
            lambda r, c: f"I drank {p(r, lx.DRINKS)} and {p(r, lx.COMPANIONS)} stuck to {p(r, lx.DRINKS)}.",
            lambda r, c: (
                f"We sat {p(r, ('outside', 'upstairs', 'at the counter', 'in the back room'))} "
                f"from {r.randint(6, 9)} until about {r.randint(10, 11)}."
            ),
            lambda r, c: f"Our table was by the {p(r, ('window', 'bar', 'kitchen door', 'fireplace', 'stairs'))}.",
            lambda r, c: (
                f"The bill came to about {r.randint(30, 200)} dollars for the {p(r, ('two', 'three', 'four'))} of us."
            ),
        ],
        "product": [
            lambda r, c: (
                f"I bought it {r.randint(2, 11)} {p(r, ('weeks', 'months'))} ago to replace my old "
                f"{p(r, lx.OLD_THINGS)}."
            ),
            lambda r, c: "It comes in {} and {}.".format(*r.sample(lx.COLORS, 2)),
            lambda r, c: f"I mostly use it for {p(r, lx.USES)}.",
            lambda r, c: "The box included {} and {}.".format(*r.sample(lx.ACCESSORIES, 2)),
            lambda r, c: (
                f"It has {r.randint(2, 12)} settings and a {p(r, ('dial', 'touch panel', 'switch', 'timer'))}."
            ),
            lambda r, c: f"It weighs about {r.randint(3, 40) * 50} grams.",
            lambda r, c: f"I ordered it from {p(r, lx.STORES)} and it arrived on a {p(r, lx.WEEKDAYS)}.",
            lambda r, c: f"It cost about {r.randint(15, 400)} dollars.",
            lambda r, c: f"I gave the older model to {p(r, lx.COMPANIONS)}.",
        ],
        "game": [
            lambda r, c: f"You play as {c['name']}, {p(r, lx.OCCUPATIONS)} who {_event(r, c)}.",
            lambda r, c: f"I played it on {p(r, lx.PLATFORMS)} for about {r.randint(5, 90)} hours.",
            lambda r, c: (
                f"There are {r.randint(4, 30)} chapters and a separate "
                f"{p(r, ('co-op', 'arcade', 'survival', 'photo'))} mode."
            ),
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
    out = [
        f"The story follows {cast['name']}, {_pick(rng, lx.OCCUPATIONS)} from "
        f"{_pick(rng, lx.PLACES)}, who {_event(rng, cast)}."
    ]
    while len(out) < n:
        out.append(_follow_up(rng, cast))
    return out[:n]
