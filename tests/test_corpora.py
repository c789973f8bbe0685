"""Tests for the generated built-in corpora (textclf.data.corpora)."""

from __future__ import annotations

import inspect
import itertools
import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from textclf.core.errors import DataError
from textclf.data.corpora import (
    CORPORA,
    corpus_names,
    generate,
    order_label,
    review_label,
)
from textclf.data.corpora import lexicon as lx
from textclf.data.corpora.diagnostics import FLIP_MARKER, NEGATIVE_CUES, POSITIVE_CUES
from textclf.data.corpora.review_plan import DOMAINS, Clause, Contrast
from textclf.data.corpora.review_text import neutral_sentences, write_clause
from textclf.data.corpora.reviews import reviews_with_plans

# The diagnostic corpora have their own tests in test_diagnostic_corpora.py;
# this file checks the API they share with reviews.
SMALL = {"reviews": 300, "long-range": 200, "ends": 200, "context": 200, "order": 200, "listops": 200}


# --------------------------------------------------------------------------
# API and determinism
# --------------------------------------------------------------------------
def test_names_and_docstrings():
    assert corpus_names() == sorted(["reviews", "long-range", "ends", "context", "order", "listops"])
    for name, fn in CORPORA.items():
        doc = fn.__doc__ or ""
        assert "Label" in doc or "label" in doc, name


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shape_and_determinism(name):
    a = generate(name, seed=7, size=SMALL[name])
    b = generate(name, seed=7, size=SMALL[name])
    c = generate(name, seed=8, size=SMALL[name])
    # Extra columns (listops: depth) are allowed, one value per row.
    assert {"text", "label"} <= set(a)
    assert all(len(column) == SMALL[name] for column in a.values())
    assert all(isinstance(t, str) and t for t in a["text"])
    assert all(isinstance(label, str) for label in a["label"])
    assert a == b
    assert a["text"] != c["text"]


def test_same_output_in_another_process():
    code = (
        "import hashlib, json; from textclf.data.corpora import corpus_names, generate; "
        "rows = [generate(n, seed=3, size=50) for n in corpus_names()]; "
        "print(hashlib.sha256(json.dumps(rows).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_default_sizes():
    assert len(generate("long-range", seed=0)["text"]) == 2000
    assert len(generate("context", seed=0)["label"]) == 3000


@pytest.mark.parametrize(
    "name,options,classes",
    [
        ("reviews", {}, 2),
        ("reviews", {"classes": 3}, 3),
        ("long-range", {}, 10),
        ("long-range", {"classes": 3}, 3),
        ("ends", {}, 16),
        ("ends", {"classes": 3, "rule": "sum"}, 3),
        ("ends", {"classes": 2}, 4),
        ("context", {}, 2),
        ("context", {"cues": 1, "length": 7, "window": 3}, 2),
        ("order", {}, 2),
        ("listops", {}, 10),
        ("listops", {"max_depth": 3}, 10),
    ],
)
def test_balanced_and_shuffled(name, options, classes):
    labels = generate(name, seed=1, size=997, **options)["label"]
    counts = Counter(labels)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert len(counts) == classes
    # Shuffled: far more label changes between neighbours than a grouped list.
    changes = sum(x != y for x, y in itertools.pairwise(labels))
    assert changes > len(labels) // 3


def test_reviews_with_noise_stays_balanced():
    labels = generate("reviews", seed=2, size=1001, noise=0.3, classes=3)["label"]
    counts = Counter(labels)
    assert max(counts.values()) - min(counts.values()) <= 1


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------
def test_unknown_corpus():
    with pytest.raises(DataError, match="nosuch") as err:
        generate("nosuch", seed=0)
    for name in corpus_names():
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unknown_option(name):
    with pytest.raises(DataError, match="bogus") as err:
        generate(name, seed=0, size=10, bogus=1)
    message = str(err.value)
    for option in inspect.signature(CORPORA[name]).parameters:
        if option not in ("seed", "size"):
            assert option in message


@pytest.mark.parametrize(
    "name,options,culprit",
    [
        ("reviews", {"noise": 1.5}, "noise"),
        ("reviews", {"noise": -0.1}, "noise"),
        ("reviews", {"classes": 4}, "classes"),
        ("reviews", {"min_sentences": 3, "max_sentences": 2}, "max_sentences"),
        ("reviews", {"mix": {"plain": 1, "sarcasm": 1}}, "sarcasm"),
        ("reviews", {"mix": {"plain": -1}}, "plain"),
        ("reviews", {"domains": ["film", "poetry"]}, "poetry"),
        # Diagnostics: the message names the option and the value.
        ("long-range", {"distance": 0}, "distance=0"),
        ("long-range", {"distance": 2001}, "distance=2001"),
        ("long-range", {"classes": 1}, "classes=1"),
        ("long-range", {"classes": 11}, "classes=11"),
        ("long-range", {"distance": 2.5}, "distance=2.5"),
        ("ends", {"length": 0}, "length=0"),
        ("ends", {"classes": 11}, "classes=11"),
        ("ends", {"rule": "xor"}, "rule='xor'"),
        ("context", {"cues": 4}, "cues=4"),
        ("context", {"cues": 0}, "cues=0"),
        ("context", {"window": 0}, "window=0"),
        ("context", {"window": 51}, "window=51"),
        ("context", {"length": 2}, "length=2"),
        ("context", {"length": 34, "cues": 5, "window": 3}, "length=34"),
        ("order", {"length": 4}, "length=4"),
        ("listops", {"max_depth": 0}, "max_depth=0"),
        ("listops", {"max_depth": 21}, "max_depth=21"),
        ("listops", {"max_args": 1}, "max_args=1"),
        ("listops", {"max_length": 3}, "max_length=3"),
        ("listops", {"max_depth": 6, "max_length": 18}, "max_length=18"),
    ],
)
def test_bad_option_value(name, options, culprit):
    with pytest.raises(DataError) as err:
        generate(name, seed=0, size=10, **options)
    assert culprit in str(err.value)


@pytest.mark.parametrize("size", [-5, 0, 2.5, True])
def test_bad_size(size):
    with pytest.raises(DataError, match="size"):
        generate("reviews", seed=0, size=size)


def test_builtin_prefix_is_accepted():
    assert generate("builtin:context", seed=0, size=5) == generate("context", seed=0, size=5)


@pytest.mark.parametrize(
    "name,options",
    [
        ("long-range", {}),
        ("ends", {}),
        ("ends", {"rule": "sum"}),
        ("context", {}),
        ("order", {}),
        ("listops", {}),
    ],
)
def test_diagnostics_make_the_size_asked_for(name, options):
    # Their speed (0.15-0.6 s for 20k rows on an idle core) is a benchmark's business, not a test's.
    assert len(generate(name, seed=0, size=20_000, **options)["text"]) == 20_000


# --------------------------------------------------------------------------
# order (a control for context; context itself: test_diagnostic_corpora.py)
# --------------------------------------------------------------------------
def _cues(tokens):
    return [i for i, t in enumerate(tokens) if t in POSITIVE_CUES or t in NEGATIVE_CUES]


P, N, M = POSITIVE_CUES[0], NEGATIVE_CUES[2], FLIP_MARKER


@pytest.mark.parametrize(
    "text,label",
    [
        (f"bako {P} dipu", "positive"),
        (f"bako {P} {M} dipu", "negative"),
        (f"{M} bako {P} dipu", "positive"),  # marker before the cue: a decoy
        (f"{N} bako {M} {M}", "negative"),  # two flips cancel
        (f"{M} {N} dipu", "negative"),
        (f"bako {N} {M}", "positive"),
    ],
)
def test_order_label(text, label):
    assert order_label(text) == label


def test_order_label_brute_force():
    alphabet = ("bako", P, N, M)
    for length in range(1, 7):
        for tokens in itertools.product(alphabet, repeat=length):
            if len(_cues(tokens)) != 1:
                continue
            cue = _cues(tokens)[0]
            later = sum(t == M for t in tokens[cue + 1 :])
            expected = "positive" if (tokens[cue] == P) ^ (later % 2 == 1) else "negative"
            assert order_label(tokens) == expected
    with pytest.raises(ValueError):
        order_label(f"{P} {N} {M}")


def test_order_rows():
    rows = generate("order", seed=5, size=300, length=20)
    before = after = 0
    for text, label in zip(rows["text"], rows["label"]):
        tokens = text.split()
        assert len(tokens) == 20 and tokens.count(FLIP_MARKER) == 1
        assert order_label(tokens) == label
        (cue,) = _cues(tokens)
        assert 5 <= cue <= 15
        after += tokens.index(FLIP_MARKER) > cue
        before += tokens.index(FLIP_MARKER) < cue
    # Both orders are common, so the bag of words alone cannot give the label.
    assert before > 100 and after > 100


# --------------------------------------------------------------------------
# reviews
# --------------------------------------------------------------------------
def test_review_label_composition():
    pos, neg = Clause(1), Clause(-1)
    assert review_label([pos]) == "positive"
    assert review_label([Clause(-1, negated=True)]) == "positive"  # "not bad at all"
    assert review_label([Clause(1, negated=True)]) == "negative"  # "hardly a masterpiece"
    assert review_label([Clause(1, degree="hedge")]) == "positive"  # "somewhat enjoyable"
    assert review_label([Clause(-1, degree="intensifier")]) == "negative"  # "extremely dull"
    # "The cast is wonderful, but the script is a mess."
    assert review_label([Contrast(pos, neg)]) == "negative"
    # "Although the pacing drags, it is a delight."
    assert review_label([Contrast(neg, pos)]) == "positive"
    # "Although it is not bad, the ending is hardly satisfying."
    assert review_label([Contrast(Clause(-1, negated=True), Clause(1, negated=True))]) == "negative"
    # Juxtaposition does not let one side win.
    assert review_label([pos, neg]) == "mixed"
    assert review_label([pos, Contrast(pos, neg)]) == "mixed"
    assert review_label([pos, Contrast(neg, pos)]) == "positive"


def _words(text):
    return set(re.findall(r"[a-z'\-]+", text.lower()))


def test_written_clauses_realise_their_plan():
    rng = random.Random(0)
    negators = {"not", "never", "hardly", "no", "nothing", "nobody", "n't", "far", "anything"}
    for _ in range(500):
        clause = Clause(rng.choice([1, -1]), negated=rng.random() < 0.5)
        text = write_clause(rng, clause, "the script", "film").replace("n't", " n't")
        words = _words(text)
        assert "script" in text
        if clause.negated:
            assert words & (negators | {"at"}), text  # "at no point was I ..."
        else:
            # Unnegated clauses may contain "not" only in "not only ... but also"
            # or in a negative idiom ("could not stand").
            if "not" in words:
                assert "not only" in text or clause.polarity < 0, text


def test_neutral_sentences_carry_no_sentiment_or_structure_words():
    evaluative = set()
    for table in (lx.POS_ADJ, lx.NEG_ADJ):
        for words in table.values():
            evaluative.update(words)
    for pos, neg in lx.DOMAIN_ADJ.values():
        evaluative.update(pos + neg)
    evaluative.update(np.split()[1] for np in lx.POS_NP + lx.NEG_NP)  # head noun
    evaluative.update(v for pair in lx.POS_VERBS + lx.NEG_VERBS for v in pair)
    structure = {
        "not",
        "never",
        "no",
        "hardly",
        "nothing",
        "but",
        "although",
        "though",
        "however",
        "yet",
        "despite",
        "while",
        "still",
        "even",
    }
    rng = random.Random(1)
    cast = {"name": "Anna", "name2": "Ben", "surname": "Novak"}
    for domain in DOMAINS:
        for sentence in neutral_sentences(rng, domain, cast, 300):
            bad = _words(sentence) & (evaluative | structure)
            assert not bad, (sentence, bad)


def test_reviews_noise_free_labels_follow_plans():
    texts, labels, plans = reviews_with_plans(seed=3, size=600, classes=3)
    kinds = Counter(p.phenomenon for p in plans)
    for _text, label, plan in zip(texts, labels, plans):
        assert review_label(plan.opinions) == label
        if label != "mixed":
            assert plan.phenomenon != "mixed"
    assert {"plain", "intensified", "negation", "contrast", "long_range", "mixed"} <= set(kinds)
    public = generate("reviews", seed=3, size=600, classes=3, noise=0.0)
    assert public == {"text": texts, "label": labels}


def test_reviews_phenomena_appear_in_text():
    texts, _, plans = reviews_with_plans(seed=4, size=400)
    markers = (
        "but",
        "although",
        "though",
        "however",
        "yet",
        "still",
        "despite",
        "while",
        "even",
        "nevertheless",
        "said",
        "so",
    )
    for text, plan in zip(texts, plans):
        if plan.phenomenon == "contrast" and len(plan.opinions) == 1:
            assert _words(text) & set(markers), text
        if plan.phenomenon == "long_range":
            assert len(text.split()) >= 40, text


def test_reviews_noise_flips_labels_but_not_texts():
    clean = generate("reviews", seed=6, size=1000, noise=0.0)
    noisy = generate("reviews", seed=6, size=1000, noise=0.2)
    assert noisy["text"] == clean["text"]
    flipped = sum(a != b for a, b in zip(clean["label"], noisy["label"]))
    assert 180 <= flipped <= 220
    default = generate("reviews", seed=6, size=1000)
    assert 30 <= sum(a != b for a, b in zip(clean["label"], default["label"])) <= 70


def test_reviews_mix_and_length_options():
    texts, _, plans = reviews_with_plans(seed=5, size=200, mix={"contrast": 1.0})
    assert {p.phenomenon for p in plans} == {"contrast"}
    texts, _, plans = reviews_with_plans(seed=5, size=200, mix={"plain": 1.0}, min_sentences=1, max_sentences=1)
    assert all(len(re.findall(r"[.!?](?: |$)", t)) <= 2 for t in texts)
    long = generate("reviews", seed=5, size=200, min_sentences=6, max_sentences=8, mix={"plain": 1})
    short = generate("reviews", seed=5, size=200, min_sentences=1, max_sentences=2, mix={"plain": 1})
    mean = lambda rows: sum(len(t.split()) for t in rows["text"]) / len(rows["text"])  # noqa: E731
    assert mean(long) > 2 * mean(short)
    only_food = generate("reviews", seed=5, size=50, domains=["restaurant"])
    assert not any(w in t for t in only_food["text"] for w in ("the film", "the novel", "the game"))


def test_reviews_length_and_vocabulary():
    rows = generate("reviews", seed=0, size=2000)
    lengths = [len(t.split()) for t in rows["text"]]
    assert 15 <= sum(lengths) / len(lengths) <= 60
    assert max(lengths) >= 80
    vocab = {w for t in rows["text"] for w in _words(t)}
    assert len(vocab) >= 1500


def test_sentiment_words_occur_in_both_classes():
    # The point of the corpus: evaluative words are weak label cues, because
    # negation and contrast put them into reviews of the other class too.
    rows = generate("reviews", seed=9, size=3000, noise=0.0)
    per_class = {"positive": Counter(), "negative": Counter()}
    for text, label in zip(rows["text"], rows["label"]):
        per_class[label].update(_words(text))
    for group in (lx.POS_ADJ, lx.NEG_ADJ):
        words = {w for ws in group.values() for w in ws}
        pos = sum(per_class["positive"][w] for w in words)
        neg = sum(per_class["negative"][w] for w in words)
        assert min(pos, neg) >= 0.35 * max(pos, neg), (pos, neg)
    for marker in ("not", "but"):
        pos, neg = per_class["positive"][marker], per_class["negative"][marker]
        assert min(pos, neg) >= 0.75 * max(pos, neg), (marker, pos, neg)
