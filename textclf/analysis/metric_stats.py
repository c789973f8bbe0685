"""Paired comparison for a metric that is not a mean over examples (macro-F1).

For a metric that is not a mean over examples (macro-F1),
:func:`paired_comparison_metric` uses the same decomposition with bootstrap
moments: the example-level variance is the variance of the seed-averaged
difference under a paired bootstrap over examples (the same resampled
examples for every seed of both variants), and each seed's own within-test-set
noise, the analogue of ``MS_res / n``, is the bootstrap variance of that
seed's score around the seed mean. For accuracy the two routes agree.

Scores are computed from confusion matrices, so every seed and every
bootstrap draw is scored in one vectorised pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from textclf.analysis.stats import (
    _check_alpha,
    _check_same_examples,
    _result,
    _satterthwaite,
    _t_inference,
)

__all__ = ["accuracy_from_counts", "confusion_counts", "macro_f1", "macro_f1_from_counts", "paired_comparison_metric"]


METHOD_METRIC = "paired t, seed variance + paired example bootstrap, Satterthwaite df"


# Bootstrap draws are made in blocks of about this many example indices
# (draws x examples), so memory stays bounded whatever n_boot and n are.
_BLOCK_ELEMENTS = 4_000_000


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def _check_labels(name: str, arr: np.ndarray, n_classes: int) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer class ids, got dtype {arr.dtype}; pass proba.argmax(-1) for predictions"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} holds class ids outside [0, {n_classes}) (min {arr.min()}, max {arr.max()}); "
            "check n_classes or the label encoding"
        )
    return arr.astype(np.int64, copy=False)


def confusion_counts(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Confusion matrices over the last axis, vectorised over leading axes: shape (..., C, C), rows = true class.

    ``y_true`` and ``y_pred`` broadcast against each other (e.g. labels (n,)
    against predictions (seeds, n)); one ``np.bincount`` counts every row.
    """
    c = _check_n_classes(n_classes)
    yt, yp = np.broadcast_arrays(np.asarray(y_true), np.asarray(y_pred))
    if yt.ndim < 1:
        raise ValueError(f"y_true and y_pred need a last axis of examples, got shape {yt.shape}")
    yt = _check_labels("y_true", yt, c)
    yp = _check_labels("y_pred", yp, c)
    lead, n = yt.shape[:-1], yt.shape[-1]
    rows = math.prod(lead)
    code = (np.arange(rows, dtype=np.int64)[:, None] * c + yt.reshape(rows, n)) * c + yp.reshape(rows, n)
    return np.bincount(code.ravel(), minlength=rows * c * c).reshape(*lead, c, c)


def accuracy_from_counts(confusion: Any) -> np.ndarray:
    """Accuracy of (possibly resampling-weighted) confusion matrices (..., C, C): trace / total."""
    conf = np.asarray(confusion, dtype=np.float64)
    total = conf.sum(axis=(-2, -1))
    correct = np.trace(conf, axis1=-2, axis2=-1)
    return np.divide(correct, total, out=np.zeros_like(total), where=total > 0)


def macro_f1_from_counts(confusion: Any) -> np.ndarray:
    """Macro-F1 of (possibly resampling-weighted) confusion matrices (..., C, C), rows = true class.

    The unweighted mean over all C classes of 2·TP / (support + predicted),
    with 0 for a class that is neither present nor predicted: sklearn's
    ``f1_score(labels=range(C), average="macro", zero_division=0)``, as
    :mod:`textclf.evaluate` reports it.
    """
    conf = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    denom = conf.sum(axis=-1) + conf.sum(axis=-2)
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
    return f1.mean(axis=-1)


def macro_f1(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray | float:
    """Macro-F1 over the last axis, vectorised over leading axes (a float for 1-D input); see :func:`macro_f1_from_counts`."""
    out = macro_f1_from_counts(confusion_counts(y_true, y_pred, n_classes))
    return out if out.ndim else float(out)


def _check_predictions(name: str, value: Any, n_classes: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        hint = "; for a single seed pass arr[None, :]" if arr.ndim == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array (seeds x test examples) of class ids, got shape {arr.shape}{hint}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ValueError(f"{name} needs at least 1 seed and 2 test examples, got shape {arr.shape}")
    return _check_labels(name, arr, n_classes)


def _bootstrap_counts(rng: np.random.Generator, codes: np.ndarray, n_cells: int, n_boot: int) -> np.ndarray:
    """Confusion counts of every seed under ``n_boot`` paired resamples of the examples: (n_boot, seeds, n_cells).

    ``codes`` (seeds, n) is the confusion cell of every prediction. One
    resample draws n example indices with replacement and applies them to
    every seed of both variants, which is what makes the bootstrap paired.
    Examples with the same cells under every seed are interchangeable, so
    draws are tallied per such pattern (usually a few hundred, however large
    n is), and a seed's count in a cell is the sum of the tallies of the
    patterns that put it there. Everything is integer bincounts and sums over
    a block of draws at once: no loop over draws, no floating-point products,
    and the same draws as per-example counting would give.
    """
    seeds, n = codes.shape
    if seeds * math.log2(max(n_cells, 2)) < 62:
        # One integer per example (its cells in base n_cells): a 1-D unique is far cheaper than a row-wise one.
        key = np.zeros(n, dtype=np.int64)
        for row in codes:
            key = key * n_cells + row
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        patterns = codes[:, first].T
    else:
        patterns, inverse = np.unique(codes.T, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_patterns = patterns.shape[0]
    # Per seed: patterns ordered by cell, and where each present cell's run starts.
    groups = []
    for s in range(seeds):
        order = np.argsort(patterns[:, s], kind="stable")
        cells = patterns[order, s]
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        groups.append((order, starts, cells[starts]))
    out = np.zeros((n_boot, seeds, n_cells))
    block = max(1, min(n_boot, _BLOCK_ELEMENTS // n))
    index_dtype = np.int32 if n < 2**31 else np.int64
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        tally = inverse[rng.integers(0, n, size=(b, n), dtype=index_dtype)]
        tally += np.arange(b, dtype=tally.dtype)[:, None] * n_patterns
        weights = np.bincount(tally.ravel(), minlength=b * n_patterns).reshape(b, n_patterns)
        for s, (order, starts, present) in enumerate(groups):
            out[start : start + b, s, present] = np.add.reduceat(weights[:, order], starts, axis=1)
    return out


def paired_comparison_metric(
    pred_variant: Any,
    pred_baseline: Any,
    y_true: Any,
    n_classes: int,
    metric: Callable[[np.ndarray], Any] = macro_f1_from_counts,
    *,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
) -> dict[str, Any]:
    """Test the difference of a metric that is not a mean over examples (macro-F1 by default).

    ``pred_variant`` (S_variant × n) and ``pred_baseline`` (S_baseline × n)
    are predicted class ids of each seed on the same ``n`` test examples,
    ``y_true`` (n) the true class ids, all in ``[0, n_classes)``.

    ``metric`` maps confusion matrices of shape (..., C, C) (rows = true
    class; counts, fractional under resampling weights) to scores of shape
    (...). Every score textclf compares (accuracy, macro-, micro- and
    weighted-F1, balanced accuracy) is such a function, and taking counts
    rather than (y_true, y_pred) lets all seeds and all bootstrap resamples be
    scored with one matrix product. :func:`macro_f1_from_counts` (default) and
    :func:`accuracy_from_counts` are provided; :func:`macro_f1` is the same
    score from label arrays.

    Seed-level variance comes from the per-seed scores, example-level variance
    from ``n_boot`` paired bootstrap resamples of the test examples (the same
    resample for every seed of both variants), and each seed's own test-set
    noise is taken out of the seed term as described in the module docstring.
    Deterministic given ``seed`` (an int or a ``numpy.random.Generator``).
    Returns the keys of :func:`paired_comparison` (``mean_*`` are the
    seed-averaged metric) plus ``n_boot``.
    """
    alpha = _check_alpha(alpha)
    c = _check_n_classes(n_classes)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}; 1000 or more gives a stable variance")
    if not (
        isinstance(seed, np.random.Generator) or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool))
    ):
        raise ValueError(f"seed must be an int or a numpy.random.Generator, got {seed!r}")
    if not callable(metric):
        raise ValueError(f"metric must be a function of confusion matrices (..., C, C) -> (...), got {metric!r}")
    a = _check_predictions("pred_variant", pred_variant, c)
    b = _check_predictions("pred_baseline", pred_baseline, c)
    _check_same_examples(a.shape[1], b.shape[1], "pred")
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] != a.shape[1]:
        raise ValueError(f"y_true must be 1-D with one label per test example ({a.shape[1]}), got shape {y.shape}")
    y = _check_labels("y_true", y, c)

    s_a, n = a.shape
    s_b = b.shape[0]
    codes = y[None, :] * c + np.concatenate([a, b])  # (S_a + S_b, n): confusion cell of every prediction
    seeds = codes.shape[0]
    observed_counts = np.zeros((seeds, c * c))
    np.add.at(observed_counts, (np.arange(seeds)[:, None], codes), 1.0)
    observed = np.asarray(metric(observed_counts.reshape(seeds, c, c)), dtype=np.float64)
    if observed.shape != (seeds,) or not np.all(np.isfinite(observed)):
        raise ValueError(
            f"metric must map confusion matrices of shape (..., {c}, {c}) to finite scores of shape (...); "
            f"on shape {(seeds, c, c)} it returned shape {observed.shape}; see macro_f1_from_counts"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    counts = _bootstrap_counts(rng, codes, c * c, n_boot)
    boot = np.asarray(metric(counts.reshape(n_boot, seeds, c, c)), dtype=np.float64).T  # (seeds, n_boot)

    mean_a, mean_b = observed[:s_a].mean(), observed[s_a:].mean()
    delta = mean_a - mean_b
    boot_a, boot_b = boot[:s_a], boot[s_a:]
    var_examples = float((boot_a.mean(axis=0) - boot_b.mean(axis=0)).var(ddof=1))

    terms: list[tuple[float, float]] = [(var_examples, n - 1.0)]
    var_seeds = 0.0
    seed_vars = []
    for s, scores, draws in ((s_a, observed[:s_a], boot_a), (s_b, observed[s_a:], boot_b)):
        if s < 2:
            seed_vars.append(0.0)
            continue
        var_score = float(scores.var(ddof=1))
        # A seed's own test-set noise: its bootstrap spread around the seed mean
        # (for accuracy this is MS_res / n of the two-way table).
        noise = float((draws - draws.mean(axis=0)).var(axis=1, ddof=1).sum() / (s - 1))
        seed_var = max(var_score - noise, 0.0)
        seed_vars.append(seed_var)
        if seed_var > 0:
            var_seeds += seed_var / s
            terms.append((var_score / s, s - 1.0))
            terms.append((noise / s, (s - 1.0) * (n - 1.0)))

    # Seed means of equal scores can differ in the last bit; that is no difference.
    tol = 64 * np.finfo(np.float64).eps * max(1.0, float(np.abs(observed).max()))
    if abs(delta) <= tol:
        delta = 0.0
    var = var_examples + var_seeds
    if var <= tol * tol:
        var = var_examples = var_seeds = 0.0
    f = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    df = _satterthwaite([(f(v), d) for v, d in terms], f(var), fallback=n - 1.0)
    se, p, low, high = _t_inference(f(delta), f(var), df, alpha)
    batch = {
        "delta": f(delta),
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "se": se,
        "df": df,
        "var_examples": f(var_examples),
        "var_seeds": f(var_seeds),
        "seed_var_variant": f(seed_vars[0]),
        "seed_var_baseline": f(seed_vars[1]),
        "mean_variant": f(mean_a),
        "mean_baseline": f(mean_b),
    }
    out = _result(batch, alpha=alpha, method=METHOD_METRIC, n=n, s_a=s_a, s_b=s_b)
    out["n_boot"] = int(n_boot)
    return out
