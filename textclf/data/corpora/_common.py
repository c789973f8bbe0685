"""Helpers shared by the corpus generators: seeded random streams, balanced
label lists, balanced label noise and option checks.

Determinism rules: every random draw goes through a ``random.Random`` seeded
from a string (Python hashes string seeds with SHA-512, so the stream is the
same in every process and on every platform), never the global RNG, never the
built-in ``hash()`` and never the iteration order of a set.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from textclf.core.errors import DataError


def stream(corpus: str, purpose: str, seed: int) -> random.Random:
    """An independent random stream for one purpose of one corpus.

    Separate streams keep draws from interfering: e.g. label noise has its own
    stream, so changing ``noise`` never changes the generated texts.
    """
    return random.Random(f"textclf/{corpus}/{purpose}/{seed}")


def balanced_labels(classes: Sequence[str], size: int, rng: random.Random) -> list[str]:
    """``size`` labels, class counts differing by at most one, in shuffled order."""
    labels = [classes[i % len(classes)] for i in range(size)]
    rng.shuffle(labels)
    return labels


def flip_labels(labels: Sequence[str], classes: Sequence[str], noise: float, rng: random.Random) -> list[str]:
    """Replace a ``noise`` fraction of labels by another class, keeping balance.

    The same number of rows is taken from every class, and class ``c`` sends
    its flipped rows round-robin to the classes after it; every class then
    receives exactly as many rows as it gives away, so class counts do not
    change.
    """
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    rows_by_class: list[list[int]] = [[] for _ in classes]
    for row, label in enumerate(labels):
        rows_by_class[index[label]].append(row)
    per_class = min(len(r) for r in rows_by_class)
    flips = min(per_class, round(noise * len(labels) / k))
    noisy = list(labels)
    for c, rows in enumerate(rows_by_class):
        for j, row in enumerate(rng.sample(rows, flips)):
            noisy[row] = classes[(c + 1 + j % (k - 1)) % k]
    return noisy


def bad_value(option: str, value: object, allowed: str) -> DataError:
    return DataError(f"option {option}={value!r} is out of range; allowed: {allowed}")


def check_int(option: str, value: object, low: int, high: int) -> int:
    """``value`` as an int within [low, high], else a DataError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_value(option, value, f"an integer from {low} to {high}")
    return value


def check_float(option: str, value: object, low: float, high: float) -> float:
    """``value`` as a float within [low, high], else a DataError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise bad_value(option, value, f"a number from {low} to {high}")
    return float(value)


def check_choice(option: str, value: object, allowed: Sequence[object]) -> object:
    if value not in allowed:
        raise bad_value(option, value, "one of " + ", ".join(map(repr, allowed)))
    return value
