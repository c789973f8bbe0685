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

Each claim names its **measure** in advance, as a pre-registered primary
endpoint (``claim.measure``), because the two kinds of task need different
tests:

* ``accuracy`` (default; tasks whose accuracy varies smoothly across seeds,
  e.g. listops, the null control): the calibrated paired t test of
  :mod:`textclf.analysis.stats` on test accuracy, Holm-adjusted across the
  listed variants. The family is the claim's own comparisons, as for
  ``successes``: a task may run variants the claim does not name (listops'
  unmatched ``lstm``, shown for context), and the comparison table's Holm
  adjustment over every variant would make the claim pay for them.
* ``successes`` (tasks solved on some seeds and at chance on others, e.g.
  long-range, ends, order): with bimodal outcomes a t test on a handful of
  seeds has an interval spanning ±100 points and can never decide, while the
  count of solving seeds is exactly what varies. The test is Boschloo's exact
  test on the two success counts (seeds are independent trainings, so each
  count is binomial), Holm-adjusted across the listed variants. Its false
  positive rate is at most alpha for every success probability
  (``tests/test_verdicts.py`` enumerates it exactly), and 3 seeds suffice
  only for the extreme 3-of-3 vs 0-of-3 (one-sided p = 0.016).

Everything the verdict depends on is fixed in the pipeline file before the
runs: ``measure``, ``threshold``, ``min_effect``, ``seeds`` (the seeds the
claim is judged on; a run on other seeds is labelled exploratory), ``alpha``
and ``alternative``. ``judge`` hashes them into ``claims_fingerprint``, which
the report prints, so a reader can check the claim was not changed after
the results were seen. ``alternative: two-sided`` (default) decides
``better`` at a one-sided alpha / 2 on both measures: for accuracy that is
the two-sided t test with the sign required, and the success-count test now
uses the same one-sided level (it used alpha, twice the accuracy rule's);
``one-sided`` decides both at a one-sided alpha. A ``better`` claim names one
variant, or sets ``require: all`` to claim that every named variant beats
the baseline (an intersection-union test: each at the claim's level, no
multiplicity adjustment needed, and it does not hold as soon as one is
refuted). The older "at least one of several" rule gave a claim as many
chances as it named variants; it is kept only for verdicts computed from a
plain dict without ``require``.

The rule, applied by the tool and written into the report (``RULE``):

* ``better``: the claim **holds** when at least one listed variant beats the
  baseline on the claim's measure with a Holm-adjusted p below alpha (for
  ``accuracy``, also succeeding on at least as many seeds); it **does not
  hold** when every listed variant is refuted: its accuracy interval rules
  out an advantage of ``min_effect`` or more, or (``successes``) the
  baseline succeeds significantly more often; otherwise it is
  **inconclusive** (the data cannot tell, e.g. too few seeds for the spread).
* ``same``: the claim **holds** when no listed variant differs significantly
  from the baseline on the measure, and **does not hold** when one does; a
  ``successes`` control that no variant solved on any seed is
  **inconclusive** (nothing was learned, so agreeing says nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
RULE = (
    "Each claim fixes its measure, threshold, min_effect, seeds, alpha and sidedness in advance (claims_fingerprint). "
    "A claim that a variant beats the baseline (or, with require: all, that every named variant does) is decided at a "
    "one-sided alpha/2 on both measures unless it says alternative: one-sided. With several named variants and no "
    "require: all, it holds when at least one of them is "
    "better with a p < alpha on that measure, Holm-adjusted over the variants the claim names: test accuracy (paired t with test-example and seed variance; "
    "the variant must also succeed on at least as many seeds) or successes (seeds whose test accuracy reaches the task's "
    "threshold; Boschloo's exact test, one-sided). It does not hold when every one is refuted: its 95% accuracy interval "
    "excludes an advantage of min_effect or more, or the baseline succeeds significantly more often; otherwise it is "
    "inconclusive. A claim that variants do not differ (a control) holds when none differs significantly on the measure "
    "(two-sided) and does not hold when one does; a successes control solved on no seed is inconclusive."
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
            "n_seeds": len(recs),
            "epochs_to_threshold": {
                "mean": float(np.mean(reached)) if reached else None,
                "reached": len(reached),
                "seeds": len(recs),
            },
        }
    return out


def success_test(
    k_variant: int, n_variant: int, k_baseline: int, n_baseline: int, alternative: str = "greater"
) -> float:
    """p-value of Boschloo's exact test that the variant's success probability is greater than
    (``"greater"``), less than (``"less"``) or different from (``"two-sided"``) the baseline's,
    from ``k`` solving seeds out of ``n`` on each side. Equal counts on a side that is all
    successes or all failures carry no evidence: p = 1."""
    from scipy.stats import boschloo_exact

    for name, k, n in (("variant", k_variant, n_variant), ("baseline", k_baseline, n_baseline)):
        if not (isinstance(n, (int, np.integer)) and n >= 1 and isinstance(k, (int, np.integer)) and 0 <= k <= n):
            raise ValueError(f"success_test: the {name} needs 0 <= successes <= seeds and seeds >= 1, got {k} of {n}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"success_test: alternative must be greater, less or two-sided, got {alternative!r}")
    if k_variant + k_baseline in (
        0,
        n_variant + n_baseline,
    ):  # a column of zeros: the test is undefined and nothing differs
        return 1.0
    table = [[int(k_variant), int(k_baseline)], [int(n_variant - k_variant), int(n_baseline - k_baseline)]]
    return float(min(1.0, boschloo_exact(table, alternative=alternative).pvalue))


def _success_p(
    outcomes: dict[str, dict[str, Any]], names: Sequence[str], baseline: str, alternative: str
) -> dict[str, float]:
    """Holm-adjusted success-count p-values of ``names`` against ``baseline``."""
    from textclf.analysis.stats import holm

    b = outcomes[baseline]
    raw = [
        success_test(outcomes[n]["successes"], outcomes[n]["n_seeds"], b["successes"], b["n_seeds"], alternative)
        for n in names
    ]
    return dict(zip(names, holm(raw)))


def _accuracy_p(variants: dict[str, Any], names: Sequence[str]) -> dict[str, float]:
    """Holm-adjusted accuracy p-values of ``names`` against the baseline, over these names only (1.0 where untested)."""
    from textclf.analysis.stats import holm

    raw = [(variants[n].get("delta_accuracy") or {}).get("p_value") for n in names]
    return {n: 1.0 if p is None else p for n, p in zip(names, holm(raw))}


def _counts(outcomes: dict[str, dict[str, Any]], name: str, baseline: str) -> str:
    return f"successes {outcomes[name]['successes']}/{outcomes[name]['n_seeds']} vs {outcomes[baseline]['successes']}/{outcomes[baseline]['n_seeds']}"


def _interval(d: dict[str, Any]) -> str:
    return f"{100 * d['mean']:+.1f} points [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"


def claims_fingerprint(claims: Any) -> str:
    """sha256 (first 16 hex digits) of the claim specification(s), canonical JSON: what was fixed before the runs."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(claims, sort_keys=True, default=str).encode()).hexdigest()[:16]


def verdict(summary: dict[str, Any], outcomes: dict[str, dict[str, Any]], claim: dict[str, Any]) -> tuple[str, str]:
    """(verdict, reason) for ``claim`` ({"better": [...]} or {"same": [...]}, "measure", "min_effect", "alpha",
    "alternative", "require") on a task's summary."""
    alpha = claim.get("alpha") or summary.get("alpha", 0.05)
    # One-sided level of a "better" decision: alpha / 2 (two-sided, the default), or alpha (one-sided).
    one_sided = alpha if claim.get("alternative") == "one-sided" else alpha / 2
    if claim.get("better") and claim.get("require") == "all":
        return _verdict_all(summary, outcomes, claim, alpha, one_sided)
    baseline = summary["baseline"]
    variants = summary["variants"]
    measure = claim.get("measure") or "accuracy"
    if measure not in ("accuracy", "successes"):
        raise ValueError(f"claim.measure must be accuracy or successes, got {measure!r}")
    if claim.get("same"):
        names = list(claim["same"])
        if measure == "successes":
            if all(outcomes[n]["successes"] == 0 for n in [baseline, *names]):
                return (
                    INCONCLUSIVE,
                    f"no variant reached the threshold on any seed, so agreeing says nothing ({_counts(outcomes, names[0], baseline)})",
                )
            p = _success_p(outcomes, names, baseline, "two-sided")
            differing = [n for n in names if p[n] < alpha]
            if differing:
                n = differing[0]
                return FAILS, f"{n} differs from {baseline}: {_counts(outcomes, n, baseline)}, adjusted p = {p[n]:.3g}"
            return HOLDS, "no variant differs significantly from " + baseline + ": " + "; ".join(
                f"{n} {_counts(outcomes, n, baseline)}, adjusted p = {p[n]:.3g}" for n in names
            )
        p = _accuracy_p(variants, names)
        differing = [n for n in names if p[n] < alpha]
        if differing:
            d = variants[differing[0]]["delta_accuracy"]
            return (
                FAILS,
                f"{differing[0]} differs from {baseline} by {100 * d['mean']:+.1f} points (adjusted p = {p[differing[0]]:.3g})",
            )
        return HOLDS, f"no variant differs significantly from {baseline}"
    min_effect = float(claim.get("min_effect", 0.02))
    names = list(claim["better"])
    if measure == "successes":
        more, fewer = _success_p(outcomes, names, baseline, "greater"), _success_p(outcomes, names, baseline, "less")
    else:
        p = _accuracy_p(variants, names)
    reasons, refuted = [], 0
    for name in names:
        d = variants[name]["delta_accuracy"]
        if measure == "successes":
            if more[name] < one_sided and d["mean"] > 0:
                return HOLDS, (
                    f"{name} beats {baseline}: {_counts(outcomes, name, baseline)}, adjusted p = {more[name]:.3g} "
                    f"(Boschloo); accuracy {_interval(d)}"
                )
            if d["ci_high"] < min_effect or fewer[name] < one_sided:
                refuted += 1
            reasons.append(
                f"{name}: {_counts(outcomes, name, baseline)}, adjusted p = {more[name]:.3g}; accuracy {_interval(d)}"
            )
            continue
        wins = outcomes[name]["successes"] >= outcomes[baseline]["successes"]
        if d["mean"] > 0 and p[name] < 2 * one_sided and wins:
            return (
                HOLDS,
                f"{name} beats {baseline} by {_interval(d)}, adjusted p = {p[name]:.3g}; {_counts(outcomes, name, baseline)}",
            )
        if d["ci_high"] < min_effect:
            refuted += 1
            reasons.append(
                f"{name}: {100 * d['mean']:+.1f} points, interval up to {100 * d['ci_high']:+.1f} < {100 * min_effect:.0f}"
            )
        else:
            reasons.append(f"{name}: {_interval(d)}, adjusted p = {p[name]:.3g}")
    if refuted == len(names):
        return FAILS, "; ".join(reasons)
    return INCONCLUSIVE, "; ".join(reasons)


def _verdict_all(summary, outcomes, claim, alpha: float, one_sided: float) -> tuple[str, str]:
    """``require: all``: holds when every named variant beats the baseline at the claim's level (no adjustment: an
    intersection-union test), does not hold when any one is refuted, else inconclusive."""
    baseline, variants = summary["baseline"], summary["variants"]
    measure = claim.get("measure") or "accuracy"
    min_effect = float(claim.get("min_effect", 0.02))
    beats, refuted, reasons = [], [], []
    for name in claim["better"]:
        d = variants[name]["delta_accuracy"]
        b, k = outcomes[baseline], outcomes[name]
        if measure == "successes":
            more = success_test(k["successes"], k["n_seeds"], b["successes"], b["n_seeds"], "greater")
            fewer = success_test(k["successes"], k["n_seeds"], b["successes"], b["n_seeds"], "less")
            ok, no = more < one_sided and d["mean"] > 0, d["ci_high"] < min_effect or fewer < one_sided
            reasons.append(
                f"{name}: {_counts(outcomes, name, baseline)}, p = {more:.3g} (Boschloo, one-sided); accuracy {_interval(d)}"
            )
        else:
            p = d.get("p_value")
            ok = p is not None and p < 2 * one_sided and d["mean"] > 0 and k["successes"] >= b["successes"]
            no = d["ci_high"] < min_effect
            reasons.append(f"{name}: {_interval(d)}, p = {'n/a' if p is None else f'{p:.3g}'}")
        (beats if ok else refuted if no else []).append(name)
    if len(beats) == len(claim["better"]):
        return HOLDS, f"every named variant beats {baseline}: " + "; ".join(reasons)
    if refuted:
        return FAILS, f"{', '.join(refuted)} does not beat {baseline} (every named variant must): " + "; ".join(reasons)
    return INCONCLUSIVE, "; ".join(reasons)


def judge(summary: dict[str, Any], records: Sequence[Any], claim: dict[str, Any]) -> dict[str, Any]:
    """Add the claim, the per-variant outcomes and the verdict to a task's summary; returns the summary.

    ``claims_fingerprint`` hashes the claim as specified; where it fixes
    ``seeds`` and the runs used others, the verdict is labelled exploratory.
    """
    threshold = float(claim.get("threshold", 0.95))
    outcomes = variant_outcomes(records, threshold)
    for name, o in outcomes.items():
        summary["variants"][name].update(o)
    result, reason = verdict(summary, outcomes, claim)
    run_seeds = sorted({int(r.seed) for r in records})
    planned = claim.get("seeds")
    if planned is not None and sorted(planned) != run_seeds:
        reason = f"exploratory: judged on seeds {run_seeds}, the claim fixed seeds {sorted(planned)}; {reason}"
    summary.update(
        claim=claim["text"],
        verdict=result,
        verdict_reason=reason,
        verdict_rule=RULE,
        threshold=threshold,
        measure=claim.get("measure") or "accuracy",
        claim_spec=dict(claim),
        claims_fingerprint=claims_fingerprint(claim),
        claim_seeds_match=planned is None or sorted(planned) == run_seeds,
    )
    return summary


def per_slice(summary: dict[str, Any], column: str) -> list[dict[str, Any]]:
    """Accuracy of every variant per value of a slice column (e.g. listops depth): [{value, n, <variant>: acc}]."""
    rows: dict[str, dict[str, Any]] = {}
    for name, v in summary["variants"].items():
        for r in (v.get("slices") or {}).get(column, []):
            row = rows.setdefault(r["value"], {"value": r["value"], "n": r["n"]})
            row[name] = r["accuracy"]
    return list(rows.values())
