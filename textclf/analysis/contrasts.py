"""Contrasts: the questions a comparison is run to answer, each tested, with a verdict, its power and its cost.

A user compares variants to learn what a second layer buys, what reading
both directions buys, and whether either is worth its cost. "Variant vs
baseline" answers none of that. This module turns the variants into the
questions and answers them:

* **Contrasts.** By default, every pair of neural variants whose configs
  differ in exactly one of ``encoder.cell`` / ``encoder.layers`` /
  ``encoder.bidirectional`` (everything else equal) is one contrast, named by
  the factor and where it was measured: ``depth@uni`` (``lstm-x2`` vs
  ``lstm``), ``depth@bi``, ``direction@1``, ``direction@2``, ``cell@1-uni``;
  with several cells the cell is added (``depth@bi-lstm``). ``a`` is the
  richer side (more layers, both directions, rnn < gru < lstm), so a positive
  delta is what the richer architecture buys. Every other variant is also
  compared with the baseline (``lstm vs rnn``) unless a factor contrast
  already is that pair. A pipeline may instead declare its own contrasts
  (``contrasts: {name: {a: VARIANT, b: VARIANT}}``).
* **Main effects and interaction.** Where one cell has all four of
  layers {1, 2} x {uni, bi}, the main effect of depth (the 2-layer mean minus
  the 1-layer mean, averaged over direction), of direction, and their
  interaction (what direction buys at 2 layers minus what it buys at 1) are
  contrasts too.

**Test.** A contrast is a vector ``c`` over variants; its value is
``sum_v c_v * score_v`` (``score_v`` the seed-averaged test score). The
variance decomposition is that of :mod:`textclf.analysis.stats`, generalised
from ``c = (1, -1)``: the per-example values ``d_i = sum_v c_v mean_s y_v[s, i]``
carry the paired test-example variance (``var(d) / n``, which also holds
each seed's prediction noise), and each variant adds its own seed-offset
variance ``c_v^2 sigma2_seed_v / S_v`` (the ANOVA estimator, net of that
noise); Welch-Satterthwaite degrees of freedom. For a pair this is exactly
:func:`~textclf.analysis.stats.paired_comparison_batch` (a test checks
that). Macro-F1 uses the bootstrap route of :mod:`textclf.analysis.metric_stats`
with the same generalisation. Each comparison metric names its test in
:data:`STAT_TESTS` (accuracy ``paired_t``, any other ``bootstrap`` unless it
chooses another), and the comparison runs it for every pair and contrast.

**Verdicts** (on the primary metric only: the metric the variants were
early-stopped and selected on; other metrics get intervals, no verdict):

* ``better`` / ``worse``: Holm-adjusted (over the contrast family) two-sided
  p below alpha, the sign of delta deciding which; the 1 - alpha interval
  then excludes 0.
* ``equivalent``: two one-sided tests (TOST) that the true difference lies
  inside ±sesoi. Their p-value (the larger of the two one-sided p's; below
  alpha exactly when the 1 - 2·alpha interval lies inside ±sesoi) is
  **Holm-adjusted over the family as well**, so that the chance of calling
  any of the family's non-equivalent contrasts "equivalent" stays at alpha,
  the same guarantee the difference verdicts have. "Buys nothing" is only
  ever said of an ``equivalent`` contrast.
* ``inconclusive``: neither; the data cannot tell. With fewer than 2 seeds on
  a side of a contrast the seed term cannot be estimated, so it gets no
  p-value and is always inconclusive.

**sesoi**, the smallest effect size of interest, defaults to
:data:`DEFAULT_SESOI` = 2 points. Published LSTM / BiLSTM / stacked
differences on sentence classification are 1-3 points, and a gain below
~1 point is rarely worth doubling training time, so the threshold must sit
in that range. Within it, 2 rather than 1 because equivalence must be
reachable: on a test set of 800 examples two models that disagree on ~10% of
them have a test-example standard error near 1.1 points on their difference,
so the 90% interval is about ±1.9 points wide before any seed variance, and
equivalence within ±1 could not be shown with any number of seeds. At ±2 it
can be, with a test set of a few thousand examples.

**Power.** ``mde`` is the true difference detected with 80% power at the
observed variance and seed counts, ``(t_{1-alpha/2,df} + t_{0.8,df}) * se``.
:func:`seeds_needed` gives the seeds per variant that would bring it down to
the sesoi: the seed term scales as ``S / S'`` (the example term is kept as
is, a slight overstatement since it also holds prediction noise that more
seeds average away); None when even infinitely many seeds would not, i.e.
the test set is too small for the sesoi.

**Cost.** ``cost_ratio`` is a's mean over seeds divided by b's (training
seconds, parameters, p50 latency); for a main effect the ratio of the two
sides' means; none for an interaction.

The calibration tests (``tests/test_contrasts.py``; ``bench/calibration.py``'s
contrast table) check that equivalence is declared at most alpha of the time
when the true difference sits at ±sesoi, that the interaction test holds its
rate under a null with main effects present, and that the family-wise rate
of the default comparison's derived family holds at seed sds of 0-5 points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textclf.analysis.metric_stats import contrast_metric, counts_score
from textclf.analysis.stats import (
    _check_alpha,
    _satterthwaite,
    _seed_table,
    _t_inference,
    holm,
    paired_comparison_batch,
    t_ppf,
    t_sf,
)
from textclf.core.registry import Registry

__all__ = [
    "DEFAULT_SESOI",
    "STAT_TESTS",
    "Contrast",
    "StatTest",
    "answer_sentences",
    "contrast_batch",
    "contrast_family",
    "contrast_metric",
    "derive_contrasts",
    "mde",
    "seeds_needed",
    "tost_p",
    "verdicts",
]

DEFAULT_SESOI = 0.02  # 2 accuracy / macro-F1 points; see the module docstring
POWER = 0.8
MAX_SEEDS = 200  # seeds_needed gives up beyond this: the test set, not the seeds, is what limits
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
_CELL_ORDER = {"rnn": 0, "gru": 1, "lstm": 2}
FACTORS = ("cell", "layers", "bidirectional")


@dataclass
class Contrast:
    """One question: ``sum_v weights[v] * score_v`` (a pair: {a: 1, b: -1})."""

    name: str
    kind: str  # "pair" | "main" | "interaction"
    a: str
    b: str
    weights: dict[str, float]
    a_side: tuple[str, ...] = ()  # the variants on the + side (cost ratio of a main effect)
    b_side: tuple[str, ...] = ()
    cell: str | None = None  # the cell a depth / direction contrast was measured with (names it when several do)


# --------------------------------------------------------------------------- the tests


def contrast_batch(
    tables: Sequence[Any], weights: Sequence[float], alpha: float = 0.05, *, keep_truncated_df: bool = True
) -> dict[str, np.ndarray]:
    """The accuracy contrast ``sum_v weights[v] * accuracy_v`` over leading axes of repetitions.

    ``tables[v]``: 0/1 outcomes of shape (..., S_v, n), every table with the
    same leading shape and the same ``n`` examples in the same order. Returns
    arrays of the leading shape: ``delta``, ``ci_low``, ``ci_high``,
    ``p_value``, ``se``, ``df``, ``var_examples``, ``var_seeds``. With
    ``weights = (1, -1)`` and ``keep_truncated_df=False`` this is
    :func:`~textclf.analysis.stats.paired_comparison_batch`.

    ``keep_truncated_df`` (default): a seed term estimated at zero (truncated)
    adds nothing to the variance but still lowers the degrees of freedom, as
    an estimate of zero from ``S - 1`` degrees of freedom is no knowledge that
    seeds do not matter. Dropping it from the df, as the pairwise test does,
    keeps the rate at alpha = 0.05 but not far in the tail, where Holm's first
    steps test (alpha / 14 for the default family): there the pairwise test
    rejects too often and the default family's family-wise rate passed
    alpha. Keeping the df holds it at or below alpha (``tests/test_contrasts.py``;
    the rates: docs/comparison.md, "Calibration").
    """
    alpha = _check_alpha(alpha)
    if len(tables) != len(weights) or not tables:
        raise ValueError(
            f"contrast_batch needs one weight per table, got {len(tables)} tables and {len(weights)} weights"
        )
    arrs = [np.asarray(t).astype(bool, copy=False) for t in tables]
    lead, n = arrs[0].shape[:-2], arrs[0].shape[-1]
    for i, t in enumerate(arrs):
        if t.ndim < 2 or t.shape[:-2] != lead or t.shape[-1] != n or t.shape[-2] < 1:
            raise ValueError(
                f"tables[{i}] has shape {t.shape}; every table needs shape (..., seeds >= 1, {n}) with leading shape {lead}"
            )
    if n < 2:
        raise ValueError(f"a contrast needs at least 2 test examples, got {n}")
    d = np.zeros(lead + (n,))
    parts = []
    for t, w in zip(arrs, weights):
        s = t.shape[-2]
        col = t.sum(axis=-2, dtype=np.int64)
        mean, var_acc, noise = _seed_table(t.sum(axis=-1, dtype=np.int64), col, s, n)
        d = d + (float(w) / s) * col
        parts.append((float(w), s, mean, var_acc, noise))
    delta = d.mean(axis=-1)
    # Two-pass variance: identical tables give exactly zero, never round-off.
    var_examples = np.maximum(((d - delta[..., None]) ** 2).sum(axis=-1) / (n - 1), 0.0) / n
    terms: list[tuple[np.ndarray, float]] = [(var_examples, n - 1.0)]
    var_seeds = np.zeros_like(delta)
    for w, s, _mean, var_acc, noise in parts:
        if s < 2 or w == 0:
            continue
        seed_var = np.maximum(var_acc - noise, 0.0)
        active = np.ones_like(seed_var, dtype=bool) if keep_truncated_df else seed_var > 0
        var_seeds = var_seeds + w * w * seed_var / s
        terms.append((np.where(active, w * w * var_acc / s, 0.0), s - 1.0))
        terms.append((np.where(active, w * w * noise / s, 0.0), (s - 1.0) * (n - 1.0)))
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
    }


_KEYS = ("delta", "ci_low", "ci_high", "p_value", "se", "df", "var_examples", "var_seeds")


def _paired_t(preds, weights, y, n_classes, *, alpha, keep_truncated_df=True, **_):
    tables = [np.asarray(p) == y for p in preds]
    if not keep_truncated_df and len(tables) == 2 and list(weights) == [1.0, -1.0]:  # exactly the pairwise test
        r = paired_comparison_batch(tables[0][None], tables[1][None], alpha)
    else:
        r = contrast_batch([t[None] for t in tables], weights, alpha, keep_truncated_df=keep_truncated_df)
    return {k: float(r[k].item()) for k in _KEYS}


def _bootstrap(preds, weights, y, n_classes, *, metric, **kwargs):
    return contrast_metric(preds, weights, y, n_classes, counts_score(metric, n_classes), **kwargs)


@dataclass(frozen=True)
class StatTest:
    """A test of a contrast ``sum_v weights[v] * score_v`` between variants: one entry of :data:`STAT_TESTS`.

    ``fn(preds, weights, y, n_classes, *, metric, alpha, n_boot, seed,
    keep_truncated_df)``: ``preds[v]`` (S_v x n) predicted class ids of each
    seed of variant v on the same n test examples (``y`` their labels),
    ``weights[v]`` its weight (a pair: 1, -1), ``metric`` the
    :class:`~textclf.core.metrics.Metric` tested. Returns floats ``delta``,
    ``ci_low``, ``ci_high`` (1 - alpha interval), ``p_value`` (two-sided),
    ``se``, ``df`` (verdicts, equivalence and power use them),
    ``var_examples`` and ``var_seeds`` (0.0 if not separated).
    ``keep_truncated_df`` may be ignored. ``method`` is what the summary says
    it did (``{n_boot}`` and ``{seed}`` are filled in); the test is not run
    beyond ``max_classes`` classes, nor on a metric outside ``metrics``
    (None: any).
    """

    fn: Callable[..., dict[str, float]]
    method: str
    max_classes: int | None = None
    metrics: tuple[str, ...] | None = None


STAT_TESTS: dict[str, StatTest] = Registry(
    "textclf.stat_tests",
    StatTest,
    {
        # accuracy is a mean of per-example 0/1 outcomes: exact moments of the two-way table (textclf.analysis.stats)
        "paired_t": StatTest(
            _paired_t, "paired t: test-example + seed variance, Welch-Satterthwaite df", metrics=("accuracy",)
        ),
        # any metric of predicted classes; it scores confusion matrices (C² cells), hence the class limit
        "bootstrap": StatTest(
            _bootstrap,
            "paired t: seed variance + paired example bootstrap ({n_boot} draws, seed {seed})",
            max_classes=50,
        ),
    },
)


def metric_test(name: str) -> tuple[StatTest | None, str | None]:
    """(the test of comparison metric ``name``, None) or (None, what is wrong, naming the fix)."""
    from textclf.core.metrics import METRICS

    metric = METRICS.get(name)
    test = STAT_TESTS.get(metric.test) if metric is not None else None
    if metric is None or not metric.compare:
        return None, f"{name!r} is not a comparison metric (registered with compare=True)"
    if test is None:
        return None, (
            f"metric {name!r} asks for the statistical test {metric.test!r}, which is not registered; "
            f"registered: {', '.join(STAT_TESTS)} (textclf.register_stat_test adds one)"
        )
    if test.metrics is not None and name not in test.metrics:
        return (
            None,
            f"the test {metric.test!r} of metric {name!r} applies to {', '.join(test.metrics)} only; use bootstrap",
        )
    return test, None


def tested_metrics(n_classes: int) -> list[str]:
    """The comparison metrics whose test runs at ``n_classes`` classes (a bad test choice is a ValueError)."""
    from textclf.core.metrics import METRICS

    out = []
    for name, metric in METRICS.items():
        if metric.compare:
            test, problem = metric_test(name)
            if problem:
                raise ValueError(problem)
            if test.max_classes is None or n_classes <= test.max_classes:
                out.append(name)
    return out


def tost_p(delta: Any, se: Any, df: Any, sesoi: float) -> np.ndarray:
    """p-value of two one-sided tests that the true difference lies inside (-sesoi, +sesoi).

    The larger of the p's of H0: diff <= -sesoi and H0: diff >= +sesoi; below
    alpha exactly when the 1 - 2·alpha interval lies inside ±sesoi. With zero
    standard error it is 0 inside the bounds and 1 outside.
    """
    delta, se, df = (np.asarray(x, dtype=np.float64) for x in (delta, se, df))
    positive = se > 0
    safe = np.where(positive, se, 1.0)
    lower = t_sf((delta + sesoi) / safe, df)
    upper = t_sf((sesoi - delta) / safe, df)
    return np.where(positive, np.maximum(lower, upper), np.where(np.abs(delta) < sesoi, 0.0, 1.0))


def mde(se: Any, df: Any, alpha: float = 0.05, power: float = POWER) -> np.ndarray:
    """The true difference detected with ``power`` by the two-sided test at ``alpha``: (t_{1-a/2} + t_power) * se."""
    return (t_ppf(1 - alpha / 2, df) + t_ppf(power, df)) * np.asarray(se, dtype=np.float64)


def seeds_needed(
    var_examples: float,
    seed_terms: Sequence[tuple[float, float, int]],
    n: int,
    sesoi: float,
    alpha: float = 0.05,
    power: float = POWER,
) -> int | None:
    """Seeds per variant that would bring the mde down to ``sesoi`` (None: no number of seeds would).

    ``seed_terms``: per variant of the contrast, (weight² · seed variance,
    weight² · prediction noise of one seed's score, current seeds). The seed
    variance is divided by the new seed count; the example term stays.
    """
    s = np.arange(2, MAX_SEEDS + 1, dtype=np.float64)  # every candidate at once: one vectorised t quantile
    var_seeds = sum(sv / s for sv, _noise, _s in seed_terms) if seed_terms else np.zeros_like(s)
    var = var_examples + var_seeds
    terms = [(np.full_like(s, var_examples), n - 1.0)]
    for sv, noise, _s in seed_terms:
        if sv > 0:
            terms += [((sv + noise) / s, s - 1.0), (noise / s, (s - 1.0) * (n - 1.0))]
    denom = sum(value * value / dof for value, dof in terms)
    df = np.maximum(np.divide(var * var, denom, out=np.full_like(s, n - 1.0), where=denom > 0), 1.0)
    ok = np.flatnonzero(mde(np.sqrt(var), df, alpha, power) <= sesoi)
    return int(s[ok[0]]) if ok.size else None


def verdicts(
    p_adjusted: Sequence[float | None], tost_adjusted: Sequence[float | None], deltas: Sequence[float], alpha: float
) -> list[str]:
    """better / worse (difference significant after Holm), else equivalent (TOST after Holm), else inconclusive."""
    out = []
    for p, q, d in zip(p_adjusted, tost_adjusted, deltas):
        if p is not None and p < alpha and d != 0:
            out.append(BETTER if d > 0 else WORSE)
        elif q is not None and q < alpha:
            out.append(EQUIVALENT)
        else:
            out.append(INCONCLUSIVE)
    return out


# --------------------------------------------------------------------------- which contrasts


def _factors(info: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return info.get("cell"), int(info.get("layers") or 1), bool(info.get("bidirectional"))


def _unique(contrasts: list[Contrast]) -> list[Contrast]:
    """Names made unique where a base name repeats: by the cell (``depth@bi-lstm``), else by the pair
    (``cell@1-uni:lstm-vs-gru``)."""
    for tag in (lambda c: f"-{c.cell}" if c.cell else None, lambda c: f":{c.a}-vs-{c.b}"):
        groups: dict[str, list[Contrast]] = {}
        for c in contrasts:
            groups.setdefault(c.name, []).append(c)
        for same in groups.values():
            tags = [tag(c) for c in same]
            if len(same) > 1 and None not in tags and len(set(tags)) == len(tags):
                for c, t in zip(same, tags):
                    c.name += t
    return contrasts


def derive_contrasts(variants: Mapping[str, Mapping[str, Any]], baseline: str | None) -> list[Contrast]:
    """The default family: one-factor pairs, the 2x2 main effects and interaction, every variant vs the baseline.

    ``variants``: {name: {"kind", "cell", "layers", "bidirectional", "rest"}}
    in pipeline order; ``rest`` is anything that identifies the remaining
    config (two variants differing in it, e.g. in hidden size, are never a
    one-factor pair), None to ignore.
    """
    neural = {n: v for n, v in variants.items() if v.get("kind") == "neural" and v.get("cell") is not None}
    cells = {v.get("cell") for v in neural.values()}
    order = list(variants)
    out: list[Contrast] = []
    names = list(neural)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            fx, fy = _factors(neural[x]), _factors(neural[y])
            if neural[x].get("rest") != neural[y].get("rest"):
                continue
            differ = [k for k, u, v in zip(FACTORS, fx, fy) if u != v]
            if len(differ) != 1:
                continue
            factor = differ[0]
            cell, layers, bi = fx
            if factor == "layers":
                a, b = (x, y) if fx[1] > fy[1] else (y, x)
                name = f"depth@{'bi' if bi else 'uni'}"
            elif factor == "bidirectional":
                a, b = (x, y) if fx[2] else (y, x)
                name = f"direction@{layers}"
            else:
                rank = {n: (_CELL_ORDER.get(str(neural[n]["cell"]), 99), order.index(n)) for n in (x, y)}
                a, b = (x, y) if rank[x] > rank[y] else (y, x)
                name = f"cell@{layers}-{'bi' if bi else 'uni'}"
            out.append(
                Contrast(
                    name=name,
                    kind="pair",
                    a=a,
                    b=b,
                    weights={a: 1.0, b: -1.0},
                    a_side=(a,),
                    b_side=(b,),
                    cell=None if factor == "cell" else str(cell),
                )
            )
    # The 2x2 of layers x direction, per cell, where all four corners exist with the same rest.
    for cell in sorted(cells, key=lambda c: _CELL_ORDER.get(str(c), 99)):
        corners: dict[tuple[int, bool], str] = {}
        for n, v in neural.items():
            c, layers, bi = _factors(v)
            if c == cell:
                corners.setdefault((layers, bi), n)
        depths = sorted({k[0] for k in corners})
        if len(depths) < 2:
            continue
        lo, hi = depths[0], depths[1]
        keys = [(lo, False), (lo, True), (hi, False), (hi, True)]
        if not all(k in corners for k in keys) or len({neural[corners[k]].get("rest") for k in keys}) != 1:
            continue
        u1, b1, u2, b2 = (corners[k] for k in keys)
        out += [
            Contrast(
                "depth (main)",
                "main",
                f"{u2} + {b2}",
                f"{u1} + {b1}",
                {u2: 0.5, b2: 0.5, u1: -0.5, b1: -0.5},
                (u2, b2),
                (u1, b1),
                str(cell),
            ),
            Contrast(
                "direction (main)",
                "main",
                f"{b1} + {b2}",
                f"{u1} + {u2}",
                {b1: 0.5, b2: 0.5, u1: -0.5, u2: -0.5},
                (b1, b2),
                (u1, u2),
                str(cell),
            ),
            Contrast(
                "depth x direction",
                "interaction",
                f"({b2} − {u2})",
                f"({b1} − {u1})",
                {b2: 1.0, u2: -1.0, b1: -1.0, u1: 1.0},
                cell=str(cell),
            ),
        ]
    if baseline is not None and baseline in variants:
        seen = {frozenset((c.a, c.b)) for c in out if c.kind == "pair"}
        for n in order:
            if n != baseline and frozenset((n, baseline)) not in seen:
                out.append(
                    Contrast(f"{n} vs {baseline}", "pair", n, baseline, {n: 1.0, baseline: -1.0}, (n,), (baseline,))
                )
    return _unique(out)


def declared_contrasts(declared: Mapping[str, Mapping[str, str]]) -> list[Contrast]:
    """The pipeline's own ``contrasts:`` ({name: {a, b}}), as pairs."""
    return [
        Contrast(name, "pair", d["a"], d["b"], {d["a"]: 1.0, d["b"]: -1.0}, (d["a"],), (d["b"],))
        for name, d in declared.items()
    ]


# --------------------------------------------------------------------------- the family


def _ratio(variants: Mapping[str, Any], a_side: Sequence[str], b_side: Sequence[str], key: str) -> float | None:
    def side(names):
        values = []
        for n in names:
            v = variants[n].get(key)
            v = v.get("mean") if isinstance(v, dict) else v
            if v is None or not math.isfinite(float(v)):
                return None
            values.append(float(v))
        return sum(values) / len(values) if values else None

    a, b = side(a_side), side(b_side)
    return None if a is None or b is None or b <= 0 else a / b


def contrast_family(
    contrasts: Sequence[Contrast],
    *,
    variants: Mapping[str, Any],
    correct: Mapping[str, np.ndarray],
    preds: Mapping[str, np.ndarray],
    y: np.ndarray,
    n_classes: int,
    primary: str,
    alpha: float,
    sesoi: float,
    n_boot: int = 1000,
    seed: int = 0,
    secondary: Sequence[str] = (),
    known: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Test every contrast; returns (primary rows, secondary rows, details by name).

    ``correct[v]`` (S_v x n) 0/1 and ``preds[v]`` (S_v x n) class ids of every
    variant; ``primary`` and ``secondary`` are ``test_<name>`` of comparison
    metrics, each tested by its registered test. Primary rows carry the
    verdict; secondary rows the interval only (verdict None). ``known``
    ({(a, b, metric): {delta, ci_low, ci_high}}): secondary intervals already
    computed (the comparison's variant-vs-baseline tests), reused rather than redrawn.
    """
    from textclf.core.metrics import METRICS

    rows: dict[str, list[dict[str, Any]]] = {}
    details: dict[str, dict[str, Any]] = {}
    for metric in (primary, *secondary):
        out = []
        for c in contrasts:
            names = list(c.weights)
            seeds = [correct[n].shape[0] for n in names]
            seeds_a = min(correct[n].shape[0] for n in (c.a_side or [k for k, w in c.weights.items() if w > 0]))
            seeds_b = min(correct[n].shape[0] for n in (c.b_side or [k for k, w in c.weights.items() if w < 0]))
            reuse = (known or {}).get((c.a, c.b, metric)) if metric != primary and c.kind == "pair" else None
            if reuse is not None and reuse.get("delta") is not None:
                r = {
                    "delta": reuse["delta"],
                    "ci_low": reuse["ci_low"],
                    "ci_high": reuse["ci_high"],
                    "p_value": reuse.get("p_value"),
                    "se": reuse.get("se") or 0.0,
                    "df": reuse.get("df") or 1.0,
                    "var_examples": 0.0,
                    "var_seeds": 0.0,
                }
            else:
                name = metric.removeprefix("test_")
                r = STAT_TESTS[METRICS[name].test].fn(
                    [preds[n] for n in names],
                    [c.weights[n] for n in names],
                    y,
                    n_classes,
                    metric=METRICS[name],
                    alpha=alpha,
                    n_boot=n_boot,
                    seed=seed,
                    keep_truncated_df=True,
                )
            estimable = min(seeds) >= 2
            row = {
                "name": c.name,
                "a": c.a,
                "b": c.b,
                "kind": c.kind,
                "metric": metric,
                "delta": r["delta"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "p_value": r["p_value"] if estimable else None,
                "p_adjusted": None,
                "sesoi": sesoi,
                "verdict": None,
                "mde": float(mde(r["se"], r["df"], alpha)) if estimable else None,
                "seeds_a": int(seeds_a),
                "seeds_b": int(seeds_b),
                "cost_ratio": {
                    k: None if c.kind == "interaction" else _ratio(variants, c.a_side, c.b_side, k)
                    for k in ("train_seconds", "params", "latency_p50_ms")
                },
            }
            if metric == primary:
                n = y.size
                seed_terms = []
                for v in names:
                    w2 = c.weights[v] ** 2
                    s = correct[v].shape[0]
                    if s >= 2:
                        _m, var_acc, noise = _seed_table(correct[v].sum(axis=1), correct[v].sum(axis=0), s, n)
                        seed_terms.append((w2 * max(float(var_acc) - float(noise), 0.0), w2 * float(noise), s))
                half = t_ppf(1 - alpha, r["df"]) * r["se"]
                details[c.name] = {
                    "variants": names,  # every variant the contrast weighs (which ones more seeds would go to)
                    "se": r["se"],
                    "df": r["df"],
                    "var_examples": r["var_examples"],
                    "var_seeds": r["var_seeds"],
                    "seed_variance": estimable,
                    "p_equivalence": float(tost_p(r["delta"], r["se"], r["df"], sesoi)) if estimable else None,
                    "equivalence_interval": [r["delta"] - half, r["delta"] + half],
                    "seeds_needed": seeds_needed(r["var_examples"], seed_terms, n, sesoi, alpha) if estimable else None,
                    # what the test set alone allows: the mde with infinitely many seeds
                    "mde_test_set": float(mde(math.sqrt(r["var_examples"]), n - 1.0, alpha)),
                }
            out.append(row)
        rows[metric] = out
    prim = rows[primary]
    adjusted = holm([r["p_value"] for r in prim])
    tost_adjusted = holm([details[r["name"]]["p_equivalence"] for r in prim])
    for r, p, q in zip(prim, adjusted, tost_adjusted):
        r["p_adjusted"] = p
        details[r["name"]]["p_equivalence_adjusted"] = q
    for r, v in zip(prim, verdicts(adjusted, tost_adjusted, [r["delta"] for r in prim], alpha)):
        r["verdict"] = v
    secondary_rows = [r for m in secondary for r in rows[m]]
    return prim, secondary_rows, details


# --------------------------------------------------------------------------- the answer in words


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}".replace("-", "−")


def _times(x: float | None) -> str | None:
    return None if x is None else f"{x:.1f}×"


def _subject(row: Mapping[str, Any]) -> str:
    name = row["name"]
    if row["kind"] == "pair":
        return f"{name} ({row['b']} → {row['a']})" if " vs " not in name else name
    return f"{name} ({row['a']} vs {row['b']})"


def answer_sentences(
    rows: Sequence[Mapping[str, Any]], details: Mapping[str, Mapping[str, Any]], *, test_is_validation: bool = False
) -> list[str]:
    """One sentence per contrast: delta [interval] points, verdict, and what it costs or what it would need."""
    out = []
    for r in rows:
        text = f"{_subject(r)}: {_pts(r['delta'])} [{_pts(r['ci_low'])}, {_pts(r['ci_high'])}] points, {r['verdict']}"
        d = details.get(r["name"], {})
        sesoi_pts = f"±{100 * r['sesoi']:g}"
        if r["verdict"] == EQUIVALENT:
            text += f" within {sesoi_pts}" + (
                " (what one factor buys does not depend on the other)"
                if r["kind"] == "interaction"
                else " (it buys nothing that matters)"
            )
        elif r["verdict"] == INCONCLUSIVE:
            if not d.get("seed_variance", True):
                text += ": a side has a single seed, so seed-to-seed variation is unknown; run at least 2 seeds (3 or more to decide)"
            elif d.get("seeds_needed") is None and d.get("mde_test_set", 0.0) > r["sesoi"]:
                text += (
                    f": mde {100 * r['mde']:.1f} points, and no number of seeds would bring it to {sesoi_pts} on this test set "
                    f"(its own limit is {100 * d['mde_test_set']:.1f}); use a larger test set"
                )
            elif d.get("seeds_needed") is None:
                text += f": mde {100 * r['mde']:.1f} points; would need more than {MAX_SEEDS} seeds per variant to detect {sesoi_pts}"
            elif r["mde"] is not None:
                text += f": mde {100 * r['mde']:.1f} points; would need ~{d['seeds_needed']} seeds per variant to detect {sesoi_pts}"
        elif abs(r["delta"]) < r["sesoi"]:
            text += f" (but by less than {sesoi_pts})"
        cost = r.get("cost_ratio") or {}
        if r["verdict"] in (BETTER, WORSE, EQUIVALENT) and r["kind"] != "interaction":
            parts = [
                f"{_times(cost[k])} the {label}"
                for k, label in (("train_seconds", "training time"), ("latency_p50_ms", "latency"))
                if cost.get(k) is not None
            ]
            if parts:
                text += ", at " + " and ".join(parts)
        if test_is_validation:
            text += " — WARNING: the test set is the validation set (data.test_fraction 0, no data.test), so this is optimistic"
        out.append(text)
    return out
