"""Tests for textclf.analysis.stats: calibration under the null, power, degenerate and bad input, Holm.

The calibration tests simulate comparisons in which the variant and the
baseline are equal in distribution, so every rejection is a false positive.
Each repetition draws a fresh test set: example ``i`` has a correctness logit
``z_i ~ Normal(MU, TAU)`` shared by both variants (mean accuracy 0.80, from
near-certain to hopeless examples), every seed of each variant gets its own
logit offset ``b_s`` (sd chosen so a seed moves accuracy by the stated
number of points), and outcomes are Bernoulli(logistic(z_i + b_s)). The
method under test never sees these parameters.

Tolerances come from the binomial sd of a rejection rate over R
repetitions, sqrt(0.05 * 0.95 / R): 0.49 points at R = 2000, so the
[1 %, 7 %] band is more than 4 sd away from a correctly calibrated 5 % (and
more than 3 sd from the 2-3 % the method reaches where seeds truly do not
vary). Every simulation uses a fixed seed, so the suite is deterministic.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from textclf.analysis.metric_stats import (
    accuracy_from_counts,
    confusion_counts,
    macro_f1_from_counts,
    paired_comparison_metric,
)
from textclf.analysis.stats import holm, paired_comparison, paired_comparison_batch
from textclf.core.metrics import macro_f1

MU, TAU = 2.569, 2.5
ALPHA = 0.05
REPS = 2000
_NODES, _WEIGHTS = hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _expect(fn) -> float:
    """E[fn(z)] for z ~ Normal(MU, TAU), by Gauss-Hermite quadrature."""
    return float((_WEIGHTS * fn(MU + TAU * _NODES)).sum())


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


MEAN_ACC = _expect(_logistic)
# d(mean accuracy) / d(logit offset): turns "seed sd in accuracy points" into a logit sd.
SLOPE = _expect(lambda z: _logistic(z) * (1 - _logistic(z)))


def shift_for(points: float) -> float:
    """The logit shift that raises mean accuracy by ``points`` percentage points (bisection)."""
    lo, hi = 0.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _expect(lambda z: _logistic(z + mid)) - MEAN_ACC < points / 100:  # noqa: B023 (called at once)
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def simulate(rng, reps: int, seeds: int, n: int, seed_sd_points: float, shift: float = 0.0):
    """(variant, baseline) 0/1 arrays of shape (reps, seeds, n); the variant's logits are raised by ``shift``."""
    z = rng.normal(MU, TAU, size=(reps, 1, n)).astype(np.float32)
    sd = seed_sd_points / 100 / SLOPE
    out = []
    for extra in (shift, 0.0):
        offsets = (rng.normal(0.0, sd, size=(reps, seeds, 1)) + extra).astype(np.float32)
        p = _logistic(z + offsets)
        out.append(rng.random(p.shape, dtype=np.float32) < p)
    return out


def null_results(rng, reps, seeds, n, seed_sd_points, shift=0.0, chunk=250):
    """paired_comparison_batch over ``reps`` simulated comparisons, in chunks to bound memory."""
    parts = []
    for start in range(0, reps, chunk):
        a, b = simulate(rng, min(chunk, reps - start), seeds, n, seed_sd_points, shift)
        parts.append(paired_comparison_batch(a, b, ALPHA))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_simulation_parameters():
    # Guards the simulation itself: mean accuracy near 0.80, and the seed sd and
    # the +5-point shift land where they claim on the accuracy scale.
    assert 0.79 < MEAN_ACC < 0.81
    sd_logit = 3 / 100 / SLOPE
    spread = [_expect(lambda z, b=b: _logistic(z + b)) for b in (-sd_logit, sd_logit)]
    assert abs((spread[1] - spread[0]) / 2 - 0.03) < 0.002
    assert abs(_expect(lambda z: _logistic(z + shift_for(5))) - MEAN_ACC - 0.05) < 1e-6


# --------------------------------------------------------------------------- accuracy: calibration


@pytest.mark.parametrize("seed_sd_points", [0, 1, 3, 5])
def test_false_positive_rate_is_calibrated(seed_sd_points):
    rng = np.random.default_rng(100 + seed_sd_points)
    rates = {}
    for seeds in (3, 5):
        for n in (500, 2000):
            res = null_results(rng, REPS, seeds, n, seed_sd_points)
            rates[(seeds, n)] = float(np.mean(res["p_value"] < ALPHA))
            # The interval and the p-value are the same decision.
            outside = (res["ci_low"] > 0) | (res["ci_high"] < 0)
            np.testing.assert_array_equal(outside, res["p_value"] < ALPHA)
            assert np.all(np.isfinite(res["se"])) and np.all(res["df"] >= 1)
    bad = {k: v for k, v in rates.items() if not 0.01 <= v <= 0.07}
    assert not bad, f"seed sd {seed_sd_points} points: false-positive rates outside [1%, 7%]: {bad} (all: {rates})"


def test_interval_covers_zero_under_the_null():
    rng = np.random.default_rng(7)
    res = null_results(rng, REPS, 3, 800, 3)
    covered = np.mean((res["ci_low"] <= 0) & (0 <= res["ci_high"]))
    assert 0.93 <= covered <= 0.99
    np.testing.assert_array_equal((res["ci_low"] <= 0) & (0 <= res["ci_high"]), res["p_value"] >= ALPHA)


def test_power_five_points_three_seeds():
    rng = np.random.default_rng(11)
    res = null_results(rng, 1500, 3, 800, 1, shift=shift_for(5))
    detected = np.mean((res["p_value"] < ALPHA) & (res["delta"] > 0))
    assert detected >= 0.80, f"detected a +5-point difference in {detected:.1%} of repetitions"
    assert abs(res["delta"].mean() - 0.05) < 0.003


def test_public_function_is_the_batch_computation():
    rng = np.random.default_rng(3)
    a, b = simulate(rng, 1, 3, 600, 3)
    one = paired_comparison(a[0].astype(int), b[0].astype(int))
    batch = paired_comparison_batch(a, b)
    for key in ("delta", "ci_low", "ci_high", "p_value", "se", "df", "var_examples", "var_seeds"):
        assert one[key] == pytest.approx(float(batch[key][0]), rel=1e-12, abs=1e-15), key
    assert (one["p_value"] < ALPHA) == (one["ci_low"] > 0 or one["ci_high"] < 0)


# --------------------------------------------------------------------------- accuracy: values and edge cases


def test_known_values_without_seed_variation():
    # Seeds of each variant identical: no seed variance, and the example term is
    # the paired t-test on the per-example differences.
    y_a = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1])
    y_b = np.array([1, 0, 1, 0, 1, 0, 0, 1, 1, 0])
    res = paired_comparison(np.tile(y_a, (3, 1)), np.tile(y_b, (2, 1)))
    d = y_a - y_b
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert res["delta"] == pytest.approx(0.3)
    assert res["se"] == pytest.approx(se)
    assert res["df"] == pytest.approx(9.0)
    assert res["var_seeds"] == 0.0
    from scipy import stats as sps

    assert res["p_value"] == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)
    assert res["ci_high"] - res["delta"] == pytest.approx(sps.t.ppf(0.975, 9) * se)


@pytest.mark.parametrize(("seed_sd_points", "upper"), [(0, 1.7), (3, 1.12)])
def test_variance_matches_the_spread_of_delta(seed_sd_points, upper):
    # The estimated se^2, averaged over repetitions, against the actual variance
    # of delta: counting the within-seed noise twice would give about 2 without
    # seed variation, leaving seeds out about 0.1 at 3 points. Without seed
    # variation the truncated seed term errs upwards (its estimate is never
    # negative), hence the looser upper bound there. sd of the ratio: ~3 %.
    rng = np.random.default_rng(40 + seed_sd_points)
    res = null_results(rng, REPS, 3, 1000, seed_sd_points)
    ratio = np.mean(res["se"] ** 2) / np.var(res["delta"])
    assert 0.9 <= ratio <= upper, f"mean se^2 / var(delta) = {ratio:.2f}"
    np.testing.assert_allclose(res["se"] ** 2, res["var_examples"] + res["var_seeds"], rtol=1e-12)


def test_identical_predictions_give_zero_difference_without_warnings():
    rng = np.random.default_rng(0)
    runs = (rng.random((3, 200)) < 0.8).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = paired_comparison(runs, runs.copy())
        same_seeds = paired_comparison(np.tile(runs[0], (3, 1)), np.tile(runs[0], (2, 1)))
        constant = paired_comparison(np.ones((3, 50)), np.ones((2, 50)))
        apart = paired_comparison(np.ones((3, 50)), np.zeros((3, 50)))
    # The same runs on both sides: no difference, but the seeds differ from each
    # other, so the interval is a genuine (symmetric) one.
    assert (res["delta"], res["p_value"], res["var_examples"]) == (0.0, 1.0, 0.0)
    assert res["ci_low"] == -res["ci_high"] and np.isfinite(res["ci_low"])
    # Nothing varies at all: a point interval.
    assert (same_seeds["delta"], same_seeds["p_value"], same_seeds["ci_low"], same_seeds["ci_high"]) == (
        0.0,
        1.0,
        0.0,
        0.0,
    )
    assert (constant["delta"], constant["p_value"], constant["ci_low"], constant["ci_high"], constant["se"]) == (
        0.0,
        1.0,
        0.0,
        0.0,
        0.0,
    )
    # No variation anywhere and every example differs: the data cannot be explained by chance.
    assert (apart["delta"], apart["p_value"], apart["ci_low"], apart["ci_high"]) == (1.0, 0.0, 1.0, 1.0)
    for r in (res, same_seeds, constant, apart):
        json.dumps(r, allow_nan=False)
        assert np.isfinite(r["df"])


def test_one_seed_on_a_side():
    rng = np.random.default_rng(1)
    a, b = simulate(rng, 1, 3, 500, 3)
    res = paired_comparison(a[0][:1], b[0])
    assert res["seed_variance"] is False
    assert res["n_seeds_variant"] == 1 and res["n_seeds_baseline"] == 3
    assert res["seed_sd_variant"] is None and res["seed_sd_baseline"] is not None
    assert np.isfinite(res["ci_low"]) and res["ci_low"] < res["delta"] < res["ci_high"]
    both = paired_comparison(a[0][:1], b[0][:1])
    assert both["seed_variance"] is False and both["var_seeds"] == 0.0 and both["se"] > 0
    json.dumps(res, allow_nan=False)
    assert paired_comparison(a[0], b[0])["seed_variance"] is True


def test_output_keys_and_json():
    rng = np.random.default_rng(2)
    a, b = simulate(rng, 1, 3, 300, 1)
    res = paired_comparison(a[0], b[0], alpha=0.1)
    for key in (
        "delta",
        "ci_low",
        "ci_high",
        "p_value",
        "se",
        "df",
        "method",
        "n_examples",
        "n_seeds_variant",
        "n_seeds_baseline",
        "seed_variance",
    ):
        assert key in res
    assert res["n_examples"] == 300 and res["alpha"] == 0.1
    assert res["delta"] == pytest.approx(a[0].mean() - b[0].mean())
    json.loads(json.dumps(res, allow_nan=False))
    # A wider interval at a smaller alpha, same p-value.
    wide = paired_comparison(a[0], b[0], alpha=0.01)
    assert wide["ci_high"] - wide["ci_low"] > res["ci_high"] - res["ci_low"]
    assert wide["p_value"] == pytest.approx(res["p_value"])


@pytest.mark.parametrize(
    ("args", "kwargs", "names"),
    [
        ((np.ones(10), np.ones((2, 10))), {}, "correct_variant"),
        ((np.ones((2, 10)), np.ones(10)), {}, "correct_baseline"),
        ((np.ones((2, 10)), np.ones((2, 9))), {}, "correct_baseline"),
        ((np.full((2, 10), 2), np.ones((2, 10))), {}, "correct_variant"),
        ((np.ones((2, 10)), np.full((2, 10), 0.5)), {}, "correct_baseline"),
        ((np.ones((2, 10)), np.full((2, 10), np.nan)), {}, "correct_baseline"),
        ((np.ones((0, 10)), np.ones((2, 10))), {}, "correct_variant"),
        ((np.ones((2, 10)), np.ones((2, 10))), {"alpha": 0.0}, "alpha"),
        ((np.ones((2, 10)), np.ones((2, 10))), {"alpha": 1.0}, "alpha"),
        ((np.ones((2, 10)), np.ones((2, 10))), {"alpha": 1.5}, "alpha"),
        ((np.ones((2, 10)), np.ones((2, 10))), {"alpha": "x"}, "alpha"),
    ],
)
def test_bad_input_names_the_argument(args, kwargs, names):
    with pytest.raises(ValueError, match=names):
        paired_comparison(*args, **kwargs)


def test_batch_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="correct_baseline"):
        paired_comparison_batch(np.ones((4, 3, 10), bool), np.ones((5, 3, 10), bool))
    with pytest.raises(ValueError, match="correct_variant"):
        paired_comparison_batch(np.ones(10, bool), np.ones((3, 10), bool))
    with pytest.raises(ValueError, match="alpha"):
        paired_comparison_batch(np.ones((3, 10), bool), np.ones((3, 10), bool), alpha=-0.1)


# --------------------------------------------------------------------------- other metrics

CLASS_SHARES = {2: [0.65, 0.35], 3: [0.5, 0.3, 0.2]}


def simulate_labels(rng, seeds: int, n: int, n_classes: int, seed_sd_points: float):
    """(pred_variant, pred_baseline, y) with the difficulty model above; a wrong answer is the example's confusable class."""
    y = rng.choice(n_classes, size=n, p=CLASS_SHARES[n_classes])
    confusable = (y + rng.integers(1, n_classes, size=n)) % n_classes
    z = rng.normal(MU, TAU, size=n)
    sd = seed_sd_points / 100 / SLOPE
    preds = []
    for _ in range(2):
        p = _logistic(z[None, :] + rng.normal(0.0, sd, size=(seeds, 1)))
        preds.append(np.where(rng.random(p.shape) < p, y, confusable))
    return preds[0], preds[1], y


@pytest.mark.parametrize(("seed_sd_points", "n_classes"), [(0, 2), (0, 3), (3, 2), (3, 3)])
def test_macro_f1_false_positive_rate(seed_sd_points, n_classes):
    rng = np.random.default_rng(200 + 10 * seed_sd_points + n_classes)
    # Without seed variation the method sits near 2 % (it cannot know, from 3
    # seeds, that the seed term is zero), so those cells get more repetitions:
    # binomial sd 0.36 points at R = 1500 and 2 %, 0.77 at R = 800 and 5 %.
    reps = 1500 if seed_sd_points == 0 else 800
    rejected = outside = 0
    for rep in range(reps):
        pa, pb, y = simulate_labels(rng, 3, 800, n_classes, seed_sd_points)
        res = paired_comparison_metric(pa, pb, y, n_classes, n_boot=200, seed=rep)
        rejected += res["p_value"] < ALPHA
        outside += res["ci_low"] > 0 or res["ci_high"] < 0
    assert rejected == outside
    assert 0.01 <= rejected / reps <= 0.08, f"false-positive rate {rejected / reps:.1%}"


def test_macro_f1_call_is_fast_and_deterministic():
    rng = np.random.default_rng(9)
    pa, pb, y = simulate_labels(rng, 3, 800, 2, 3)
    paired_comparison_metric(pa, pb, y, 2)  # first call pays one-off imports
    one = paired_comparison_metric(pa, pb, y, 2, seed=4)
    assert paired_comparison_metric(pa, pb, y, 2, seed=4) == one
    assert paired_comparison_metric(pa, pb, y, 2, seed=np.random.default_rng(4)) == one
    other = paired_comparison_metric(pa, pb, y, 2, seed=5)
    assert other["delta"] == one["delta"] and other["se"] != one["se"]
    assert one["delta"] == pytest.approx(
        np.mean([macro_f1(y, p, 2) for p in pa]) - np.mean([macro_f1(y, p, 2) for p in pb])
    )
    assert one["method"] != paired_comparison(pa == y, pb == y)["method"]
    json.dumps(one, allow_nan=False)


def test_metric_route_agrees_with_accuracy_route():
    rng = np.random.default_rng(12)
    pa, pb, y = simulate_labels(rng, 3, 1000, 3, 3)
    exact = paired_comparison(pa == y, pb == y)
    boot = paired_comparison_metric(pa, pb, y, 3, accuracy_from_counts, n_boot=4000)
    assert boot["delta"] == pytest.approx(exact["delta"], abs=1e-12)
    assert boot["var_examples"] == pytest.approx(exact["var_examples"], rel=0.1)
    assert boot["se"] == pytest.approx(exact["se"], rel=0.1)


def test_macro_f1_matches_the_definition():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 60)
    pred = rng.integers(0, 3, (2, 60))  # class 3 never predicted
    conf = confusion_counts(y, pred, 5)  # class 4 neither present nor predicted: F1 0
    assert conf.shape == (2, 5, 5) and conf.sum() == 120
    for p in pred:
        row = macro_f1(y, p, 5)
        f1 = []
        for c in range(5):
            tp = np.sum((y == c) & (p == c))
            denom = np.sum(y == c) + np.sum(p == c)
            f1.append(2 * tp / denom if denom else 0.0)
        assert row == pytest.approx(np.mean(f1))
    assert isinstance(macro_f1(y, pred[0], 5), float)
    assert accuracy_from_counts(conf) == pytest.approx((pred == y).mean(axis=1))
    assert macro_f1_from_counts(conf) == pytest.approx([macro_f1(y, p, 5) for p in pred])


def test_metric_edge_cases():
    rng = np.random.default_rng(6)
    pa, pb, y = simulate_labels(rng, 3, 300, 3, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = paired_comparison_metric(pa, pa.copy(), y, 3)
        fewer = paired_comparison_metric(pa, pa[:2], y, 3)  # unequal seed counts, same scores per seed
        one = paired_comparison_metric(pa[:1], pb, y, 3)
        const = paired_comparison_metric(np.tile(y, (3, 1)), np.tile(y, (2, 1)), y, 3)
    assert (same["delta"], same["p_value"], same["ci_low"], same["ci_high"]) == (0.0, 1.0, 0.0, 0.0)
    assert (const["delta"], const["p_value"], const["ci_low"], const["ci_high"]) == (0.0, 1.0, 0.0, 0.0)
    assert fewer["p_value"] > 0.05
    assert one["seed_variance"] is False and np.isfinite(one["ci_low"]) and one["se"] > 0
    for r in (same, fewer, one, const):
        json.dumps(r, allow_nan=False)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"pred_variant": np.zeros(10, int)}, "pred_variant"),
        ({"pred_baseline": np.zeros((2, 9), int)}, "pred_baseline"),
        ({"pred_baseline": np.full((2, 10), 3)}, "pred_baseline"),
        ({"pred_variant": np.zeros((2, 10))}, "pred_variant"),
        ({"y_true": np.zeros(9, int)}, "y_true"),
        ({"y_true": np.full(10, -1)}, "y_true"),
        ({"n_classes": 0}, "n_classes"),
        ({"n_boot": 1}, "n_boot"),
        ({"alpha": 0}, "alpha"),
        ({"seed": 1.5}, "seed"),
        ({"metric": lambda conf: 0.5}, "metric"),
    ],
)
def test_metric_bad_input_names_the_argument(change, names):
    kwargs = {
        "pred_variant": np.zeros((2, 10), int),
        "pred_baseline": np.ones((2, 10), int),
        "y_true": np.arange(10) % 3,
        "n_classes": 3,
    }
    kwargs.update(change)
    with pytest.raises(ValueError, match=names):
        paired_comparison_metric(**kwargs)


# --------------------------------------------------------------------------- Holm


def test_holm_hand_computed():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06.
    assert holm([0.01, None, 0.04, 0.03, 0.005]) == pytest.approx([0.03, None, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([0.2]) == [0.2]
    assert holm([]) == [] and holm([None, None]) == [None, None]


def test_holm_monotone_and_bounded():
    rng = np.random.default_rng(8)
    p = list(rng.random(12) ** 3)
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(np.asarray(adj)[order]) >= 0)
    assert all(a >= b for a, b in zip(adj, p)) and max(adj) <= 1.0
    assert all(isinstance(a, float) for a in adj)


@pytest.mark.parametrize("bad", [[0.1, 1.5], [0.1, -0.01], [float("nan")], ["x"]])
def test_holm_bad_input(bad):
    with pytest.raises(ValueError, match=r"p_values\["):
        holm(bad)
