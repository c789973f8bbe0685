"""Verdicts on diagnostic claims (textclf.analysis.verdicts) on synthetic runs whose truth is known.

Every case builds runs as a real pipeline hands them over: predicted classes
only (``pred``, no probability matrix), summarised by ``compare`` and judged
by ``judge``. A variant that solves a task every seed must make a ``better``
claim hold; an exact copy of the baseline must make it fail (its interval
rules out the minimum effect) and a ``same`` claim hold; one lucky seed out
of three must leave the claim inconclusive rather than hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from textclf.analysis.compare import RunRecord, compare
from textclf.analysis.verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    epochs_to_threshold,
    judge,
    success_test,
    variant_outcomes,
    verdict,
)

N, LABELS = 400, ["neg", "pos"]
Y = np.random.default_rng(0).integers(0, 2, N)


def run(variant: str, seed: int, accuracy: float, solved_at: int | None = None) -> RunRecord:
    """A run that gets a random ``accuracy`` share of the test set right; validation reaches 0.95 at epoch ``solved_at``."""
    rng = np.random.default_rng([sum(map(ord, variant)), seed])
    right = rng.random(N) < accuracy
    pred = np.where(right, Y, 1 - Y).astype(np.int64)
    history = [
        {"epoch": e, "val_accuracy": 0.99 if solved_at is not None and e >= solved_at else 0.5} for e in range(1, 6)
    ]
    return RunRecord(
        variant=variant,
        seed=seed,
        kind="neural",
        y_true=Y,
        pred=pred,
        history=history,
        metrics={"val_accuracy": history[-1]["val_accuracy"]},
    )


def judged(records: list[RunRecord], claim: dict) -> dict:
    return judge(
        compare(records, "rnn", label_names=LABELS, n_boot=200), records, {"text": "t", "threshold": 0.95, **claim}
    )


def chance(variant: str = "rnn") -> list[RunRecord]:
    return [run(variant, s, 0.5) for s in (1, 2, 3)]


def test_better_holds_when_a_variant_solves_the_task_every_seed():
    records = chance() + [run("lstm", s, 0.99, solved_at=2 + s) for s in (1, 2, 3)]
    s = judged(records, {"better": ["lstm"]})
    assert s["verdict"] == HOLDS, s["verdict_reason"]
    lstm = s["variants"]["lstm"]
    assert lstm["success_rate"] == 1.0 and lstm["successes"] == 3
    # Epochs to threshold come from the validation history (epochs 3, 4, 5), not from test accuracy.
    assert lstm["epochs_to_threshold"] == {"mean": 4.0, "reached": 3, "seeds": 3}
    assert s["variants"]["rnn"]["success_rate"] == 0.0 and s["variants"]["rnn"]["epochs_to_threshold"]["reached"] == 0
    assert s["claim"] == "t" and s["verdict_rule"]


def test_better_fails_when_the_variant_is_a_copy_of_the_baseline():
    # A baseline that solves the task steadily: the copy's interval is narrow enough to rule out +2 points.
    base = [run("rnn", s, 0.99, solved_at=1) for s in (1, 2, 3)]
    copy = [
        RunRecord(variant="lstm", seed=r.seed, kind="neural", y_true=Y, pred=r.pred.copy(), history=r.history)
        for r in base
    ]
    s = judged(base + copy, {"better": ["lstm"], "min_effect": 0.02})
    assert s["verdict"] == FAILS, s["verdict_reason"]


def test_one_lucky_seed_is_inconclusive_not_a_win():
    records = chance() + [run("lstm", 1, 0.99, solved_at=2), run("lstm", 2, 0.5), run("lstm", 3, 0.5)]
    s = judged(records, {"better": ["lstm"]})
    assert s["verdict"] == INCONCLUSIVE, s["verdict_reason"]
    assert s["variants"]["lstm"]["successes"] == 1


def test_better_needs_as_many_successes_as_the_baseline():
    # The rule itself, on a stated summary: significantly more accurate on average but solving on fewer seeds is no hold.
    summary = {
        "alpha": 0.05,
        "baseline": "rnn",
        "variants": {"lstm": {"delta_accuracy": {"mean": 0.1, "ci_low": 0.05, "ci_high": 0.15, "p_value": 0.001}}},
    }
    fewer = {"lstm": {"successes": 1, "n_seeds": 3}, "rnn": {"successes": 2, "n_seeds": 3}}
    assert verdict(summary, fewer, {"better": ["lstm"]})[0] == INCONCLUSIVE
    as_many = {"lstm": {"successes": 2, "n_seeds": 3}, "rnn": {"successes": 2, "n_seeds": 3}}
    assert verdict(summary, as_many, {"better": ["lstm"]})[0] == HOLDS


def test_accuracy_claims_adjust_only_over_the_variants_they_name():
    # As listops: the claim names lstm-x2; the task also runs an unmatched lstm for context, far below the baseline.
    # The comparison table's Holm over both doubles lstm-x2's p (0.03 -> 0.06), the smaller of the two; the claim's own
    # family is lstm-x2 alone.
    delta = {"mean": 0.03, "ci_low": 0.001, "ci_high": 0.059}
    summary = {
        "alpha": 0.05,
        "baseline": "lstm-matched",
        "variants": {
            "lstm-x2": {"delta_accuracy": {**delta, "p_value": 0.03, "p_adjusted": 0.06}},
            "lstm": {
                "delta_accuracy": {"mean": -0.03, "ci_low": -0.09, "ci_high": 0.03, "p_value": 0.2, "p_adjusted": 0.2}
            },
        },
    }
    outcomes = {n: {"successes": 6, "n_seeds": 6} for n in ("lstm-x2", "lstm", "lstm-matched")}
    result, reason = verdict(summary, outcomes, {"better": ["lstm-x2"]})
    assert result == HOLDS and "adjusted p = 0.03;" in reason, reason
    # Two named variants are one family: each pays for the other.
    both = verdict(summary, outcomes, {"better": ["lstm-x2", "lstm"]})
    assert both[0] == INCONCLUSIVE and "lstm-x2: +3.0 points [+0.1, +5.9], adjusted p = 0.06;" in both[1], both[1]
    # A control is judged the same way: its named variant only.
    control = {
        "alpha": 0.05,
        "baseline": "lstm",
        "variants": {
            "lstm-reorder": {
                "delta_accuracy": {"mean": 0.02, "ci_low": 0.001, "ci_high": 0.04, "p_value": 0.04, "p_adjusted": 0.08}
            },
            "rnn": {
                "delta_accuracy": {"mean": -0.01, "ci_low": -0.05, "ci_high": 0.03, "p_value": 0.5, "p_adjusted": 0.5}
            },
        },
    }
    assert (
        verdict(
            control, outcomes | {"lstm-reorder": outcomes["lstm"], "rnn": outcomes["lstm"]}, {"same": ["lstm-reorder"]}
        )[0]
        == FAILS
    )


def test_same_holds_for_a_copy_and_fails_for_a_real_difference():
    base = chance()
    copy = [
        RunRecord(variant="gru", seed=r.seed, kind="neural", y_true=Y, pred=r.pred.copy(), history=r.history)
        for r in base
    ]
    assert judged(base + copy, {"same": ["gru"]})["verdict"] == HOLDS
    better = [run("gru", s, 0.9) for s in (1, 2, 3)]
    s = judged(base + better, {"same": ["gru"]})
    assert s["verdict"] == FAILS and "gru differs from rnn" in s["verdict_reason"]


def test_outcomes_accept_proba_only_records_and_reject_empty_ones():
    r = run("lstm", 1, 0.99)
    proba = np.eye(2)[r.pred]
    with_proba = RunRecord(variant="lstm", seed=1, kind="neural", y_true=Y, proba=proba, history=r.history)
    assert variant_outcomes([with_proba], 0.95) == variant_outcomes([r], 0.95)
    empty = RunRecord(variant="lstm", seed=1, kind="neural", y_true=Y, history=r.history)
    with pytest.raises(ValueError, match="lstm/seed 1: has neither pred nor proba"):
        variant_outcomes([empty], 0.95)


def test_epochs_to_threshold_is_the_first_validation_epoch_at_or_above_it():
    history = [
        {"epoch": 1, "val_accuracy": 0.6},
        {"epoch": 2, "val_accuracy": None},
        {"epoch": 3, "val_accuracy": 0.95},
    ]
    assert epochs_to_threshold(history, 0.95) == 3
    assert epochs_to_threshold(history, 0.96) is None


# --------------------------------------------------------------------------
# measure: successes (bimodal tasks)
# --------------------------------------------------------------------------
def bimodal(variant: str, solved: list[bool]) -> list[RunRecord]:
    """Seeds 1..n of a variant that solves the task (99%) on the seeds marked True and stays at chance on the others."""
    return [run(variant, s, 0.99 if ok else 0.5, solved_at=2 if ok else None) for s, ok in enumerate(solved, 1)]


def test_successes_decide_bimodal_claims_the_accuracy_t_test_cannot():
    # As long-range-400 looked: the baseline never solves the task but its accuracy spreads from chance to halfway
    # (10-class chance is 10%), the variant solves it on every seed. With 3 seeds the seed-level t test (2 degrees of
    # freedom) cannot decide a +57-point gap; the success counts, 3 of 3 against 0 of 3, can.
    records = [run("rnn", s, a) for s, a in ((1, 0.12), (2, 0.6), (3, 0.5))] + bimodal("lstm", [True] * 3)
    by_accuracy = judged(records, {"better": ["lstm"]})
    by_successes = judged(records, {"better": ["lstm"], "measure": "successes"})
    assert by_successes["verdict"] == HOLDS, by_successes["verdict_reason"]
    assert "3/3 vs 0/3" in by_successes["verdict_reason"] and by_successes["measure"] == "successes"
    assert by_accuracy["verdict"] == INCONCLUSIVE, by_accuracy["verdict_reason"]


def test_successes_claim_is_inconclusive_on_a_small_edge_and_fails_when_reversed():
    edge = bimodal("rnn", [True, False, False]) + bimodal("lstm", [True, True, True])  # 3/3 vs 1/3: p = 0.079
    assert judged(edge, {"better": ["lstm"], "measure": "successes"})["verdict"] == INCONCLUSIVE
    reversed_ = bimodal("rnn", [True] * 6) + bimodal("lstm", [False] * 6)
    s = judged(reversed_, {"better": ["lstm"], "measure": "successes"})
    assert s["verdict"] == FAILS, s["verdict_reason"]


def test_successes_control_fails_on_a_real_difference_and_says_nothing_when_nothing_was_learned():
    diff = bimodal("rnn", [True] * 6) + bimodal("gru", [False] * 6)
    s = judged(diff, {"same": ["gru"], "measure": "successes"})
    assert s["verdict"] == FAILS and "6/6" in s["verdict_reason"], s["verdict_reason"]
    agree = bimodal("rnn", [True, True, False, True, False, True]) + bimodal(
        "gru", [True, False, True, True, True, False]
    )
    assert judged(agree, {"same": ["gru"], "measure": "successes"})["verdict"] == HOLDS
    nothing = bimodal("rnn", [False] * 3) + bimodal("gru", [False] * 3)
    s = judged(nothing, {"same": ["gru"], "measure": "successes"})
    assert s["verdict"] == INCONCLUSIVE and "no variant reached" in s["verdict_reason"]


def _binomial(n: int, p: float) -> np.ndarray:
    from scipy.stats import binom

    return binom.pmf(np.arange(n + 1), n, p)


@pytest.mark.parametrize("seeds", [3, 5, 6])
def test_success_test_false_positive_rate_is_at_most_alpha_for_every_success_probability(seeds):
    # Calibration, computed exactly rather than simulated: under the null both sides succeed with the same probability,
    # so the false-positive rate is the binomial mass of every (k_a, k_b) the test rejects. It must stay <= alpha for
    # every probability (a nuisance parameter the test does not know), one-sided and two-sided.
    p_values = {
        alt: np.array([[success_test(a, seeds, b, seeds, alt) for b in range(seeds + 1)] for a in range(seeds + 1)])
        for alt in ("greater", "two-sided")
    }
    worst = {}
    for alt, pv in p_values.items():
        for prob in np.linspace(0.02, 0.98, 49):
            w = _binomial(seeds, prob)
            fpr = float((np.outer(w, w) * (pv < 0.05)).sum())
            worst[alt] = max(worst.get(alt, 0.0), fpr)
    assert worst["greater"] <= 0.05 + 1e-9 and worst["two-sided"] <= 0.05 + 1e-9, worst
    # ...and it is not vacuous: the extreme table rejects, so the rate is above zero somewhere.
    assert worst["greater"] > 0.005


def test_success_test_power_and_known_values():
    assert success_test(3, 3, 0, 3) == pytest.approx(0.015625)  # the smallest p 3 seeds can give
    assert success_test(3, 3, 1, 3) > 0.05  # 3/3 vs 1/3 cannot be told apart with 3 seeds
    assert success_test(6, 6, 1, 6) < 0.01
    assert success_test(0, 3, 0, 3) == 1.0 and success_test(3, 3, 3, 3) == 1.0
    assert success_test(0, 3, 3, 3, "less") == pytest.approx(0.015625)
    # Power at 6 seeds when the variant solves 90% of seeds and the baseline 20%, computed exactly.
    pv = np.array([[success_test(a, 6, b, 6) for b in range(7)] for a in range(7)])
    assert float((np.outer(_binomial(6, 0.9), _binomial(6, 0.2)) * (pv < 0.05)).sum()) > 0.75


@pytest.mark.parametrize(
    "args, names", [((4, 3, 0, 3), "variant"), ((0, 3, -1, 3), "baseline"), ((1, 0, 0, 3), "variant")]
)
def test_success_test_bad_input_names_the_side(args, names):
    with pytest.raises(ValueError, match=names):
        success_test(*args)


def test_a_judged_summary_keeps_its_seed_lists_and_writes_its_report(tmp_path):
    # Per-variant outcomes are merged into the comparison's variant rows: they must not overwrite what the report reads.
    from textclf.analysis.report import write_report

    records = bimodal("rnn", [False, False, True]) + bimodal("lstm", [True, True, True])
    s = judged(records, {"better": ["lstm"], "measure": "successes"})
    assert s["variants"]["lstm"]["seeds"] == [1, 2, 3] and s["variants"]["lstm"]["n_seeds"] == 3
    write_report(s, records, tmp_path, title="t")
    report = (tmp_path / "report.md").read_text()
    assert f"**Verdict: {s['verdict']}**" in report and "*Measure:* successes (success: test accuracy ≥ 0.95)" in report


def test_a_success_count_verdict_prints_only_textclf_lines(capfd):
    # scipy's Boschloo test logs every optimiser bound through the root logger at INFO: dozens of
    # "[[np.float64(0.0), np.float64(1.0)]]" lines per diagnostics task, until the CLI's handler kept
    # other libraries' records below WARNING out. Its own INFO lines and every WARNING still show.
    import logging

    from textclf.analysis.verdicts import success_test
    from textclf.core.logs import setup_logging

    setup_logging()
    capfd.readouterr()
    assert success_test(8, 8, 6, 8) < 1
    logging.getLogger("textclf.analysis").info("ours")
    logging.getLogger("somelib").warning("theirs, a warning")
    logging.info("theirs, through the root logger")
    err = capfd.readouterr().err
    assert "np.float64" not in err and "through the root logger" not in err
    assert "INFO ours" in err and "WARNING theirs, a warning" in err
