"""The comparison: every variant × seed run summarised, tested against the baseline, and sliced.

The pipeline trains each variant under several seeds and scores all of them
on the same test set. :func:`compare` turns those runs into one
JSON-serialisable summary:

* per variant, mean ± seed sd of every comparison metric (``compare=True`` in
  :data:`textclf.core.metrics.METRICS`: accuracy, macro-F1 and any registered
  one; recomputed here from each run's test predictions with the registered
  function), of their validation values and of the cost metrics, and the
  parameter count;
* per variant and metric, the difference from the baseline by the metric's
  registered test (:data:`textclf.analysis.contrasts.STAT_TESTS`; accuracy:
  :mod:`textclf.analysis.stats`, paired over test examples with each
  variant's seed-to-seed variance; macro-F1: the bootstrap of
  :mod:`textclf.analysis.metric_stats`), whose intervals and p-values hold
  their nominal rate with few seeds, and Holm-adjusted p-values across the
  variants compared with the one baseline;
* *where* a variant differs: accuracy per text-length quintile (and per value
  of any ``data.slice_columns``) beside the baseline's, and the test texts it
  gets right and the baseline wrong, and the reverse (majority vote over seeds);
* the best variant, chosen on **validation** data (mean over seeds of the
  early-stopping metric); test data decides nothing.
* the answer to the questions the comparison was run for
  (:mod:`textclf.analysis.contrasts`): ``contrasts`` (what depth, direction
  and cell buy, main effects and interaction of a 2x2, every variant against
  the baseline, or the pipeline's own), each with a verdict on the
  ``primary_metric`` (the selection metric), its mde and cost ratios;
  ``secondary_contrasts`` (the other metric, intervals only);
  ``contrast_details``; ``answer`` (one sentence per contrast); ``dominated``.
  Deltas, intervals, mde and ``sesoi`` are fractions like every other
  accuracy-like figure here; the sentences speak in points.

:mod:`textclf.analysis.report` shows the summary. All accuracy-like
quantities are fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textclf.analysis.slices import column_slices

__all__ = ["RunRecord", "compare"]

# Run metrics summarised as {"mean", "sd"} over seeds, taken from RunRecord.metrics (after val_<metric>
# of every comparison metric).
COST_METRICS = (
    "train_seconds",
    "tokens_per_second",
    "latency_p50_ms",
    "latency_p95_ms",
    "texts_per_s_b256",
    "generalization_gap",
)
MAX_EXAMPLES = 10  # disagreement examples kept per direction and variant
N_LENGTH_SLICES = 5


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


# --------------------------------------------------------------------------- validation and grouping


def _test_set(records: Sequence[RunRecord], n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Check every record was scored on the same test set; return (y, preds (R, N), C)."""
    y = np.asarray(records[0].y_true)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array, got shape {y.shape}")
    y = y.astype(np.int64)
    preds = np.empty((len(records), y.size), dtype=np.int64)
    for i, rec in enumerate(records):
        other = np.asarray(rec.y_true)
        # Paired comparison only makes sense if example i is the same example in every run.
        if other.shape != y.shape or not np.array_equal(other.astype(np.int64), y):
            raise ValueError(
                f"record {rec.variant}/seed {rec.seed} was scored on a different test set "
                "(y_true differs); every record must use the same examples in the same order"
            )
        if rec.pred is not None:
            pred = np.asarray(rec.pred)
            if pred.shape != y.shape or not np.issubdtype(pred.dtype, np.integer):
                raise ValueError(
                    f"record {rec.variant}/seed {rec.seed}: pred has shape {pred.shape} ({pred.dtype}), expected ({y.size},) integers"
                )
            if n_classes is None:
                raise ValueError(
                    f"record {rec.variant}/seed {rec.seed}: pass label_names (or proba) so the number of classes is known"
                )
            preds[i] = pred
            continue
        if rec.proba is None:
            raise ValueError(f"record {rec.variant}/seed {rec.seed}: has neither pred nor proba")
        proba = np.asarray(rec.proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != y.size:
            raise ValueError(
                f"record {rec.variant}/seed {rec.seed}: proba has shape {proba.shape}, expected ({y.size}, C)"
            )
        if n_classes is None:
            n_classes = proba.shape[1]
        if proba.shape[1] != n_classes:
            raise ValueError(
                f"record {rec.variant}/seed {rec.seed}: proba has {proba.shape[1]} columns, expected {n_classes}"
            )
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


# --------------------------------------------------------------------------- small helpers


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
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}


def _delta(result: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's view of a paired comparison (``mean`` is the difference of seed means).

    The interval is cut to the possible range, [-1, 1], and flagged ``uninformative``
    when it had to be cut or spans half that range (:func:`textclf.analysis.stats.clip_interval`).
    """
    from textclf.analysis.stats import clip_interval

    low, high, uninformative = clip_interval(_num(result["ci_low"]), _num(result["ci_high"]))
    return {
        "mean": _num(result["delta"]),
        "ci_low": low,
        "ci_high": high,
        "uninformative": uninformative,
        "p_value": _num(result["p_value"]),
        "p_adjusted": None,  # filled in by Holm across the variants
        "se": _num(result["se"]),
        "df": _num(result["df"]),
        "seed_variance": bool(result["seed_variance"]),
    }


# --------------------------------------------------------------------------- where a variant differs


def length_bins(lengths: np.ndarray, n_bins: int = N_LENGTH_SLICES) -> list[np.ndarray]:
    """Index arrays of the length quintiles (bins merge where lengths tie at an edge)."""
    lengths = np.asarray(lengths)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:-1], method="lower"))
    which = np.searchsorted(edges, lengths, side="left")  # bin b holds edges[b-1] < length <= edges[b]
    return [np.flatnonzero(which == b) for b in range(len(edges) + 1) if np.any(which == b)]


def _slice_rows(
    correct: np.ndarray, base_correct: np.ndarray, parts: list[tuple[dict[str, Any], np.ndarray]]
) -> list[dict[str, Any]]:
    rows = []
    for info, idx in parts:
        rows.append(
            {
                **info,
                "n": int(idx.size),
                "accuracy": float(correct[:, idx].mean()),
                "baseline_accuracy": None if base_correct is None else float(base_correct[:, idx].mean()),
            }
        )
    return rows


def _slices(
    correct: np.ndarray, base_correct: np.ndarray | None, lengths: np.ndarray | None, columns: Mapping[str, np.ndarray]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if lengths is not None:
        parts = [({"lo": int(lengths[idx].min()), "hi": int(lengths[idx].max())}, idx) for idx in length_bins(lengths)]
        out["length"] = _slice_rows(correct, base_correct, parts)
    for name, values in columns.items():
        out[name] = _slice_rows(correct, base_correct, column_slices(values)[0])
    return out


def _majority(preds: np.ndarray) -> np.ndarray:
    """The most frequent prediction over seeds for every example (ties: the smallest class).

    Compares seeds with each other, (S, S, N) booleans for S seeds: no array
    grows with the number of classes.
    """
    agree = (preds[:, None, :] == preds[None, :, :]).sum(axis=0)  # (S, N): seeds agreeing with seed s
    top = agree.max(axis=0)
    return np.where(agree == top, preds, np.iinfo(np.int64).max).min(axis=0)


def _disagreements(y, preds, base_preds, label_names, texts) -> dict[str, Any]:
    """Texts the variant gets right and the baseline wrong ("wins"), and the reverse, by majority vote over seeds."""
    vote, base_vote = _majority(preds), _majority(base_preds)
    right, base_right = vote == y, base_vote == y
    out: dict[str, Any] = {
        "wins": int(np.sum(right & ~base_right)),
        "losses": int(np.sum(~right & base_right)),
        "examples": {},
    }
    for kind, mask in (("wins", right & ~base_right), ("losses", ~right & base_right)):
        out["examples"][kind] = [
            {
                "text": None if texts is None else str(texts[i]),
                "label": label_names[y[i]],
                "variant": label_names[vote[i]],
                "baseline": label_names[base_vote[i]],
            }
            for i in np.flatnonzero(mask)[:MAX_EXAMPLES]
        ]
    return out


# --------------------------------------------------------------------------- the summary


def primary_metric(select_by: str, tested: Sequence[str]) -> str:
    """The test metric verdicts are on: the one the variants were selected (and early-stopped) on, if it is tested."""
    name = select_by.removeprefix("val_")
    return f"test_{name}" if name in tested and name != select_by else "test_accuracy"


def dominated(variants: Mapping[str, Any], metric: str) -> dict[str, list[str]]:
    """{variant: the variants that dominate it}: at least as good on ``metric`` (seed mean), at most its training
    seconds and p50 latency, strictly better in one. Variants missing a figure are left out."""

    def point(v):
        vals = [(v.get(k) or {}).get("mean") for k in (metric, "train_seconds", "latency_p50_ms")]
        return None if any(x is None for x in vals) else (vals[0], -vals[1], -vals[2])

    pts = {n: point(v) for n, v in variants.items()}
    pts = {n: p for n, p in pts.items() if p is not None}
    out = {}
    for n, p in pts.items():
        by = [
            m
            for m, q in pts.items()
            if m != n and all(x >= y for x, y in zip(q, p)) and any(x > y for x, y in zip(q, p))
        ]
        if by:
            out[n] = by
    return out


def _answer(
    groups,
    variants,
    baseline,
    correct,
    preds,
    y,
    n_classes,
    tested,
    *,
    select_by,
    alpha,
    sesoi,
    declared,
    config_rest,
    n_boot,
    seed,
    test_is_validation,
) -> dict[str, Any]:
    """summary keys ``primary_metric``, ``sesoi``, ``contrasts``, ``secondary_contrasts``, ``contrast_details``, ``answer``."""
    from textclf.analysis import contrasts as C

    sesoi = C.DEFAULT_SESOI if sesoi is None else float(sesoi)
    primary = primary_metric(select_by, tested)
    if declared:
        unknown = sorted({v for d in declared.values() for v in (d["a"], d["b"])} - set(variants))
        if unknown:
            raise ValueError(f"contrasts name variants {unknown} that were not run; variants: {', '.join(variants)}")
        family = C.declared_contrasts(declared)
    else:
        info = {
            name: {
                **{k: v.get(k) for k in ("kind", "cell", "layers", "bidirectional")},
                "rest": None if config_rest is None else config_rest.get(name),
            }
            for name, v in variants.items()
        }
        family = C.derive_contrasts(info, baseline)
    secondary = [f"test_{m}" for m in tested if f"test_{m}" != primary]
    rows, second, details = (
        ([], [], {})
        if not family
        else C.contrast_family(
            family,
            variants=variants,
            correct={g.name: correct[g.rows] for g in groups},
            preds={g.name: preds[g.rows] for g in groups},
            y=y,
            n_classes=n_classes,
            primary=primary,
            alpha=alpha,
            sesoi=sesoi,
            n_boot=n_boot,
            seed=seed,
            secondary=secondary,
            known={
                (n, baseline, f"test_{m}"): {**v[f"delta_{m}"], "delta": v[f"delta_{m}"]["mean"]}
                for n, v in variants.items()
                for m in tested
                if v.get(f"delta_{m}")
            },
        )
    )
    return {
        "primary_metric": primary,
        "dominated": dominated(variants, primary),
        "sesoi": sesoi,
        "test_is_validation": bool(test_is_validation),
        "contrasts": rows,
        "secondary_contrasts": second,
        "contrast_details": details,
        "answer": C.answer_sentences(rows, details, test_is_validation=test_is_validation),
    }


def _significance_text(baseline: str | None, alpha: float, n_boot: int, single_seed: list[str], method) -> str:
    if baseline is None:
        return "No baseline was given, so no differences were tested."
    from textclf.core.metrics import METRICS

    others = [m for m in method if m not in ("accuracy", "macro_f1", "multiplicity")]
    text = (
        f"Each difference from the baseline is tested with a paired t interval (level {1 - alpha:.0%}) whose variance "
        "combines the test-example variance of the per-example differences (the same examples for both variants) "
        "with each variant's seed-to-seed variance of accuracy (net of the prediction noise already counted), on "
        "Welch-Satterthwaite degrees of freedom; with three seeds it holds its nominal false-positive rate "
        "(see the calibration table of textclf's docs, benchmarks page). Macro-F1 uses the same decomposition with a paired bootstrap over "
        f"examples ({n_boot} draws). "
        + "".join(f"{METRICS[m].label or m if m in METRICS else m}: {method[m]}. " for m in others)
        + "p-values are Holm-adjusted across the variants compared with the baseline; "
        "* marks an adjusted p below "
        f"{alpha:g}."
    )
    if single_seed:
        text += (
            f" {', '.join(single_seed)} {'has' if len(single_seed) == 1 else 'have'} a single seed: "
            "seed-to-seed variation cannot be estimated there, so those intervals cover test-example variance only "
            "and are too narrow when seeds matter. Run more seeds."
        )
    return text


def compare(
    records: Sequence[RunRecord],
    baseline: str | None,
    *,
    label_names: Sequence[str],
    select_by: str = "val_accuracy",
    alpha: float = 0.05,
    lengths: Sequence[int] | None = None,
    slice_columns: Mapping[str, Sequence[Any]] | None = None,
    texts: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    contrasts: Mapping[str, Mapping[str, str]] | None = None,
    sesoi: float | None = None,
    config_rest: Mapping[str, Any] | None = None,
    test_is_validation: bool = False,
) -> dict[str, Any]:
    """Summarise every variant over its seeds, test it against ``baseline`` and say where it differs.

    ``select_by``: the validation metric (a key of each record's metrics, e.g.
    ``val_accuracy`` or ``val_macro_f1``) whose mean over seeds picks the best
    variant. ``lengths`` (token counts of the test texts), ``slice_columns``
    ({name: value per test text}) and ``texts`` (for disagreement examples)
    are optional. Deterministic given ``seed`` (the macro-F1 bootstrap).

    ``contrasts`` ({name: {a, b}}) replaces the derived family of
    :mod:`textclf.analysis.contrasts`; ``sesoi`` (a fraction, default
    :data:`~textclf.analysis.contrasts.DEFAULT_SESOI`) is the smallest
    difference that matters; ``config_rest`` ({variant: anything}) identifies
    each variant's config apart from cell / layers / direction, so only true
    one-factor pairs are derived; ``test_is_validation`` marks every verdict
    with a warning.
    """
    from textclf.analysis.contrasts import STAT_TESTS, tested_metrics
    from textclf.analysis.stats import holm
    from textclf.core.metrics import METRICS

    if not records:
        raise ValueError("compare() needs at least one record")
    label_names = [str(x) for x in label_names]
    ordered, groups = _group(records)
    names = [g.name for g in groups]
    if baseline is not None and baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the variants: {', '.join(names)}")
    y, preds, n_classes = _test_set(ordered, len(label_names) or None)
    for what, seq in (
        ("lengths", lengths),
        ("texts", texts),
        *((f"slice column {k!r}", v) for k, v in (slice_columns or {}).items()),
    ):
        if seq is not None and len(seq) != y.size:
            raise ValueError(f"{what} has {len(seq)} entries, expected one per test example ({y.size})")
    lengths_arr = None if lengths is None else np.asarray(lengths, dtype=np.int64)
    correct = (preds == y[None, :]).astype(np.int8)  # (R, N)
    metrics = [m for m, metric in METRICS.items() if metric.compare]  # the comparison's columns
    tested = tested_metrics(n_classes)  # those whose test runs at this many classes
    scores = {m: np.array([_num(METRICS[m].fn(y, p, None, n_classes)) for p in preds], dtype=float) for m in metrics}

    base = next((g for g in groups if g.name == baseline), None)
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
            **{f"test_{m}": _mean_sd(scores[m][g.rows]) for m in metrics},
        }
        params = _mean_sd([r.metrics.get("params") for r in g.records])["mean"]
        entry["params"] = None if params is None else int(round(params))
        for key in [f"val_{m}" for m in metrics] + list(COST_METRICS):
            entry[key] = _mean_sd([r.metrics.get(key) for r in g.records])
        for m in metrics:
            entry[f"delta_{m}"] = None
            if base is not None and g is not base and m in tested:
                r = STAT_TESTS[METRICS[m].test].fn(
                    [preds[g.rows], preds[base.rows]],
                    [1.0, -1.0],
                    y,
                    n_classes,
                    metric=METRICS[m],
                    alpha=alpha,
                    n_boot=n_boot,
                    seed=seed,
                    keep_truncated_df=False,
                )
                entry[f"delta_{m}"] = _delta({**r, "seed_variance": len(g.records) > 1 and len(base.records) > 1})
        entry["disagreements"] = (
            None
            if base is None or g is base
            else _disagreements(y, preds[g.rows], preds[base.rows], label_names, texts)
        )
        entry["slices"] = _slices(
            correct[g.rows], None if base is None else correct[base.rows], lengths_arr, slice_columns or {}
        )
        entry["run_ids"] = [r.run_id for r in g.records]
        entry["cached"] = all(bool(r.cached) for r in g.records)
        variants[g.name] = entry

    for m in metrics:
        tested_here = [n for n in names if variants[n][f"delta_{m}"] is not None]
        for n, p in zip(tested_here, holm([variants[n][f"delta_{m}"]["p_value"] for n in tested_here])):
            variants[n][f"delta_{m}"]["p_adjusted"] = p

    def score(name: str) -> float:
        value = (
            variants[name].get(select_by, {}).get("mean") if isinstance(variants[name].get(select_by), dict) else None
        )
        return -math.inf if value is None else value

    best = max(names, key=score)  # first of equals wins: the pipeline's order
    single_seed = [g.name for g in groups if len(g.records) == 1]
    answer = _answer(
        groups,
        variants,
        baseline,
        correct,
        preds,
        y,
        n_classes,
        tested,
        select_by=select_by,
        alpha=alpha,
        sesoi=sesoi,
        declared=contrasts,
        config_rest=config_rest,
        n_boot=n_boot,
        seed=seed,
        test_is_validation=test_is_validation,
    )
    method = {
        **{m: STAT_TESTS[METRICS[m].test].method.format(n_boot=n_boot, seed=seed) for m in metrics},
        "multiplicity": "Holm over the variants compared with the baseline",
    }
    return {
        **answer,
        "baseline": baseline,
        "n_test": int(y.size),
        "n_classes": n_classes,
        "label_names": label_names,
        "alpha": alpha,
        "compared_metrics": metrics,
        "method": method,
        "significance": _significance_text(baseline, alpha, n_boot, single_seed, method),
        "slices": {
            **({"length": "tokens of the shared tokenizer, quintiles of the test set"} if lengths is not None else {}),
            **{name: note for name, values in (slice_columns or {}).items() if (note := column_slices(values)[1])},
        },
        "variants": variants,
        "best_variant": best if score(best) > -math.inf else None,
        "best_variant_metric": select_by,
        "best_variant_by": f"highest mean {select_by} over seeds (validation data; test data decides nothing)",
    }
