"""Paired comparisons and contrasts of a metric that is not a mean over examples (macro-F1), by the bootstrap.

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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from textclf.analysis.stats import (
    _check_alpha,
    _check_same_examples,
    _result,
    _satterthwaite,
    _t_inference,
)
from textclf.core.metrics import accuracy_from_counts, macro_f1_from_counts

__all__ = [
    "accuracy_from_counts",
    "confusion_counts",
    "contrast_metric",
    "counts_score",
    "macro_f1_from_counts",
    "paired_comparison_metric",
]


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


def counts_score(metric: Any, n_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """A :class:`~textclf.core.metrics.Metric` as a score of confusion matrices (..., C, C) -> (...).

    Its ``from_counts`` when it has one; else each matrix is expanded back into
    (true, predicted) pairs for ``fn``: every metric of predicted classes is a
    function of the matrix, so any such metric gets the bootstrap, one call
    per seed and resample.
    """
    if metric.from_counts is not None:
        return metric.from_counts
    c = int(n_classes)
    cells = np.arange(c * c)

    def score(confusion: np.ndarray) -> np.ndarray:
        flat = np.asarray(confusion).reshape(-1, c * c).astype(np.int64)
        out = np.empty(len(flat))
        for i, row in enumerate(flat):
            code = np.repeat(cells, row)
            value = metric.fn(code // c, code % c, None, c)
            out[i] = np.nan if value is None else value
        return out.reshape(np.shape(confusion)[:-2])

    return score


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


def contrast_metric(
    preds: Sequence[Any],
    weights: Sequence[float],
    y_true: Any,
    n_classes: int,
    metric: Callable[[np.ndarray], Any] = macro_f1_from_counts,
    *,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    keep_truncated_df: bool = True,
) -> dict[str, Any]:
    """The contrast ``sum_v weights[v] * score_v`` of a metric that is not a mean over examples, by the paired bootstrap.

    ``preds[v]`` (S_v x n) predicted class ids of each seed of variant v on
    the same n examples; ``metric`` scores confusion matrices (..., C, C).
    Example variance is the variance of the contrast under paired resamples
    (the same examples for every seed of every variant), each seed's own
    test-set noise its bootstrap spread (the module docstring).
    ``keep_truncated_df``: a seed term estimated at zero still lowers the
    degrees of freedom (see :func:`textclf.analysis.contrasts.contrast_batch`);
    the pairwise test drops it. Returns ``delta``, ``ci_low``, ``ci_high``,
    ``p_value``, ``se``, ``df``, ``var_examples``, ``var_seeds``, and per
    variant ``means`` and ``seed_vars``.
    """
    alpha = _check_alpha(alpha)
    c = int(n_classes)
    arrs = [np.asarray(p, dtype=np.int64) for p in preds]
    y = np.asarray(y_true, dtype=np.int64)
    n = y.size
    codes = y[None, :] * c + np.concatenate(arrs)  # (sum S_v, n): confusion cell of every prediction
    total = codes.shape[0]
    observed_counts = np.zeros((total, c * c))
    np.add.at(observed_counts, (np.arange(total)[:, None], codes), 1.0)
    observed = np.asarray(metric(observed_counts.reshape(total, c, c)), dtype=np.float64)
    if observed.shape != (total,) or not np.all(np.isfinite(observed)):
        raise ValueError(
            f"metric must map confusion matrices of shape (..., {c}, {c}) to finite scores of shape (...); "
            f"on shape {(total, c, c)} it returned shape {observed.shape}; see macro_f1_from_counts"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    counts = _bootstrap_counts(rng, codes, c * c, n_boot)
    boot = np.asarray(metric(counts.reshape(n_boot, total, c, c)), dtype=np.float64).T  # (sum S_v, n_boot)
    delta, boot_delta, start = 0.0, np.zeros(n_boot), 0
    var_seeds, seed_terms, means, seed_vars = 0.0, [], [], []
    for w, p in zip(weights, arrs):
        s = p.shape[0]
        scores, draws = observed[start : start + s], boot[start : start + s]
        start += s
        means.append(float(scores.mean()))
        delta += w * scores.mean()
        boot_delta += w * draws.mean(axis=0)
        seed_vars.append(0.0)
        if s < 2 or w == 0:
            continue
        var_score = float(scores.var(ddof=1))
        # A seed's own test-set noise: its bootstrap spread around the seed mean
        # (for accuracy this is MS_res / n of the two-way table).
        noise = float((draws - draws.mean(axis=0)).var(axis=1, ddof=1).sum() / (s - 1))
        seed_vars[-1] = seed_var = max(var_score - noise, 0.0)
        var_seeds += w * w * seed_var / s
        if seed_var > 0 or keep_truncated_df:
            seed_terms += [(w * w * var_score / s, s - 1.0), (w * w * noise / s, (s - 1.0) * (n - 1.0))]
    var_examples = float(boot_delta.var(ddof=1))
    # Seed means of equal scores can differ in the last bit; that is no difference.
    tol = 64 * np.finfo(np.float64).eps * max(1.0, float(np.abs(observed).max()))
    if abs(delta) <= tol:
        delta = 0.0
    var = var_examples + var_seeds
    if var <= tol * tol:
        var = var_examples = var_seeds = 0.0
    f = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    df = _satterthwaite([(f(v), d) for v, d in [(var_examples, n - 1.0), *seed_terms]], f(var), fallback=n - 1.0)
    se, p_value, low, high = _t_inference(f(delta), f(var), df, alpha)
    out = {"delta": delta, "ci_low": low, "ci_high": high, "p_value": p_value, "se": se, "df": df}
    return {
        **{k: float(v) for k, v in out.items()},
        "var_examples": float(var_examples),
        "var_seeds": float(var_seeds),
        "means": means,
        "seed_vars": seed_vars,
    }


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
    (...): taking counts rather than (y_true, y_pred) lets all seeds and all
    bootstrap resamples be scored at once. :func:`macro_f1_from_counts`
    (default) and :func:`accuracy_from_counts` are provided;
    :func:`counts_score` makes one of any registered metric.

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
    r = contrast_metric(
        [a, b], [1.0, -1.0], y, c, metric, alpha=alpha, n_boot=n_boot, seed=seed, keep_truncated_df=False
    )
    batch = {k: np.asarray(v) for k, v in r.items() if k not in ("means", "seed_vars")}
    batch.update(
        mean_variant=np.asarray(r["means"][0]),
        mean_baseline=np.asarray(r["means"][1]),
        seed_var_variant=np.asarray(r["seed_vars"][0]),
        seed_var_baseline=np.asarray(r["seed_vars"][1]),
    )
    out = _result(batch, alpha=alpha, method=METHOD_METRIC, n=a.shape[1], s_a=a.shape[0], s_b=b.shape[0])
    out["n_boot"] = int(n_boot)
    return out
