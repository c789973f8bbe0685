"""Verdicts on diagnostic claims: does the textbook claim a task tests hold on the runs, by a stated rule?

A diagnostic task states one claim, e.g. "an LSTM keeps a token across 200
distractors that a tanh RNN forgets", as variants expected to beat the
task's baseline (``better``), or as variants expected not to differ from it
(``same``: a negative control). Outcomes of such tasks are bimodal across
seeds (a run solves the task or stays near chance), so besides the mean
accuracy each variant gets a **success rate** (share of seeds whose test
accuracy reaches the task's threshold) and the **epochs to threshold**
(first epoch whose validation accuracy reaches it; validation, since test
data decides nothing).

The rule, applied by the tool and written into the report (``RULE``):

* ``better``: the claim **holds** when at least one listed variant beats the
  baseline with a Holm-adjusted p below alpha (the calibrated paired test of
  :mod:`textclf.analysis.stats`) *and* succeeds on at least as many seeds; it
  **does not hold** when every listed variant's interval rules out an
  advantage of ``min_effect`` or more (upper bound below it); otherwise it is
  **inconclusive** (the data cannot tell, e.g. too few seeds for the spread).
* ``same``: the claim **holds** when no listed variant differs significantly
  from the baseline, and **does not hold** when one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
RULE = (
    "A claim that variants beat the baseline holds when at least one of them is better with a Holm-adjusted p < alpha "
    "(paired t with test-example and seed variance) and succeeds on at least as many seeds (test accuracy >= the task's "
    "threshold); it does not hold when every one's 95% interval excludes an advantage of min_effect or more; otherwise "
    "it is inconclusive. A claim that variants do not differ (a negative control) holds when none differs significantly "
    "and does not hold when one does."
)


def epochs_to_threshold(history: Sequence[dict[str, Any]], threshold: float) -> int | None:
    """First epoch whose validation accuracy reaches ``threshold`` (None if none does)."""
    for row in history:
        if row.get("val_accuracy") is not None and row["val_accuracy"] >= threshold:
            return int(row["epoch"])
    return None


def _predictions(record: Any) -> np.ndarray:
    """Predicted classes of a run: ``pred`` when it carries them (runs with many classes keep only these), else argmax of ``proba``."""
    if record.pred is not None:
        return np.asarray(record.pred)
    if record.proba is None:
        raise ValueError(f"record {record.variant}/seed {record.seed}: has neither pred nor proba")
    return np.asarray(record.proba).argmax(1)


def variant_outcomes(records: Sequence[Any], threshold: float) -> dict[str, dict[str, Any]]:
    """Per variant: success rate over seeds, and epochs to threshold (mean over the seeds that reached it)."""
    by_variant: dict[str, list[Any]] = {}
    for r in records:
        by_variant.setdefault(r.variant, []).append(r)
    out = {}
    for name, recs in by_variant.items():
        accs = [float(np.mean(_predictions(r) == np.asarray(r.y_true))) for r in recs]
        epochs = [epochs_to_threshold(r.history, threshold) for r in recs]
        reached = [e for e in epochs if e is not None]
        out[name] = {
            "success_rate": sum(a >= threshold for a in accs) / len(accs),
            "successes": int(sum(a >= threshold for a in accs)),
            "epochs_to_threshold": {"mean": float(np.mean(reached)) if reached else None, "reached": len(reached), "seeds": len(recs)},
        }
    return out


def verdict(summary: dict[str, Any], outcomes: dict[str, dict[str, Any]], claim: dict[str, Any]) -> tuple[str, str]:
    """(verdict, reason) for ``claim`` ({"better": [...]} or {"same": [...]}, "min_effect") on a task's summary."""
    alpha = summary.get("alpha", 0.05)
    baseline = summary["baseline"]
    variants = summary["variants"]
    if claim.get("same"):
        differing = [n for n in claim["same"] if (variants[n]["delta_accuracy"] or {}).get("p_adjusted", 1.0) < alpha]
        if differing:
            d = variants[differing[0]]["delta_accuracy"]
            return FAILS, f"{differing[0]} differs from {baseline} by {100 * d['mean']:+.1f} points (adjusted p = {d['p_adjusted']:.3g})"
        return HOLDS, f"no variant differs significantly from {baseline}"
    min_effect = float(claim.get("min_effect", 0.02))
    reasons, refuted = [], 0
    for name in claim["better"]:
        d = variants[name]["delta_accuracy"]
        wins = outcomes[name]["successes"] >= outcomes[baseline]["successes"]
        if d["mean"] > 0 and d["p_adjusted"] < alpha and wins:
            return HOLDS, (
                f"{name} beats {baseline} by {100 * d['mean']:+.1f} points [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}], "
                f"adjusted p = {d['p_adjusted']:.3g}; successes {outcomes[name]['successes']} vs {outcomes[baseline]['successes']} "
                f"of {outcomes[name]['epochs_to_threshold']['seeds']}"
            )
        if d["ci_high"] < min_effect:
            refuted += 1
            reasons.append(f"{name}: {100 * d['mean']:+.1f} points, interval up to {100 * d['ci_high']:+.1f} < {100 * min_effect:.0f}")
        else:
            reasons.append(f"{name}: {100 * d['mean']:+.1f} points [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}], adjusted p = {d['p_adjusted']:.3g}")
    if refuted == len(claim["better"]):
        return FAILS, "; ".join(reasons)
    return INCONCLUSIVE, "; ".join(reasons)


def judge(summary: dict[str, Any], records: Sequence[Any], claim: dict[str, Any]) -> dict[str, Any]:
    """Add the claim, the per-variant outcomes and the verdict to a task's summary; returns the summary."""
    threshold = float(claim.get("threshold", 0.95))
    outcomes = variant_outcomes(records, threshold)
    for name, o in outcomes.items():
        summary["variants"][name].update(o)
    result, reason = verdict(summary, outcomes, claim)
    summary.update(claim=claim["text"], verdict=result, verdict_reason=reason, verdict_rule=RULE, threshold=threshold)
    return summary


def per_slice(summary: dict[str, Any], column: str) -> list[dict[str, Any]]:
    """Accuracy of every variant per value of a slice column (e.g. listops depth): [{value, n, <variant>: acc}]."""
    rows: dict[str, dict[str, Any]] = {}
    for name, v in summary["variants"].items():
        for r in (v.get("slices") or {}).get(column, []):
            row = rows.setdefault(r["value"], {"value": r["value"], "n": r["n"]})
            row[name] = r["accuracy"]
    return list(rows.values())
