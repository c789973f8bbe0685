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
from textclf.analysis.verdicts import FAILS, HOLDS, INCONCLUSIVE, epochs_to_threshold, judge, variant_outcomes, verdict

N, LABELS = 400, ["neg", "pos"]
Y = np.random.default_rng(0).integers(0, 2, N)


def run(variant: str, seed: int, accuracy: float, solved_at: int | None = None) -> RunRecord:
    """A run that gets a random ``accuracy`` share of the test set right; validation reaches 0.95 at epoch ``solved_at``."""
    rng = np.random.default_rng([sum(map(ord, variant)), seed])
    right = rng.random(N) < accuracy
    pred = np.where(right, Y, 1 - Y).astype(np.int64)
    history = [{"epoch": e, "val_accuracy": 0.99 if solved_at is not None and e >= solved_at else 0.5} for e in range(1, 6)]
    return RunRecord(variant=variant, seed=seed, kind="neural", y_true=Y, pred=pred, history=history,
                     metrics={"val_accuracy": history[-1]["val_accuracy"]})


def judged(records: list[RunRecord], claim: dict) -> dict:
    return judge(compare(records, "rnn", label_names=LABELS, n_boot=200), records, {"text": "t", "threshold": 0.95, **claim})


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
    copy = [RunRecord(variant="lstm", seed=r.seed, kind="neural", y_true=Y, pred=r.pred.copy(), history=r.history) for r in base]
    s = judged(base + copy, {"better": ["lstm"], "min_effect": 0.02})
    assert s["verdict"] == FAILS, s["verdict_reason"]


def test_one_lucky_seed_is_inconclusive_not_a_win():
    records = chance() + [run("lstm", 1, 0.99, solved_at=2), run("lstm", 2, 0.5), run("lstm", 3, 0.5)]
    s = judged(records, {"better": ["lstm"]})
    assert s["verdict"] == INCONCLUSIVE, s["verdict_reason"]
    assert s["variants"]["lstm"]["successes"] == 1


def test_better_needs_as_many_successes_as_the_baseline():
    # The rule itself, on a stated summary: significantly more accurate on average but solving on fewer seeds is no hold.
    summary = {"alpha": 0.05, "baseline": "rnn",
               "variants": {"lstm": {"delta_accuracy": {"mean": 0.1, "ci_low": 0.05, "ci_high": 0.15, "p_adjusted": 0.001}}}}
    seeds = {"seeds": 3}
    fewer = {"lstm": {"successes": 1, "epochs_to_threshold": seeds}, "rnn": {"successes": 2, "epochs_to_threshold": seeds}}
    assert verdict(summary, fewer, {"better": ["lstm"]})[0] == INCONCLUSIVE
    as_many = {"lstm": {"successes": 2, "epochs_to_threshold": seeds}, "rnn": {"successes": 2, "epochs_to_threshold": seeds}}
    assert verdict(summary, as_many, {"better": ["lstm"]})[0] == HOLDS


def test_same_holds_for_a_copy_and_fails_for_a_real_difference():
    base = chance()
    copy = [RunRecord(variant="gru", seed=r.seed, kind="neural", y_true=Y, pred=r.pred.copy(), history=r.history) for r in base]
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
    history = [{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": None}, {"epoch": 3, "val_accuracy": 0.95}]
    assert epochs_to_threshold(history, 0.95) == 3
    assert epochs_to_threshold(history, 0.96) is None
