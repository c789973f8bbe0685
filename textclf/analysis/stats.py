"""Significance of a difference between two variants trained under a few seeds each.

A comparison scores every seed of a variant and every seed of the baseline on
the same test examples, and asks whether the seed-averaged score of the
variant differs from the baseline's. Two independent kinds of luck move that
difference, and an interval must cover both:

* **which test examples were drawn.** The examples are shared, so this part
  is *paired*: an example that is hard for one variant tends to be hard for
  the other, and the difference varies far less over test sets than either
  score does.
* **which seeds were drawn.** Each variant's seeds are its own, and seeds move
  a run's accuracy by a point or more; with the usual three seeds per variant
  this term is both important and poorly known.

Model. For one variant write the 0/1 outcome of seed ``s`` on example ``i`` as
an overall level + a seed offset ``a_s`` + an example effect ``e_i`` + a
residual (the seed × example interaction and the Bernoulli noise of a single
prediction). The seed-averaged difference ``delta`` then has variance

    Var(e_variant - e_baseline) / n  +  sum_v sigma2_res_v / (S_v n)  +  sum_v sigma2_a_v / S_v.

The first two terms are what the paired per-example differences
``d_i = mean_s y_variant[s, i] - mean_s y_baseline[s, i]`` vary by, so
``var(d) / n`` estimates them together. The last term is the seed-offset
variance. The spread of per-seed accuracies does *not* estimate it directly:
the per-seed accuracy also moves with the residual noise of its own ``n``
predictions (``sigma2_res / n``, which at a few hundred examples is larger
than a one-point seed effect), and that noise is already inside ``var(d)``.
Adding the raw seed variance would count it twice and make the test needlessly
conservative; leaving seeds out would make it anti-conservative as soon as
seeds matter. So the seed-offset variance is the ANOVA moment estimator of a
two-way (seed × example) random-effects layout,
``max(0, var_s(acc_s) - MS_res / n)``, with ``MS_res`` the residual mean
square of the seed × example table (``(S - 1)(n - 1)`` degrees of freedom).
Equivalently: each variant's per-seed accuracy variance is floored at the
binomial-plus-interaction variance the table itself shows, which it can never
truly be below.

The reference distribution is Student's t with Welch–Satterthwaite degrees
of freedom: the seed terms have only ``S - 1`` degrees of freedom each, and
with three seeds a normal quantile would be far too narrow. A variant whose
seed term is truncated at zero drops out of both the variance and the
degrees of freedom. With a single seed on one side the seed term of that side
cannot be estimated; the result says so (``seed_variance`` False) and its
interval covers test-example variance and prediction noise only.

All sums of squares are computed from integer counts, so identical inputs
give exactly zero variance (``delta`` 0, ``p`` 1, interval [0, 0]) instead of
round-off. :func:`paired_comparison_batch` runs the same computation over
leading axes of repetitions, which is what the calibration tests and
``bench/calibration.py`` simulate with.

For a metric that is not a mean over examples (macro-F1), see
:mod:`textclf.analysis.metric_stats`.

Calibration (``bench/calibration.py``, simulated test sets with shared
example difficulty; the measured rates are in docs/benchmarks.md, "The
comparison's calibration", and ``tests/test_stats.py`` holds them near
alpha): the false-positive rate stays at or below alpha. It is lowest when
seeds truly do not vary: three seeds cannot show that the seed term is zero,
so it is sometimes estimated positive, on few degrees of freedom. Two limits
of any test on three seeds remain: when one variant's seeds vary far more
than the other's the rate rises above alpha, as for Welch's test itself; and
with one seed on a side the seed term is missing, so seed-to-seed variation
can push the rate far above alpha.

:func:`holm` adjusts the p-values of several variants compared against one
baseline for multiplicity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special as _special

__all__ = ["clip_interval", "holm", "paired_comparison", "paired_comparison_batch"]

METHOD = "paired t, seed + example variance, Satterthwaite df"


# Student's t upper tail and quantile as the bare ufuncs that scipy.stats.t's
# sf/ppf end in (bit-identical results): the distribution object checks and
# broadcasts its arguments on every call, which cost more than the quantile
# itself, and the calibration simulations and the sample-size search call these
# tens of thousands of times.
def t_sf(x: Any, df: Any) -> np.ndarray:
    """P(T > x) for Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf(x, df)``)."""
    return _special.stdtr(df, -np.asarray(x, dtype=np.float64))


def t_ppf(q: Any, df: Any) -> np.ndarray:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf(q, df)``)."""
    return _special.stdtrit(df, q)


# --------------------------------------------------------------------------- validation


def _check_alpha(alpha: Any) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(
            f"alpha must be a number in (0, 1), got {alpha!r}; use e.g. alpha=0.05 for a 95% interval"
        ) from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}; use e.g. alpha=0.05 for a 95% interval")
    return value


def _check_correct(name: str, value: Any, *, batched: bool = False) -> np.ndarray:
    """A (…, seeds, examples) array of 0/1 outcomes as bool; ValueError naming ``name`` otherwise."""
    arr = np.asarray(value)
    if batched:
        if arr.ndim < 2:
            raise ValueError(
                f"{name} must have at least 2 dimensions (..., seeds, test examples), got shape {arr.shape}"
            )
    elif arr.ndim != 2:
        hint = "; for a single seed pass arr[None, :]" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array (seeds x test examples) of 0/1, got shape {arr.shape}{hint}")
    if arr.shape[-2] < 1:
        raise ValueError(f"{name} has no seeds (shape {arr.shape}); pass at least one row of outcomes")
    if arr.shape[-1] < 2:
        raise ValueError(f"{name} has {arr.shape[-1]} test example(s) (shape {arr.shape}); at least 2 are needed")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must hold 0/1 numbers (1 = correct), got dtype {arr.dtype}")
    ok = (arr == 0) | (arr == 1)
    if not ok.all():
        bad = arr[~ok].flat[0]
        raise ValueError(
            f"{name} must hold only 0/1 (1 = the prediction was correct), found {bad!r}; "
            "pass (y_pred == y_true) per seed rather than scores or labels"
        )
    return arr.astype(bool)


def _check_same_examples(n_variant: int, n_baseline: int, what: str) -> None:
    if n_variant != n_baseline:
        raise ValueError(
            f"{what}_baseline has {n_baseline} test examples but {what}_variant has {n_variant}; "
            "both must be scored on the same examples in the same order"
        )


# --------------------------------------------------------------------------- inference


def _t_inference(delta: np.ndarray, var: np.ndarray, df: np.ndarray, alpha: float):
    """Two-sided p-value and 1 - alpha interval of ``delta`` with standard error sqrt(var) on ``df`` degrees of freedom.

    Zero variance is a legitimate outcome (identical predictions, or no
    variation anywhere): the interval collapses to ``delta`` and the p-value is
    1 when ``delta`` is 0 and 0 otherwise, never NaN.
    """
    se = np.sqrt(np.maximum(var, 0.0))
    positive = se > 0
    stat = np.divide(np.abs(delta), se, out=np.zeros_like(se), where=positive)
    p = np.where(positive, 2.0 * t_sf(stat, df), np.where(delta == 0, 1.0, 0.0))
    half = t_ppf(1.0 - alpha / 2.0, df) * se
    return se, np.minimum(p, 1.0), delta - half, delta + half


def _satterthwaite(terms: Sequence[tuple[np.ndarray, float]], total: np.ndarray, fallback: float) -> np.ndarray:
    """Welch–Satterthwaite degrees of freedom of ``total`` = sum of mean-square terms (value, df).

    ``fallback`` is used where every term is zero (the df is then irrelevant
    to the p-value but must still be a finite number).
    """
    denom = sum((value * value) / dof for value, dof in terms)
    safe = denom > 0
    df = np.divide(total * total, denom, out=np.full_like(total, fallback), where=safe)
    # The residual noise is subtracted from the seed variance, so the total can
    # be smaller than the terms whose uncertainty it inherits; that can push the
    # approximation below one degree of freedom, where t quantiles stop being useful.
    return np.maximum(df, 1.0)


# --------------------------------------------------------------------------- accuracy


def _seed_table(counts_by_seed: np.ndarray, counts_by_example: np.ndarray, s: int, n: int):
    """Per-seed accuracy mean and variance, and the residual noise of one seed's accuracy, from integer counts.

    ``counts_by_seed`` (…, s): correct predictions of each seed;
    ``counts_by_example`` (…, n): seeds that got each example right. Every
    sum below is an integer held exactly in float64 (well past a million
    examples), so constant tables give exactly zero.
    """
    r = counts_by_seed.astype(np.float64)
    c = counts_by_example.astype(np.float64)
    total = r.sum(axis=-1)
    mean = total / (s * n)
    if s < 2:
        zero = np.zeros_like(total)
        return mean, zero, zero
    r2 = (r * r).sum(axis=-1)
    c2 = (c * c).sum(axis=-1)
    # var over seeds of the per-seed accuracy r_s / n (ddof 1)
    var_acc = (s * r2 - total * total) / (s * (s - 1) * float(n) ** 2)
    # Two-way table without replication (y is 0/1 so y^2 = y):
    # s*n*SS_res = s*n*T - s*sum(r^2) - n*sum(c^2) + T^2
    ss_res = (s * n * total - s * r2 - n * c2 + total * total) / (s * n)
    ms_res = np.maximum(ss_res, 0.0) / ((s - 1) * (n - 1))
    # The residual's share of one seed's accuracy variance
    return mean, var_acc, ms_res / n


def paired_comparison_batch(correct_variant: Any, correct_baseline: Any, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """:func:`paired_comparison` over leading axes: one comparison per index of ``correct_*[..., :, :]``.

    ``correct_variant`` has shape (…, S_variant, n), ``correct_baseline``
    (…, S_baseline, n) with the same leading shape and ``n``. Returns a dict
    of arrays of the leading shape (``delta``, ``ci_low``, ``ci_high``,
    ``p_value``, ``se``, ``df``, ``var_examples``, ``var_seeds``,
    ``seed_var_variant``, ``seed_var_baseline``, ``mean_variant``,
    ``mean_baseline``). :func:`paired_comparison` is this function on one
    comparison, so a simulation study of this function calibrates that one.
    """
    alpha = _check_alpha(alpha)
    a = _check_correct("correct_variant", correct_variant, batched=True)
    b = _check_correct("correct_baseline", correct_baseline, batched=True)
    _check_same_examples(a.shape[-1], b.shape[-1], "correct")
    if a.shape[:-2] != b.shape[:-2]:
        raise ValueError(
            f"correct_variant has leading shape {a.shape[:-2]} but correct_baseline {b.shape[:-2]}; "
            "batched comparisons need one baseline table per variant table"
        )
    s_a, n = a.shape[-2:]
    s_b = b.shape[-2]

    col_a = a.sum(axis=-2, dtype=np.int64)
    col_b = b.sum(axis=-2, dtype=np.int64)
    mean_a, var_acc_a, noise_a = _seed_table(a.sum(axis=-1, dtype=np.int64), col_a, s_a, n)
    mean_b, var_acc_b, noise_b = _seed_table(b.sum(axis=-1, dtype=np.int64), col_b, s_b, n)

    # Per-example difference of seed means, scaled by s_a*s_b to stay integer.
    k = (s_b * col_a - s_a * col_b).astype(np.float64)
    sum_k = k.sum(axis=-1)
    scale = float(s_a * s_b)
    delta = sum_k / (n * scale)
    var_d = (n * (k * k).sum(axis=-1) - sum_k * sum_k) / (n * (n - 1) * scale * scale)
    var_examples = np.maximum(var_d, 0.0) / n

    terms: list[tuple[np.ndarray, float]] = [(var_examples, n - 1.0)]
    var_seeds = np.zeros_like(delta)
    seed_vars = []
    for s, var_acc, noise in ((s_a, var_acc_a, noise_a), (s_b, var_acc_b, noise_b)):
        seed_var = np.maximum(var_acc - noise, 0.0)
        seed_vars.append(seed_var)
        if s < 2:
            continue
        active = seed_var > 0
        var_seeds = var_seeds + seed_var / s
        # A truncated seed term contributes nothing: neither variance nor df.
        terms.append((np.where(active, var_acc / s, 0.0), s - 1.0))
        terms.append((np.where(active, noise / s, 0.0), (s - 1.0) * (n - 1.0)))
    var = var_examples + var_seeds
    df = _satterthwaite(terms, var, fallback=n - 1.0)
    se, p, low, high = _t_inference(delta, var, df, alpha)
    return {
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "se": se,
        "df": df,
        "var_examples": var_examples,
        "var_seeds": var_seeds,
        "seed_var_variant": seed_vars[0],
        "seed_var_baseline": seed_vars[1],
        "mean_variant": mean_a,
        "mean_baseline": mean_b,
    }


def _result(batch: dict[str, np.ndarray], *, alpha: float, method: str, n: int, s_a: int, s_b: int) -> dict[str, Any]:
    """One comparison's arrays as a JSON-serialisable dict."""
    out: dict[str, Any] = {
        "delta": float(batch["delta"].item()),
        "ci_low": float(batch["ci_low"].item()),
        "ci_high": float(batch["ci_high"].item()),
        "p_value": float(batch["p_value"].item()),
        "se": float(batch["se"].item()),
        "df": float(batch["df"].item()),
        "alpha": float(alpha),
        "method": method,
        "n_examples": int(n),
        "n_seeds_variant": int(s_a),
        "n_seeds_baseline": int(s_b),
        "seed_variance": bool(s_a > 1 and s_b > 1),
        "mean_variant": float(batch["mean_variant"].item()),
        "mean_baseline": float(batch["mean_baseline"].item()),
        "var_examples": float(batch["var_examples"].item()),
        "var_seeds": float(batch["var_seeds"].item()),
        # sd of the seed offset itself, net of prediction noise; None: one seed, not estimable
        "seed_sd_variant": math.sqrt(float(batch["seed_var_variant"].item())) if s_a > 1 else None,
        "seed_sd_baseline": math.sqrt(float(batch["seed_var_baseline"].item())) if s_b > 1 else None,
    }
    return out


def paired_comparison(correct_variant: Any, correct_baseline: Any, alpha: float = 0.05) -> dict[str, Any]:
    """Test the accuracy difference of a variant from a baseline, over seeds and test examples.

    ``correct_variant`` (S_variant × n) and ``correct_baseline`` (S_baseline ×
    n) hold 1 where a seed's prediction on a test example was correct; both
    score the same n examples in the same order, and each side has at least
    one seed (seed counts may differ). A variant's accuracy is the mean over
    its seeds of per-seed accuracy.

    Returns a JSON-serialisable dict: ``delta`` (variant − baseline accuracy),
    ``ci_low``/``ci_high`` (1 − ``alpha`` interval), two-sided ``p_value``,
    ``se``, ``df``, ``alpha``, ``method``, ``n_examples``, ``n_seeds_variant``,
    ``n_seeds_baseline``, ``seed_variance`` (False when a side has a single
    seed: seed-to-seed variance could not be estimated and the interval
    covers test-example variance only), ``mean_variant``, ``mean_baseline``,
    the two variance parts ``var_examples`` and ``var_seeds`` (they sum to
    ``se``²), and ``seed_sd_variant``/``seed_sd_baseline`` (the estimated sd
    of a seed's accuracy offset, net of prediction noise; None with one seed).
    See the module docstring for the method.
    """
    alpha = _check_alpha(alpha)
    a = _check_correct("correct_variant", correct_variant)
    b = _check_correct("correct_baseline", correct_baseline)
    _check_same_examples(a.shape[1], b.shape[1], "correct")
    batch = paired_comparison_batch(a[None], b[None], alpha)
    return _result(batch, alpha=alpha, method=METHOD, n=a.shape[1], s_a=a.shape[0], s_b=b.shape[0])


# --------------------------------------------------------------------------- reporting an interval

# A difference of two proportions (accuracy, macro-F1) lies in [-1, 1]. An interval at least this
# wide covers half of that range: it rules out almost nothing, whatever its level.
UNINFORMATIVE_WIDTH = 1.0


def clip_interval(low: float | None, high: float | None, bound: float = 1.0) -> tuple[float | None, float | None, bool]:
    """``(low, high)`` cut to the possible range ``[-bound, bound]``, and whether the interval is uninformative.

    With two seeds the t quantile on one or two degrees of freedom can put an
    interval's ends past ±100 points, which no accuracy difference can reach.
    Cutting it to the range loses no coverage (the true difference is inside
    the range, so it is inside the cut interval whenever it was inside the
    whole one). Uninformative: the interval had to be cut, or it is at least
    :data:`UNINFORMATIVE_WIDTH` wide.
    """
    if low is None or high is None:
        return low, high, False
    clipped = low < -bound or high > bound
    low, high = max(low, -bound), min(high, bound)
    return low, high, bool(clipped or high - low >= UNINFORMATIVE_WIDTH * bound)


# --------------------------------------------------------------------------- multiplicity


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input order; ``None`` entries stay ``None``.

    The k-th smallest of the m given p-values is multiplied by (m − k + 1),
    made non-decreasing along that order and capped at 1. Rejecting where the
    adjusted value is below alpha controls the family-wise error rate at
    alpha under any dependence between the tests (several variants against
    one baseline share that baseline's runs, so they are dependent).
    """
    values = list(p_values)
    present = [i for i, p in enumerate(values) if p is not None]
    ps = []
    for i in present:
        try:
            p = float(values[i])
        except (TypeError, ValueError):
            raise ValueError(f"p_values[{i}] must be a number in [0, 1] or None, got {values[i]!r}") from None
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p_values[{i}] must be in [0, 1] or None for a missing test, got {values[i]!r}")
        ps.append(p)
    out: list[float | None] = [None] * len(values)
    if not ps:
        return out
    arr = np.asarray(ps)
    m = arr.size
    order = np.argsort(arr, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * arr[order]))
    for rank, j in enumerate(order):
        out[present[j]] = float(adjusted[rank])
    return out
