"""Data that is legal but probably wrong: the warnings said before training and by ``textclf data inspect``.

Everything here has passed :func:`textclf.data.prepare.prepare` (which refuses
what no classifier can use); what is left trains, but is likely not what the
user meant or gives a comparison that cannot say much:

* labels that differ only in case or spacing (``Pos`` / ``pos``): two classes;
* a class named like a missing-value marker (``None``, ``NA``, ``null``): kept as a class;
* a class with one training example, or none (it only reached validation / test);
* a validation or test split too small to rank variants on;
* heavy class imbalance while selecting on accuracy or training without class weights;
* a ``data.slice_columns`` column with more values than a report can show.

:func:`data_warnings` computes them all from the prepared data, one
:class:`DataWarning` each, every message naming the values and the fix. The
pipeline says them once per prepared dataset (:func:`textclf.pipeline.data_stages.warn_data`);
the vocabulary check needs the trained tokenizer and lives with it
(:func:`textclf.text.tokenize.vocabulary_warnings`).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from textclf.data.config import MAX_SLICE_VALUES
from textclf.data.prepare import SPLITS, PreparedData

# A validation or test split below this many rows cannot rank variants: one text is more than a
# point of accuracy, and a 95% interval around one accuracy spans about ±10 points or more.
MIN_EVAL_ROWS = 100
# Largest / smallest training class from this ratio on counts as heavy imbalance: a model that
# ignores the smallest class loses at most 1/6 of the accuracy (binary 83/17), so accuracy hardly
# rewards learning it. The 95/5 split that gave majority-class models is a ratio of 19.
IMBALANCE_RATIO = 5.0
# Class names that usually stand for "no label" in exported data.
MISSING_MARKERS = frozenset({"none", "null", "nan", "na", "n/a", "nil", "undefined", "missing", "?", "-"})


@dataclass(frozen=True)
class DataWarning:
    """One finding: ``code`` names its kind (stable, for tests and JSON), ``message`` says it with the fix."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def data_warnings(
    data: PreparedData,
    *,
    selection_metric: str = "accuracy",
    class_weights: str = "none",
) -> list[DataWarning]:
    """Every warning about ``data``; ``selection_metric`` / ``class_weights`` are ``train.early_stopping_metric`` / ``train.class_weights``."""
    counts = {s: np.bincount(data.labels(s), minlength=data.num_classes) for s in SPLITS}
    out: list[DataWarning] = []
    out += _label_spellings(data.label_names, counts["train"])
    out += _missing_markers(data.label_names, counts)
    out += _rare_classes(data, counts)
    out += _small_splits(data)
    out += _imbalance(data.label_names, counts["train"], selection_metric, class_weights)
    out += _slice_columns(data)
    return out


def _fold(label: str) -> str:
    """What a person would read as the same label: NFKC, case-folded, whitespace runs as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", label).casefold().replace("\u200b", "").split())


def _label_spellings(names: list[str], train: np.ndarray) -> list[DataWarning]:
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(_fold(name), []).append(i)
    out = []
    for ids in groups.values():
        if len(ids) < 2:
            continue
        spelled = " and ".join(f"{names[i]!r} ({_rows(train[i])})" for i in ids)
        out.append(
            DataWarning(
                "label_spelling",
                f"labels {spelled} differ only in case or spacing, so they are {len(ids)} different classes. "
                f"If they mean one class, write them one way in the data (e.g. all {names[max(ids, key=lambda i: train[i])]!r}).",
            )
        )
    return out


def _missing_markers(names: list[str], counts: dict[str, np.ndarray]) -> list[DataWarning]:
    out = []
    for i, name in enumerate(names):
        if _fold(name) in MISSING_MARKERS:
            rows = sum(int(c[i]) for c in counts.values())
            out.append(
                DataWarning(
                    "missing_marker_label",
                    f"class {name!r} ({rows} rows) is a label that often marks a missing value; textclf trains it as a class. "
                    f"If those rows have no label, leave their label empty and drop them with --set data.on_invalid=drop.",
                )
            )
    return out


def _rare_classes(data: PreparedData, counts: dict[str, np.ndarray]) -> list[DataWarning]:
    names, train = data.label_names, counts["train"]
    out = []
    single = [names[i] for i in np.flatnonzero(train == 1)]
    if single:
        out.append(
            DataWarning(
                "single_example_class",
                f"{_few(single)} {'has' if len(single) == 1 else 'have'} a single training example: nothing general can be "
                "learned from one text, and its validation/test scores are noise. Add examples, or merge or remove the class.",
            )
        )
    for split in ("validation", "test"):
        if split == "test" and data.report.get("test_is_validation"):
            continue
        lacking = [names[i] for i in np.flatnonzero((train == 0) & (counts[split] > 0))]
        if lacking:
            out.append(
                DataWarning(
                    "label_missing_from_train",
                    f"{_few(lacking)} {'occurs' if len(lacking) == 1 else 'occur'} in the {split} split"
                    f"{' (' + data.sources[split] + ')' if split in data.sources else ''} but not in the training split: the model can never predict "
                    f"{'it' if len(lacking) == 1 else 'them'}, so every such {split} text counts as an error. Add training "
                    "examples of it, or remove those rows (a class this rare is best merged).",
                )
            )
    return out


def _small_splits(data: PreparedData) -> list[DataWarning]:
    out = []
    total = sum(len(data.splits[s]) for s in SPLITS) - (
        len(data.splits["test"]) if data.report.get("test_is_validation") else 0
    )
    for split in ("validation", "test"):
        if split == "test" and data.report.get("test_is_validation"):
            continue
        n = len(data.splits[split])
        if n >= MIN_EVAL_ROWS:
            continue
        half = 100 * 1.96 * 0.5 / math.sqrt(max(n, 1))  # widest 95% half-width of one accuracy, in points
        source = data.sources.get(split)
        if source:  # a file of its own
            fix = f"add rows to {source} (at least {MIN_EVAL_ROWS})"
        else:
            key = "data.val_fraction" if split == "validation" else "data.test_fraction"
            need = min(0.45, math.ceil(100 * MIN_EVAL_ROWS / max(total, 1)) / 100)
            fix = (
                f"hold out more, e.g. --set {key}={need:g}"
                if total * need >= MIN_EVAL_ROWS
                else f"use more data (with {total} rows in all, no split reaches {MIN_EVAL_ROWS})"
            )
        out.append(
            DataWarning(
                "small_split",
                f"the {split} split has {n} rows: one text is {100 / max(n, 1):.1f} accuracy points and a 95% interval around "
                f"an accuracy spans up to ±{half:.0f} points, so variants closer than that cannot be ranked on it. "
                f"For a comparison, {fix}.",
            )
        )
    return out


def _imbalance(names: list[str], train: np.ndarray, metric: str, class_weights: str) -> list[DataWarning]:
    present = np.flatnonzero(train > 0)
    if len(present) < 2:
        return []
    big = present[np.argmax(train[present])]
    small = present[np.argmin(train[present])]
    ratio = train[big] / train[small]
    fixes = []
    if metric != "macro_f1":
        fixes.append(
            "--set train.early_stopping_metric=macro_f1 (epochs, and the comparison's best variant, are then chosen on macro-F1)"
        )
    if class_weights != "balanced":
        fixes.append("--set train.class_weights=balanced (errors on rare classes cost more in training)")
    if ratio < IMBALANCE_RATIO or not fixes:
        return []
    n = int(train.sum())
    return [
        DataWarning(
            "class_imbalance",
            f"the classes are heavily imbalanced: {names[small]!r} has {int(train[small])} of {n} training rows "
            f"({train[small] / n:.1%}), {ratio:.0f}x fewer than {names[big]!r} ({train[big] / n:.1%}); a model that always answers "
            f"{names[big]!r} scores {train[big] / n:.1%} accuracy. Judge such data by macro-F1: "
            + "; ".join(fixes)
            + ".",
        )
    ]


def _slice_columns(data: PreparedData) -> list[DataWarning]:
    out = []
    test = data.splits["test"]
    for col in [c for c in test.column_names if c.startswith("slice:")]:
        values = test.data.table.column(col)
        distinct = len(pc.unique(values))
        if distinct <= MAX_SLICE_VALUES:
            continue
        name = col.removeprefix("slice:")
        n = len(values)
        kind = (
            "nearly one per text: it looks like an identifier, not a group"
            if distinct > n / 2
            else "more than a report can show"
        )
        out.append(
            DataWarning(
                "slice_column_values",
                f"data.slice_columns {name!r} has {distinct} distinct values in the {n} test rows ({kind}). The report shows "
                f"the largest {MAX_SLICE_VALUES - 1} values that have at least 2 test rows and pools the rest as 'other'. "
                "Slice by a column that groups texts (a domain, a source, a length band), or drop it from data.slice_columns.",
            )
        )
    return out


def _rows(n) -> str:
    return f"{int(n)} training row{'' if int(n) == 1 else 's'}"


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"class{'es' if len(names) > 1 else ''} {shown}{more}"
