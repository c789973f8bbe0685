"""Tests for textclf.analysis.contrasts: the generalised test, TOST equivalence, the derived family, calibration.

The simulations follow tests/test_stats.py: each repetition draws a fresh
test set whose example ``i`` has a correctness logit ``z_i ~ Normal(MU, TAU)``
shared by every variant (mean accuracy 0.80), each seed of each variant its
own logit offset (sd chosen so a seed moves accuracy by the stated points),
and a variant's true level is a logit shift chosen so its *mean accuracy*
moves by the stated points (so differences and interactions are exact on the
accuracy scale, where the contrasts are defined). With R repetitions the
binomial sd of a 5% rate is sqrt(0.05 * 0.95 / R): 0.49 points at R = 2000,
so a 7% ceiling is 4 sd above a calibrated 5%. Fixed seeds: deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from textclf.analysis.contrasts import (
    BETTER,
    EQUIVALENT,
    INCONCLUSIVE,
    contrast_batch,
    contrast_metric,
    derive_contrasts,
    mde,
    seeds_needed,
    tost_p,
    verdicts,
)
from textclf.analysis.metric_stats import paired_comparison_metric
from textclf.analysis.stats import holm, paired_comparison_batch

MU, TAU = 2.569, 2.5
ALPHA = 0.05
SESOI = 0.02
_NODES, _WEIGHTS = hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def _mean_acc(shift: float) -> float:
    return float((_WEIGHTS * _logistic(MU + TAU * _NODES + shift)).sum())


SLOPE = float((_WEIGHTS * _logistic(MU + TAU * _NODES) * (1 - _logistic(MU + TAU * _NODES))).sum())


def shift_for(points: float) -> float:
    """The logit shift that moves mean accuracy by ``points`` (either sign), by bisection."""
    lo, hi = -5.0, 5.0
    base = _mean_acc(0.0)
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _mean_acc(mid) - base < points / 100 else (lo, mid)
    return (lo + hi) / 2


def simulate(rng, reps: int, seeds: int, n: int, seed_sd_points: float, levels_points: list[float]) -> list[np.ndarray]:
    """One (reps, seeds, n) 0/1 table per variant, true mean accuracies 0.80 + levels (points), shared examples."""
    z = rng.normal(MU, TAU, size=(reps, 1, n)).astype(np.float32)
    sd = seed_sd_points / 100 / SLOPE
    out = []
    for level in levels_points:
        offsets = (rng.normal(0.0, sd, size=(reps, seeds, 1)) + shift_for(level)).astype(np.float32)
        out.append(rng.random((reps, seeds, n), dtype=np.float32) < _logistic(z + offsets))
    return out


# --------------------------------------------------------------------------- the test itself


def test_pair_is_exactly_the_paired_comparison():
    rng = np.random.default_rng(0)
    a, b = simulate(rng, 40, 3, 400, 2, [1.0, 0.0])
    b = b[:, :2]  # unequal seed counts
    got, want = contrast_batch([a, b], [1, -1], keep_truncated_df=False), paired_comparison_batch(a, b, ALPHA)
    for key in got:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-14, err_msg=key)
    # The family's default differs only in the df where a seed term was truncated at zero.
    kept = contrast_batch([a, b], [1, -1])
    for key in ("delta", "se", "var_examples", "var_seeds"):
        np.testing.assert_allclose(kept[key], want[key], rtol=1e-10, atol=1e-14, err_msg=key)
    assert np.all(kept["df"] <= want["df"] + 1e-9)


def test_identical_tables_give_zero_and_p_one():
    rng = np.random.default_rng(1)
    (a,) = simulate(rng, 1, 1, 300, 0, [0.0])
    r = contrast_batch([a, a], [1, -1])
    assert r["delta"].item() == 0.0 and r["se"].item() == 0.0 and r["p_value"].item() == 1.0


def test_main_effect_matches_its_definition():
    rng = np.random.default_rng(2)
    t = simulate(rng, 1, 3, 500, 1, [0.0, 2.0, 4.0, 6.0])
    w = [-0.5, -0.5, 0.5, 0.5]
    r = contrast_batch(t, w)
    acc = [x[0].mean() for x in t]
    assert r["delta"].item() == pytest.approx(sum(wi * a for wi, a in zip(w, acc)), abs=1e-12)
    # The per-example variance of the main effect: that of the weighted per-example seed means.
    d = sum(wi * x[0].mean(axis=0) for wi, x in zip(w, t))
    assert r["var_examples"].item() == pytest.approx(d.var(ddof=1) / d.size, rel=1e-10)


def test_metric_route_pair_agrees_with_paired_comparison_metric():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    pa = np.where(rng.random((3, 300)) < 0.8, y, rng.integers(0, 3, (3, 300)))
    pb = np.where(rng.random((2, 300)) < 0.75, y, rng.integers(0, 3, (2, 300)))
    got = contrast_metric([pa, pb], [1, -1], y, 3, n_boot=400, seed=5, keep_truncated_df=False)
    want = paired_comparison_metric(pa, pb, y, 3, n_boot=400, seed=5)
    for key in ("delta", "se", "df", "p_value", "ci_low", "ci_high"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def test_tost_p_is_the_one_minus_two_alpha_interval():
    delta = np.array([0.0, 0.01, 0.015, -0.015, 0.03])
    se = np.array([0.005, 0.005, 0.005, 0.005, 0.005])
    df = np.full(5, 10.0)
    p = tost_p(delta, se, df, SESOI)
    from scipy import stats

    half = stats.t.ppf(1 - ALPHA, df) * se
    inside = (delta - half > -SESOI) & (delta + half < SESOI)
    np.testing.assert_array_equal(p < ALPHA, inside)
    assert tost_p(0.01, 0.0, 5.0, SESOI) == 0.0 and tost_p(0.03, 0.0, 5.0, SESOI) == 1.0


def test_verdict_words():
    got = verdicts([0.01, 0.01, 0.5, 0.5, None], [0.9, 0.9, 0.01, 0.3, None], [0.03, -0.03, 0.001, 0.01, 0.0], ALPHA)
    assert got == [BETTER, "worse", EQUIVALENT, INCONCLUSIVE, INCONCLUSIVE]


def test_mde_and_seeds_needed():
    se, df = 0.01, 20.0
    from scipy import stats

    assert mde(se, df) == pytest.approx((stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * se)
    # Example variance alone already above what a 2-point mde allows: no number of seeds helps.
    assert seeds_needed(0.01**2, [(0.0004, 0.0001, 3)], 800, SESOI) is None
    # A large seed term: more seeds bring it down, and the answer is the first seed count that does.
    need = seeds_needed(0.002**2, [(0.0004, 0.0001, 3), (0.0004, 0.0001, 3)], 800, SESOI)
    assert need is not None and need > 3
    assert seeds_needed(0.002**2, [(0.0004, 0.0001, 3), (0.0004, 0.0001, 3)], 800, SESOI * 2) < need


# --------------------------------------------------------------------------- the family


DEFAULT = {
    "rnn": {"kind": "neural", "cell": "rnn", "layers": 1, "bidirectional": False},
    "gru": {"kind": "neural", "cell": "gru", "layers": 1, "bidirectional": False},
    "lstm": {"kind": "neural", "cell": "lstm", "layers": 1, "bidirectional": False},
    "lstm-x2": {"kind": "neural", "cell": "lstm", "layers": 2, "bidirectional": False},
    "bilstm": {"kind": "neural", "cell": "lstm", "layers": 1, "bidirectional": True},
    "bilstm-x2": {"kind": "neural", "cell": "lstm", "layers": 2, "bidirectional": True},
    "tfidf": {"kind": "tfidf", "cell": None, "layers": None, "bidirectional": None},
}


def test_default_comparison_family():
    family = {c.name: c for c in derive_contrasts(DEFAULT, "rnn")}
    assert (family["depth@uni"].a, family["depth@uni"].b) == ("lstm-x2", "lstm")
    assert (family["depth@bi"].a, family["depth@bi"].b) == ("bilstm-x2", "bilstm")
    assert (family["direction@1"].a, family["direction@1"].b) == ("bilstm", "lstm")
    assert (family["direction@2"].a, family["direction@2"].b) == ("bilstm-x2", "lstm-x2")
    cells = {(c.a, c.b) for c in family.values() if c.name.startswith("cell@")}
    assert cells == {("gru", "rnn"), ("lstm", "rnn"), ("lstm", "gru")}
    assert family["depth x direction"].weights == {"bilstm-x2": 1.0, "lstm-x2": -1.0, "bilstm": -1.0, "lstm": 1.0}
    assert family["depth (main)"].kind == "main" and family["direction (main)"].kind == "main"
    # every variant vs the baseline, but lstm vs rnn and gru vs rnn only once (as cell contrasts)
    vs = sorted(n for n in family if n.endswith(" vs rnn"))
    assert vs == ["bilstm vs rnn", "bilstm-x2 vs rnn", "lstm-x2 vs rnn", "tfidf vs rnn"]
    assert len(family) == len(set(family))


def test_pairs_need_the_rest_of_the_config_equal_and_names_stay_unique():
    two_cells = {
        "lstm": {"kind": "neural", "cell": "lstm", "layers": 1, "bidirectional": False, "rest": "x"},
        "lstm-x2": {"kind": "neural", "cell": "lstm", "layers": 2, "bidirectional": False, "rest": "x"},
        "gru": {"kind": "neural", "cell": "gru", "layers": 1, "bidirectional": False, "rest": "x"},
        "gru-x2": {"kind": "neural", "cell": "gru", "layers": 2, "bidirectional": False, "rest": "x"},
        "bilstm-wide": {"kind": "neural", "cell": "lstm", "layers": 1, "bidirectional": True, "rest": "wider"},
    }
    names = [c.name for c in derive_contrasts(two_cells, None)]
    assert "depth@uni-lstm" in names and "depth@uni-gru" in names
    assert not any("bilstm-wide" in (c.a, c.b) for c in derive_contrasts(two_cells, None))
    assert len(names) == len(set(names))


# --------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("seed_sd_points", [0, 1, 3])
@pytest.mark.parametrize("sign", [1, -1])
def test_equivalence_fires_at_most_alpha_at_the_margin(seed_sd_points, sign):
    """True difference exactly ±sesoi: declaring equivalence is an error; it must happen at most alpha of the time."""
    rng = np.random.default_rng(200 + seed_sd_points + (sign > 0))
    reps, n = 2000, 2000

    def one(r):
        a, b = simulate(rng, r, 3, n, seed_sd_points, [sign * 100 * SESOI, 0.0])
        res = contrast_batch([a, b], [1, -1], ALPHA)
        return tost_p(res["delta"], res["se"], res["df"], SESOI) < ALPHA

    rate = float(np.concatenate([one(250) for _ in range(reps // 250)]).mean())
    assert rate <= 0.07, (
        f"equivalence declared in {rate:.1%} of repetitions with the true difference at {sign * 2:+d} points"
    )


def test_equivalence_has_power_when_nothing_differs():
    # The other side of the coin: with no true difference, a large test set and 5 seeds it is found.
    rng = np.random.default_rng(9)
    a, b = simulate(rng, 300, 5, 4000, 0.5, [0.0, 0.0])
    res = contrast_batch([a, b], [1, -1], ALPHA)
    assert np.mean(tost_p(res["delta"], res["se"], res["df"], SESOI) < ALPHA) > 0.5


@pytest.mark.parametrize("seed_sd_points", [0, 2, 4])
def test_interaction_holds_its_rate_with_main_effects_present(seed_sd_points):
    """Depth +3 and direction +5 points, additive on the accuracy scale: every interaction rejection is false."""
    rng = np.random.default_rng(300 + seed_sd_points)
    rejected, main_detected = [], []
    for _ in range(8):
        u1, b1, u2, b2 = simulate(rng, 250, 3, 800, seed_sd_points, [0.0, 5.0, 3.0, 8.0])
        inter = contrast_batch([b2, u2, b1, u1], [1, -1, -1, 1], ALPHA)
        rejected.append(inter["p_value"] < ALPHA)
        direction = contrast_batch([b1, b2, u1, u2], [0.5, 0.5, -0.5, -0.5], ALPHA)
        main_detected.append(direction["p_value"] < ALPHA)
        np.testing.assert_allclose(direction["delta"].mean(), 0.05, atol=0.004)
    rate = float(np.concatenate(rejected).mean())
    assert 0.01 <= rate <= 0.07, f"interaction false-positive rate {rate:.1%} at seed sd {seed_sd_points}"
    assert np.concatenate(main_detected).mean() > 0.3  # the main effects are really there (power falls with seed sd)


@pytest.mark.parametrize("seed_sd_points", [0, 1, 3, 5])
def test_family_wise_rate_of_the_derived_family(seed_sd_points):
    """The default comparison's 7 variants, all equal: any Holm-adjusted rejection in the derived family is an error."""
    rng = np.random.default_rng(400 + seed_sd_points)
    family = derive_contrasts(DEFAULT, "rnn")
    names = list(DEFAULT)
    any_rejected = []
    for _ in range(8):
        tables = dict(zip(names, simulate(rng, 250, 3, 500, seed_sd_points, [0.0] * len(names))))
        ps = np.stack(
            [
                contrast_batch([tables[v] for v in c.weights], list(c.weights.values()), ALPHA)["p_value"]
                for c in family
            ],
            axis=1,
        )  # (reps, contrasts)
        adjusted = np.array([holm(row.tolist()) for row in ps], dtype=float)
        any_rejected.append((adjusted < ALPHA).any(axis=1))
    rate = float(np.concatenate(any_rejected).mean())
    assert rate <= 0.07, (
        f"family-wise false-positive rate {rate:.1%} over {len(family)} contrasts at seed sd {seed_sd_points}"
    )
