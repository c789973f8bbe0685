"""The compare stage: aggregate every variant × seed run and test the differences.

The pipeline trains each variant under several seeds and scores all of them on
the same test set. :func:`compare` turns those runs into one JSON-serialisable
summary — per-variant means and seed standard deviations, plus the difference
from a baseline variant with a bootstrap confidence interval and p-value —
:func:`render_table` shows it in the terminal, and :func:`write_report` writes
a markdown report, ``summary.json`` and comparison plots.

Accuracy and macro-F1 are recomputed here from each run's stored test
probabilities (argmax, exactly as :mod:`textclf.core.metrics` does) so that the
point estimates and the bootstrap are computed from the very same predictions.
All accuracy-like quantities in the summary are fractions in [0, 1]; the table
and the report show them as percentage points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RunRecord", "compare"]

# Run metrics summarised as {"mean", "sd"} over seeds, taken from RunRecord.metrics.
COST_METRICS = (
    "val_accuracy",
    "train_seconds",
    "tokens_per_second",
    "latency_p50_ms",
    "latency_p95_ms",
    "texts_per_s_b256",
    "generalization_gap",
)

# Bound on weight-matrix elements (iterations × examples) held at once.
_CHUNK_ELEMENTS = 4_000_000
# Up to this many classes, per-class counts come from one dense product over a one-hot
# design matrix; past it a weighted bincount is faster (crossover measured at ~40-60).
_DENSE_MAX_CLASSES = 32
_ALPHA = 0.05


@dataclass(kw_only=True)
class RunRecord:
    """One trained run (variant × seed) and its predictions on the test set.

    ``pred`` (N,) predicted classes, or ``proba`` (N, C) whose argmax they
    are: the comparison needs only the predicted classes, so runs with too
    many classes for the full matrix pass ``pred``.
    """

    variant: str
    seed: int
    kind: str
    y_true: np.ndarray
    proba: np.ndarray | None = None
    pred: np.ndarray | None = None
    cell: str | None = None
    layers: int | None = None
    bidirectional: bool | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    cached: bool = False


# --------------------------------------------------------------------------- #
# Validation and grouping
# --------------------------------------------------------------------------- #


def _test_set(records: Sequence[RunRecord], n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Check every record was scored on the same test set; return (y, preds (R, N), C)."""
    y = np.asarray(records[0].y_true)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array, got shape {y.shape}")
    y = y.astype(np.int64)
    preds = np.empty((len(records), y.size), dtype=np.int64)
    for i, rec in enumerate(records):
        other = np.asarray(rec.y_true)
        # Paired resampling only makes sense if example i is the same example in every run.
        if other.shape != y.shape or not np.array_equal(other.astype(np.int64), y):
            raise ValueError(
                f"record {rec.variant}/seed {rec.seed} was scored on a different test set "
                "(y_true differs); every record must use the same examples in the same order"
            )
        if rec.pred is not None:
            pred = np.asarray(rec.pred)
            if pred.shape != y.shape or not np.issubdtype(pred.dtype, np.integer):
                raise ValueError(f"record {rec.variant}/seed {rec.seed}: pred has shape {pred.shape} ({pred.dtype}), expected ({y.size},) integers")
            if n_classes is None:
                raise ValueError(f"record {rec.variant}/seed {rec.seed}: pass label_names (or proba) so the number of classes is known")
            preds[i] = pred
            continue
        if rec.proba is None:
            raise ValueError(f"record {rec.variant}/seed {rec.seed}: has neither pred nor proba")
        proba = np.asarray(rec.proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != y.size:
            raise ValueError(f"record {rec.variant}/seed {rec.seed}: proba has shape {proba.shape}, expected ({y.size}, C)")
        if n_classes is None:
            n_classes = proba.shape[1]
        if proba.shape[1] != n_classes:
            raise ValueError(f"record {rec.variant}/seed {rec.seed}: proba has {proba.shape[1]} columns, expected {n_classes}")
        preds[i] = proba.argmax(axis=1)
    if y.min() < 0 or y.max() >= n_classes or preds.min() < 0 or preds.max() >= n_classes:
        raise ValueError(f"y_true or a prediction holds labels outside 0..{n_classes - 1}")
    return y, preds, int(n_classes)


@dataclass
class _Group:
    name: str
    records: list[RunRecord]
    rows: np.ndarray  # indices of this variant's records in the stacked arrays


def _group(records: Sequence[RunRecord]) -> tuple[list[RunRecord], list[_Group]]:
    """Group records by variant (first-appearance order), seeds sorted; reject duplicates."""
    by_name: dict[str, list[RunRecord]] = {}
    for rec in records:
        by_name.setdefault(rec.variant, []).append(rec)
    ordered: list[RunRecord] = []
    groups: list[_Group] = []
    for name, recs in by_name.items():
        recs = sorted(recs, key=lambda r: r.seed)
        seeds = [r.seed for r in recs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"variant {name!r} has duplicate seeds: {seeds}")
        start = len(ordered)
        ordered.extend(recs)
        groups.append(_Group(name, recs, np.arange(start, start + len(recs))))
    return ordered, groups


# --------------------------------------------------------------------------- #
# Scores under resampling weights
# --------------------------------------------------------------------------- #


def _resample_weights(rng: np.random.Generator, n_iter: int, n: int) -> np.ndarray:
    """(n_iter, n) multiplicity of each example in each bootstrap resample.

    Drawing indices with replacement and counting them turns "score on the
    resampled examples" into a weighted sum, which a matrix product computes
    for every run and iteration at once.
    """
    idx = rng.integers(0, n, size=(n_iter, n))
    idx += np.arange(n_iter, dtype=idx.dtype)[:, None] * n
    return np.bincount(idx.ravel(), minlength=n_iter * n).reshape(n_iter, n).astype(np.float64)


def _scores(weights: np.ndarray, y: np.ndarray, preds: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of every run under every weight row: two (B, R) arrays.

    Macro-F1 is the unweighted mean over all ``n_classes`` classes of
    2·TP / (support + predicted count), with 0 for a class that is neither
    present nor predicted — the same definition as sklearn's
    ``f1_score(labels=range(C), average="macro", zero_division=0)`` used by
    :mod:`textclf.core.metrics`.
    """
    n_iter, n = weights.shape
    n_runs = preds.shape[0]
    totals = weights.sum(axis=1, keepdims=True)
    correct = preds == y[None, :]  # (R, N)
    accuracy = (weights @ correct.T.astype(np.float64)) / totals

    # A class neither true nor predicted anywhere scores F1 = 0 under every weight row:
    # count only the classes that occur (at most N × (R + 1) of them, however many
    # classes there are) and divide their F1 sum by all n_classes.
    active, inverse = np.unique(np.concatenate([y, preds.ravel()]), return_inverse=True)
    y, preds, c = inverse[:n], inverse[n:].reshape(n_runs, n), len(active)
    macro_f1 = np.empty((n_iter, n_runs))
    if c > _DENSE_MAX_CLASSES or n * 2 * c > _CHUNK_ELEMENTS:  # a weighted bincount per run, (B, C) at a time
        offsets = (np.arange(n_iter) * c)[:, None]

        def counts(classes: np.ndarray, values: np.ndarray) -> np.ndarray:
            flat = (weights * values[None, :]).ravel()
            return np.bincount((offsets + classes[None, :]).ravel(), weights=flat, minlength=n_iter * c).reshape(n_iter, c)

        support = counts(y, np.ones(n))
        for r in range(n_runs):
            tp, predicted = counts(y, correct[r].astype(np.float64)), counts(preds[r], np.ones(n))
            denom = support + predicted
            macro_f1[:, r] = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0).sum(axis=1) / n_classes
        return accuracy, macro_f1

    true_onehot = np.zeros((n, c))
    true_onehot[np.arange(n), y] = 1.0
    support = weights @ true_onehot  # (B, C), shared by every run

    # Per run, C columns of "correct and true class c" and C of "predicted c";
    # runs are processed in blocks so the design matrix stays small.
    block = max(1, _CHUNK_ELEMENTS // (n * 2 * c))
    for start in range(0, n_runs, block):
        stop = min(start + block, n_runs)
        k = stop - start
        design = np.zeros((n, k, 2, c))
        run = np.arange(k)[:, None]
        example = np.arange(n)[None, :]
        design[example, run, 0, y[None, :]] = correct[start:stop]
        design[example, run, 1, preds[start:stop]] = 1.0
        counts = (weights @ design.reshape(n, -1)).reshape(n_iter, k, 2, c)
        tp, predicted = counts[:, :, 0, :], counts[:, :, 1, :]
        denom = support[:, None, :] + predicted
        f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        macro_f1[:, start:stop] = f1.sum(axis=2) / n_classes
    return accuracy, macro_f1


def _bootstrap_deltas(
    groups: Sequence[_Group],
    baseline: _Group,
    y: np.ndarray,
    preds: np.ndarray,
    n_classes: int,
    n_boot: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Hierarchical paired bootstrap of (variant − baseline) for every variant.

    Each iteration draws one set of example indices shared by all variants
    (paired over examples) and, per variant, a resample of its seeds; the
    statistic is the seed-mean metric on the resampled examples.
    """
    rng = np.random.default_rng(seed)
    n = y.size
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // n))
    means: dict[str, dict[str, list[np.ndarray]]] = {g.name: {"accuracy": [], "macro_f1": []} for g in groups}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        weights = _resample_weights(rng, b, n)
        accuracy, macro_f1 = _scores(weights, y, preds, n_classes)
        iteration = np.arange(b)[:, None]
        for g in groups:
            s = len(g.rows)
            cols = g.rows[rng.integers(0, s, size=(b, s))]  # (b, s) resampled seeds
            means[g.name]["accuracy"].append(accuracy[iteration, cols].mean(axis=1))
            means[g.name]["macro_f1"].append(macro_f1[iteration, cols].mean(axis=1))
        done += b
    joined = {name: {m: np.concatenate(v) for m, v in d.items()} for name, d in means.items()}
    base = joined[baseline.name]
    return {
        g.name: {m: joined[g.name][m] - base[m] for m in ("accuracy", "macro_f1")}
        for g in groups
        if g.name != baseline.name
    }


def _delta_stats(observed: float, deltas: np.ndarray | None) -> dict[str, float | None]:
    if deltas is None or deltas.size == 0:
        return {"mean": _num(observed), "ci_low": None, "ci_high": None, "p_value": None}
    n_boot = deltas.size
    low, high = np.percentile(deltas, [100 * _ALPHA / 2, 100 * (1 - _ALPHA / 2)])
    # Two-sided: how often the bootstrap lands on either side of "no difference";
    # the +1 keeps a finite number of iterations from ever claiming p = 0.
    p_le = (np.count_nonzero(deltas <= 0) + 1) / (n_boot + 1)
    p_ge = (np.count_nonzero(deltas >= 0) + 1) / (n_boot + 1)
    return {
        "mean": _num(observed),
        "ci_low": _num(low),
        "ci_high": _num(high),
        "p_value": float(min(1.0, 2.0 * min(p_le, p_ge))),
    }


# --------------------------------------------------------------------------- #
# Summary
# --------------------------------------------------------------------------- #


def _num(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _mean_sd(values: Sequence[Any]) -> dict[str, float | None]:
    """Mean and seed standard deviation (ddof=1; 0.0 with one value) of the finite values."""
    finite = [v for v in (_num(x) for x in values) if v is not None]
    if not finite:
        return {"mean": None, "sd": None}
    arr = np.asarray(finite)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "sd": sd}


def _significance_text(n_boot: int, seed: int, baseline: str | None) -> str:
    text = (
        f"Differences from the baseline are tested with a hierarchical paired bootstrap ({n_boot} iterations, seed {seed}): "
        "each iteration resamples the test examples with replacement, using the same examples for every variant "
        "(paired), and independently resamples each variant's training seeds with replacement; the difference is "
        "between the seed-averaged accuracies (and macro-F1 scores) on those examples. "
        "Resampling both levels makes the 95% percentile intervals and two-sided p-values reflect test-set sampling "
        "noise and run-to-run variation from the random seed together (a variant with a single seed contributes "
        "test-set noise only). "
        "p-values are not corrected for the number of variants compared."
    )
    if baseline is None:
        text += " No baseline was given, so no differences were tested."
    return text


def compare(
    records: Sequence[RunRecord],
    baseline: str | None,
    *,
    label_names: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Summarise every variant over its seeds and test it against ``baseline``.

    Returns the JSON-serialisable summary described in the module docstring:
    per-variant metadata, ``{"mean", "sd"}`` over seeds of test accuracy,
    macro-F1 and the run-cost metrics in :data:`COST_METRICS` (missing values
    are ignored; all missing gives ``None``), mean parameter count, and
    ``delta_accuracy`` / ``delta_macro_f1`` versus the baseline (observed
    difference of seed means, bootstrap 95% CI and p-value; ``None`` for the
    baseline itself or when ``baseline`` is ``None``). Deterministic given
    ``seed``. ``n_boot=0`` skips the bootstrap (CI and p-value are ``None``).
    """
    if not records:
        raise ValueError("compare() needs at least one record")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    label_names = [str(x) for x in label_names]
    ordered, groups = _group(records)
    names = [g.name for g in groups]
    if baseline is not None and baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the variants: {', '.join(names)}")
    y, preds, n_classes = _test_set(ordered, len(label_names) or None)

    # Observed scores are the bootstrap statistic under unit weights.
    observed_acc, observed_f1 = (a[0] for a in _scores(np.ones((1, y.size)), y, preds, n_classes))

    base_group = next((g for g in groups if g.name == baseline), None)
    deltas = (
        _bootstrap_deltas(groups, base_group, y, preds, n_classes, n_boot, seed)
        if base_group is not None and n_boot > 0
        else {}
    )

    variants: dict[str, Any] = {}
    for g in groups:
        first = g.records[0]
        entry: dict[str, Any] = {
            "kind": first.kind,
            "cell": first.cell,
            "layers": None if first.layers is None else int(first.layers),
            "bidirectional": None if first.bidirectional is None else bool(first.bidirectional),
            "seeds": [int(r.seed) for r in g.records],
            "n_seeds": len(g.records),
            "test_accuracy": _mean_sd(observed_acc[g.rows]),
            "test_macro_f1": _mean_sd(observed_f1[g.rows]),
        }
        params = _mean_sd([r.metrics.get("params") for r in g.records])["mean"]
        entry["params"] = None if params is None else int(round(params))
        for key in COST_METRICS:
            entry[key] = _mean_sd([r.metrics.get(key) for r in g.records])
        if base_group is None or g is base_group:
            entry["delta_accuracy"] = entry["delta_macro_f1"] = None
        else:
            for metric, observed in (("accuracy", observed_acc), ("macro_f1", observed_f1)):
                point = observed[g.rows].mean() - observed[base_group.rows].mean()
                entry[f"delta_{metric}"] = _delta_stats(point, deltas.get(g.name, {}).get(metric))
        entry["run_ids"] = [r.run_id for r in g.records]
        entry["cached"] = all(bool(r.cached) for r in g.records)
        variants[g.name] = entry

    best = max(names, key=lambda name: variants[name]["test_accuracy"]["mean"])
    return {
        "baseline": baseline,
        "n_test": int(y.size),
        "n_classes": n_classes,
        "label_names": label_names,
        "n_boot": int(n_boot),
        "bootstrap_seed": int(seed),
        "significance": _significance_text(n_boot, seed, baseline),
        "variants": variants,
        "best_variant": best,
    }
