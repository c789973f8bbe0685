"""Tests for the diagnostic corpora long-range, ends, context and listops:
each label function against an independent implementation, by brute force on
small cases, and each generator against its label function and against the
property that lets it show its claim. The API shared with the other corpora
(determinism, balance, option errors, speed) and the ``order`` control are
tested in test_corpora.py.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from textclf.data.corpora import (
    context_label,
    ends_label,
    evaluate_listops,
    generate,
    listops_depth,
    long_range_label,
)
from textclf.data.corpora.diagnostics import (
    FILLER,
    FIRST_TOKENS,
    FLIP_MARKER,
    LAST_TOKENS,
    NEGATIVE_CUES,
    POSITIVE_CUES,
    SIGNALS,
)

INFORMATIVE = (*SIGNALS, *FIRST_TOKENS, *LAST_TOKENS, *POSITIVE_CUES, *NEGATIVE_CUES, FLIP_MARKER)


def _cues(tokens):
    return [i for i, t in enumerate(tokens) if t in POSITIVE_CUES or t in NEGATIVE_CUES]


# --------------------------------------------------------------------------
# Shared properties
# --------------------------------------------------------------------------
def test_vocabularies_are_disjoint_pseudo_words():
    assert len(set(FILLER)) == len(FILLER) == 100 and len(set(INFORMATIVE)) == len(INFORMATIVE)
    assert not set(FILLER) & set(INFORMATIVE)
    assert all("e" not in w for w in FILLER) and all("e" in w for w in INFORMATIVE)
    assert all(w.isalpha() and w.islower() for w in FILLER + INFORMATIVE)


def test_smallest_allowed_options_work():
    rows = generate("context", seed=0, size=20, length=35, cues=5, window=3)
    assert all(len(t.split()) == 35 for t in rows["text"])
    # The shortest depth-6 expression has 19 tokens; a tight budget still
    # gives every depth, within budget, with the right values.
    rows = generate("listops", seed=0, size=120, max_depth=6, max_length=19)
    assert Counter(rows["depth"]) == {d: 20 for d in range(1, 7)}
    for text, label, depth in zip(rows["text"], rows["label"], rows["depth"]):
        assert len(text.split()) <= 19
        assert listops_depth(text) == depth and str(evaluate_listops(text)) == label


# --------------------------------------------------------------------------
# long-range
# --------------------------------------------------------------------------
@pytest.mark.parametrize("distance,classes", [(1, 10), (25, 2), (400, 10)])
def test_long_range_rows(distance, classes):
    rows = generate("long-range", seed=0, size=200, distance=distance, classes=classes)
    for text, label in zip(rows["text"], rows["label"]):
        tokens = text.split()
        assert len(tokens) == distance + 1
        assert tokens[0] == label
        assert all(t in FILLER for t in tokens[1:])
        assert long_range_label(text) == label
    assert set(rows["label"]) == set(SIGNALS[:classes])


def test_long_range_label_brute_force():
    # Every signal at every position of every short filler text.
    for signal in SIGNALS:
        for length in range(1, 5):
            for position in range(length):
                tokens = [FILLER[(7 * j) % 100] for j in range(length)]
                tokens[position] = signal
                assert long_range_label(tokens) == signal
                assert long_range_label(" ".join(tokens)) == signal
    for bad in ("bako dipu", f"{SIGNALS[0]} bako {SIGNALS[1]}"):
        with pytest.raises(ValueError):
            long_range_label(bad)


# --------------------------------------------------------------------------
# ends
# --------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["pair", "sum"])
def test_ends_label_brute_force(rule):
    for k in range(2, 11):
        table = {}
        for a, b in itertools.product(range(k), repeat=2):
            text = f"{FIRST_TOKENS[a]} bako dipu {LAST_TOKENS[b]}"
            table[a, b] = ends_label(text, classes=k, rule=rule)
        if rule == "pair":
            assert table == {(a, b): f"{a}-{b}" for a, b in table}
            continue
        # A Latin square: every row and every column holds every class once,
        # so either end alone says nothing; row a is row 0 shifted by a.
        classes = {str(c) for c in range(k)}
        for i in range(k):
            assert {table[i, j] for j in range(k)} == classes
            assert {table[j, i] for j in range(k)} == classes
            assert [table[i, j] for j in range(k)] == [table[0, (j + i) % k] for j in range(k)]
        assert [table[0, j] for j in range(k)] == [str(j) for j in range(k)]


def test_ends_label_rejects_malformed():
    for bad in ("bako dipu", f"{LAST_TOKENS[0]} bako {FIRST_TOKENS[0]}", f"{FIRST_TOKENS[5]} {LAST_TOKENS[0]}"):
        with pytest.raises(ValueError):
            ends_label(bad, classes=4)


@pytest.mark.parametrize("rule", ["pair", "sum"])
def test_ends_rows(rule):
    rows = generate("ends", seed=3, size=300, length=50, classes=5, rule=rule)
    for text, label in zip(rows["text"], rows["label"]):
        tokens = text.split()
        assert len(tokens) == 52
        assert tokens[0] in FIRST_TOKENS[:5] and tokens[-1] in LAST_TOKENS[:5]
        assert all(t in FILLER for t in tokens[1:-1])
        assert ends_label(text, classes=5, rule=rule) == label


def _by_end(rows):
    """Label counts given the first token and given the last token."""
    first, last = defaultdict(Counter), defaultdict(Counter)
    for text, label in zip(rows["text"], rows["label"]):
        tokens = text.split()
        first[tokens[0]][label] += 1
        last[tokens[-1]][label] += 1
    return first, last


@pytest.mark.parametrize("k,size", [(2, 1000), (4, 1601), (7, 2000)])
def test_ends_sum_each_end_alone_is_uninformative(k, size):
    rows = generate("ends", seed=4, size=size, classes=k, rule="sum")
    overall = Counter(rows["label"])
    for table in _by_end(rows):
        assert len(table) == k
        for counts in table.values():
            # Exact: the label counts given one end differ by at most one, so
            # no rule on that end alone beats chance by more than rounding.
            assert set(counts) == set(overall)
            assert max(counts.values()) - min(counts.values()) <= 1
        # A chi-square independence statistic near zero (5% critical value
        # for (k-1)^2 degrees of freedom is far above).
        chi2 = sum(
            (table[e][c] - sum(table[e].values()) * overall[c] / size) ** 2
            / (sum(table[e].values()) * overall[c] / size)
            for e in table
            for c in overall
        )
        assert chi2 < 1.0


def test_ends_pair_each_end_alone_caps_accuracy():
    k, size = 4, 1600
    rows = generate("ends", seed=4, size=size, classes=k)
    for table in _by_end(rows):
        # Given one end, the k labels that share it are equally likely: the
        # best guess from one end alone is right 1 / k of the time.
        best = sum(max(counts.values()) for counts in table.values())
        assert best == size // k
        for counts in table.values():
            assert len(counts) == k and len(set(counts.values())) == 1


# --------------------------------------------------------------------------
# context
# --------------------------------------------------------------------------
def _context_reference(tokens, window, before=True, after=True):
    """Majority of cue votes; a vote flips iff an odd number of markers are
    at distance 1..window (on the sides asked for)."""
    votes = []
    for i, t in enumerate(tokens):
        if t in POSITIVE_CUES or t in NEGATIVE_CUES:
            near = sum(
                1
                for j, u in enumerate(tokens)
                if u == FLIP_MARKER and ((before and 0 < i - j <= window) or (after and 0 < j - i <= window))
            )
            votes.append((t in POSITIVE_CUES) ^ (near % 2 == 1))
    return "positive" if 2 * sum(votes) > len(votes) else "negative"


def test_context_label_brute_force():
    alphabet = ("bako", POSITIVE_CUES[0], NEGATIVE_CUES[1], FLIP_MARKER)
    checked = 0
    for length in range(1, 8):
        for tokens in itertools.product(alphabet, repeat=length):
            if len(_cues(tokens)) % 2 == 0:
                continue
            for window in (1, 2, 3):
                assert context_label(tokens, window=window) == _context_reference(tokens, window)
                checked += 1
    assert checked > 20_000


@pytest.mark.parametrize(
    "text,window,label",
    [
        (f"bako {POSITIVE_CUES[0]} dipu", 3, "positive"),
        (f"{FLIP_MARKER} bako {POSITIVE_CUES[0]} dipu", 3, "negative"),  # marker before the cue
        (f"bako {POSITIVE_CUES[0]} dipu {FLIP_MARKER}", 3, "negative"),  # marker after the cue
        (f"bako {POSITIVE_CUES[0]} dipu {FLIP_MARKER}", 1, "positive"),  # outside the window
        (f"{FLIP_MARKER} {NEGATIVE_CUES[0]} {FLIP_MARKER}", 1, "negative"),  # two markers cancel
    ],
)
def test_context_label_examples(text, window, label):
    assert context_label(text, window=window) == label


def test_context_label_needs_an_odd_number_of_cues():
    for bad in ("bako dipu", f"{POSITIVE_CUES[0]} {NEGATIVE_CUES[0]}"):
        with pytest.raises(ValueError):
            context_label(bad)


@pytest.mark.parametrize("length,cues,window", [(60, 5, 3), (35, 5, 3), (80, 9, 2), (7, 1, 3), (40, 3, 1)])
def test_context_rows(length, cues, window):
    rows = generate("context", seed=5, size=400, length=length, cues=cues, window=window)
    sides = Counter()
    for text, label in zip(rows["text"], rows["label"]):
        tokens = text.split()
        assert len(tokens) == length
        positions = _cues(tokens)
        assert len(positions) == cues
        assert all(b - a > 2 * window for a, b in itertools.pairwise(positions))  # windows apart
        assert context_label(tokens, window=window) == label
        assert _context_reference(tokens, window) == label
        for i in positions:
            assert window <= i < length - window  # a full window on both sides
            before = tokens[i - window : i].count(FLIP_MARKER)
            after = tokens[i + 1 : i + 1 + window].count(FLIP_MARKER)
            assert before + after <= 1
            sides.update(before=before, after=after, none=int(before + after == 0))
        assert all(t in FILLER for j, t in enumerate(tokens) if j not in positions and t != FLIP_MARKER)
    total = 400 * cues
    # About a quarter of the cues are flipped from each side, half not at all.
    for side, share in (("before", 0.25), ("after", 0.25), ("none", 0.5)):
        assert abs(sides[side] / total - share) < 0.06, (side, sides)


def test_context_needs_both_sides():
    rows = generate("context", seed=6, size=3000)
    n = len(rows["label"])

    def accuracy(predict):
        return sum(predict(t.split()) == label for t, label in zip(rows["text"], rows["label"])) / n

    assert accuracy(lambda t: _context_reference(t, 3)) == 1.0
    # Looking at one side only gets about a quarter of the votes wrong...
    assert 0.6 < accuracy(lambda t: _context_reference(t, 3, after=False)) < 0.8
    assert 0.6 < accuracy(lambda t: _context_reference(t, 3, before=False)) < 0.8
    # ... and the cue words alone, or the number of markers, say nothing.
    assert abs(accuracy(lambda t: _context_reference(t, 0)) - 0.5) < 0.04
    by_markers = defaultdict(Counter)
    for text, label in zip(rows["text"], rows["label"]):
        by_markers[text.split().count(FLIP_MARKER)][label] += 1
    assert abs(sum(max(c.values()) for c in by_markers.values()) / n - 0.5) < 0.04
    # Decoy markers far from every cue are common.
    decoys = sum(
        any(all(abs(j - i) > 3 for i in _cues(t.split())) for j, u in enumerate(t.split()) if u == FLIP_MARKER)
        for t in rows["text"]
    )
    assert decoys > n // 2


# --------------------------------------------------------------------------
# listops
# --------------------------------------------------------------------------
def _reference_eval(tokens, i=0):
    """(value, depth, next index) by recursive descent over the tokens."""
    op = tokens[i][1:]
    values, depth, i = [], 0, i + 1
    while tokens[i] != "]":
        if tokens[i].startswith("["):
            value, sub, i = _reference_eval(tokens, i)
            values.append(value)
            depth = max(depth, sub)
        else:
            values.append(int(tokens[i]))
            i += 1
    return (max(values) if op == "MAX" else min(values)), depth + 1, i + 1


def _expressions(depth, digits, arities):
    """Every expression of depth <= ``depth`` (token lists): ``arities``
    arguments at the top, two in nested expressions."""
    if depth == 0:
        return []
    inner = _expressions(depth - 1, digits, (2,))
    args = [[d] for d in digits] + inner
    return [
        ["[" + op, *itertools.chain.from_iterable(chosen), "]"]
        for op in ("MAX", "MIN")
        for n in arities
        for chosen in itertools.product(args, repeat=n)
    ]


def test_listops_brute_force_up_to_depth_2():
    expressions = _expressions(2, ("0", "1", "2"), (2, 3))
    assert len(expressions) > 19_000
    for tokens in expressions:
        value, depth, end = _reference_eval(tokens)
        assert end == len(tokens)
        assert evaluate_listops(tokens) == value
        assert listops_depth(" ".join(tokens)) == depth
    assert {listops_depth(t) for t in expressions} == {1, 2}


@pytest.mark.parametrize(
    "expr,value,depth",
    [
        ("[MAX 2 [MIN 4 7 ] 0 ]", 4, 2),
        ("[MIN [MAX 1 8 ] [MAX 9 9 ] 9 ]", 8, 2),
        ("[MAX 3 ]", 3, 1),
        ("[MIN 5 [MAX 1 [MIN 7 9 ] ] 6 ]", 5, 3),
    ],
)
def test_evaluate_listops_examples(expr, value, depth):
    assert evaluate_listops(expr) == value
    assert listops_depth(expr) == depth


@pytest.mark.parametrize(
    "bad,message",
    [
        ("[MED 1 9 3 ]", "unknown operator 'MED'"),
        ("[SM 5 6 ]", "unknown operator 'SM'"),
        ("[MAX 2 [FOO 1 ] ]", "unknown operator 'FOO'"),
        ("[MAX 2 3", "incomplete"),
        ("[MAX 2 3 ] ]", "trailing"),
        ("[MAX 12 3 ]", "unexpected"),
        ("[MAX ]", "argument"),
        ("5", "unexpected"),
    ],
)
def test_evaluate_listops_rejects_malformed(bad, message):
    with pytest.raises(ValueError, match=message):
        evaluate_listops(bad)


def _top_level_guess(tokens):
    """The top operator applied to its direct digit arguments only."""
    level, digits = 0, []
    for t in tokens:
        level += t.startswith("[")
        level -= t == "]"
        if level == 1 and t.isdigit():
            digits.append(int(t))
    if not digits:
        return None
    return max(digits) if tokens[0] == "[MAX" else min(digits)


def _flat_guess(tokens):
    """The top operator applied to every digit, brackets ignored."""
    digits = [int(t) for t in tokens if t.isdigit()]
    return max(digits) if tokens[0] == "[MAX" else min(digits)


def test_listops_rows_depths_and_labels():
    rows = generate("listops", seed=4, size=1203, max_depth=4, max_args=3, max_length=60)
    assert set(rows) == {"text", "label", "depth"}
    per_depth = defaultdict(Counter)
    for text, label, depth in zip(rows["text"], rows["label"], rows["depth"]):
        tokens = text.split()
        assert len(tokens) <= 60
        value, reference_depth, _ = _reference_eval(tokens)
        assert str(evaluate_listops(text)) == label == str(value)
        assert type(depth) is int and depth == listops_depth(text) == reference_depth
        per_depth[depth][label] += 1
        # Every operator has 2..max_args arguments, and nested operators
        # differ from their parent.
        stack = []
        for t in tokens:
            if t.startswith("["):
                assert not stack or stack[-1][0] != t
                if stack:
                    stack[-1][1] += 1
                stack.append([t, 0])
            elif t == "]":
                assert 2 <= stack.pop()[1] <= 3
            else:
                stack[-1][1] += 1
    sizes = [sum(c.values()) for c in per_depth.values()]
    assert sorted(per_depth) == [1, 2, 3, 4] and max(sizes) - min(sizes) <= 1
    for counts in per_depth.values():
        assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1


def test_listops_depth_matters():
    rows = generate("listops", seed=2, size=6000)
    hits = defaultdict(lambda: [0, 0, 0])
    for text, label, depth in zip(rows["text"], rows["label"], rows["depth"]):
        tokens = text.split()
        hits[depth][0] += 1
        hits[depth][1] += str(_top_level_guess(tokens)) == label
        hits[depth][2] += str(_flat_guess(tokens)) == label
    assert sorted(hits) == [1, 2, 3, 4, 5, 6]
    assert hits[1][1] == hits[1][2] == hits[1][0]  # flat expressions: both guesses are the rule
    for depth in range(2, 7):
        n, top, flat = hits[depth]
        assert top / n < 0.6, (depth, top / n)  # about 0.48 measured
        assert flat / n < 0.3, (depth, flat / n)  # about 0.11-0.17 measured


def test_listops_max_depth_one_is_flat():
    rows = generate("listops", seed=0, size=50, max_depth=1)
    assert set(rows["depth"]) == {1}
    assert all(t.count("[") == 1 for t in rows["text"])
