"""Calibration: false-positive rate and power of the seed-aware paired t-test vs a hierarchical bootstrap.

Simulated comparisons of two variants scored under a few seeds each on the
same test set (no training, no torch). Each repetition draws a fresh test set
of ``n`` examples: example ``i`` has a correctness logit
``z_i ~ Normal(2.569, 2.5)`` shared by both variants (mean accuracy 0.80,
from near-certain to hopeless examples); every seed of each variant gets its
own logit offset, with an sd chosen so that a seed moves accuracy by the
stated number of points; outcomes are Bernoulli(logistic(z_i + offset)).
Under the null both variants are equal in distribution, so every p < 0.05 is
a false positive. The power cell raises the variant's logits so its mean
accuracy is 5 points higher (seed sd 1 point, 3 seeds each, 800 examples).

Two tests see the same simulated runs:

* **t (seed + example)**: :func:`textclf.analysis.stats.paired_comparison`
  (via ``paired_comparison_batch``, the same computation over repetitions).
* **hierarchical bootstrap**: ``--n-boot`` draws (default 1000), each
  resampling the test examples with replacement (paired: the same draw for
  both variants) and each variant's seeds with replacement, statistic = the
  difference of seed-averaged accuracies; percentile interval, two-sided
  p = 2 * min(P(<= 0), P(>= 0)) with the +1 correction. It is vectorised by
  drawing one block of example multiplicities per chunk of repetitions and
  reusing it across that chunk (each repetition's test is still a valid
  bootstrap; this only saves drawing reps x n_boot x n indices). It costs
  reps x n_boot x seeds x n multiply-adds per cell, so it gets its own,
  smaller number of repetitions (``--boot-reps``).

A correctly calibrated test rejects 5 % of null repetitions; with R
repetitions the binomial sd of a rate is sqrt(0.05 * 0.95 / R) (0.49 points
at R = 2000, 0.69 at R = 1000). The table prints the rates in percent and
marks (!) any outside [1 %, 7 %].

A second table calibrates the contrasts of :mod:`textclf.analysis.contrasts`
on the same simulation (3 seeds per variant, 800 examples, sesoi 2 points):

* **TOST at the margin**: the true difference is exactly +2 (and -2) points,
  so "equivalent" is always wrong; it must be declared at most 5 % of the time.
* **interaction null**: depth +3 and direction +5 points, additive on the
  accuracy scale; every significant interaction is a false positive.
* **family-wise**: the default comparison's 7 variants (6 neural + TF-IDF
  shape), all equal; the rate at which any of the derived family's 14
  contrasts is significant after Holm.

    python -m bench.calibration [--smoke] [--reps N] [--boot-reps N] [--n-boot N] [--seed N] [--json PATH]
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from bench import _common as C
from textclf.analysis.contrasts import Contrast, contrast_batch, contrast_family, derive_contrasts, tost_p
from textclf.analysis.sequential import SeedSchedule, to_extend
from textclf.analysis.stats import holm, paired_comparison_batch

MU, TAU = 2.569, 2.5
ALPHA = 0.05
SEED_SDS = (0, 1, 3, 5)  # accuracy points
SEEDS = (3, 5)
EXAMPLES = (500, 2000)
POWER = {"seed_sd": 1, "seeds": 3, "n": 800, "delta_points": 5}
CHUNK_ELEMENTS = 6_000_000  # simulated predictions per chunk (reps x seeds x n), bounds memory


def parse_args(argv=None):
    p = C.base_parser(
        __doc__, "calibration"
    )  # --smoke, --threads (accepted, unused: numpy only), --json, as `python -m bench` passes
    p._option_string_actions[
        "--smoke"
    ].help = "A few repetitions per cell: checks every code path in seconds; rates are meaningless."
    p.add_argument(
        "--reps", type=int, default=4000, help="Null repetitions per cell for the t-test (default: %(default)s)."
    )
    p.add_argument(
        "--boot-reps",
        type=int,
        default=1000,
        help="Repetitions per cell for the bootstrap, a prefix of the same runs (default: %(default)s).",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="Bootstrap draws per test (default: %(default)s).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the simulation (default: %(default)s).")
    args = p.parse_args(argv)
    if args.smoke:
        args.reps, args.boot_reps, args.n_boot = 40, 20, 200
    for name in ("reps", "boot_reps", "n_boot"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    args.boot_reps = min(args.boot_reps, args.reps)
    return args


# --------------------------------------------------------------------------- simulation

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def _mean_accuracy(shift: float = 0.0) -> float:
    return float((_WEIGHTS * _logistic(MU + TAU * _NODES + shift)).sum())


# d(mean accuracy) / d(logit offset): converts a seed sd in accuracy points to a logit sd.
SLOPE = float((_WEIGHTS * _logistic(MU + TAU * _NODES) * (1 - _logistic(MU + TAU * _NODES))).sum())


def shift_for(points: float) -> float:
    """Logit shift that raises the mean accuracy by ``points`` percentage points."""
    lo, hi = 0.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _mean_accuracy(mid) - _mean_accuracy() < points / 100 else (lo, mid)
    return (lo + hi) / 2


def simulate(rng, reps: int, seeds: int, n: int, seed_sd_points: float, shift: float = 0.0):
    """(variant, baseline) 0/1 outcomes, each (reps, seeds, n); the variant's logits are raised by ``shift``."""
    z = rng.normal(MU, TAU, size=(reps, 1, n)).astype(np.float32)
    sd = seed_sd_points / 100 / SLOPE
    out = []
    for extra in (shift, 0.0):
        offsets = (rng.normal(0.0, sd, size=(reps, seeds, 1)) + extra).astype(np.float32)
        out.append(rng.random((reps, seeds, n), dtype=np.float32) < _logistic(z + offsets))
    return out


# --------------------------------------------------------------------------- contrasts

CONTRAST_SDS = (0, 1, 3, 5)
SEQUENTIAL_SDS = (0.0, 0.02, 0.05)  # seed sd as a fraction of accuracy: 0, 2 and 5 points
CONTRAST_SETUP = {"seeds": 3, "n": 800, "sesoi_points": 2}
DEFAULT_VARIANTS = {
    "rnn": ("rnn", 1, False),
    "gru": ("gru", 1, False),
    "lstm": ("lstm", 1, False),
    "lstm-x2": ("lstm", 2, False),
    "bilstm": ("lstm", 1, True),
    "bilstm-x2": ("lstm", 2, True),
    "tfidf": (None, None, None),
}


def _level_shift(points: float) -> float:
    return shift_for(points) if points >= 0 else -shift_for_down(-points)


def shift_for_down(points: float) -> float:
    """Logit shift (positive number) that lowers the mean accuracy by ``points``."""
    lo, hi = 0.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _mean_accuracy() - _mean_accuracy(-mid) < points / 100 else (lo, mid)
    return (lo + hi) / 2


def simulate_levels(rng, reps: int, seeds: int, n: int, seed_sd_points: float, levels_points) -> list[np.ndarray]:
    """One (reps, seeds, n) table per variant, mean accuracies moved by ``levels_points``, shared examples."""
    z = rng.normal(MU, TAU, size=(reps, 1, n)).astype(np.float32)
    sd = seed_sd_points / 100 / SLOPE
    out = []
    for level in levels_points:
        offsets = (rng.normal(0.0, sd, size=(reps, seeds, 1)) + _level_shift(level)).astype(np.float32)
        out.append(rng.random((reps, seeds, n), dtype=np.float32) < _logistic(z + offsets))
    return out


def contrast_cell(seed_seq, *, seed_sd: float, reps: int) -> dict:
    rng = np.random.default_rng(seed_seq)
    s, n, sesoi = CONTRAST_SETUP["seeds"], CONTRAST_SETUP["n"], CONTRAST_SETUP["sesoi_points"] / 100
    chunk = max(1, CHUNK_ELEMENTS // (7 * s * n))
    info = {
        k: {"kind": "tfidf" if c is None else "neural", "cell": c, "layers": l, "bidirectional": b}
        for k, (c, l, b) in DEFAULT_VARIANTS.items()
    }
    family = derive_contrasts(info, "rnn")
    tost = {+1: [], -1: []}
    inter, fwer = [], []
    done = 0
    while done < reps:
        r = min(chunk, reps - done)
        for sign in (+1, -1):
            a, b = simulate_levels(rng, r, s, n, seed_sd, [sign * 100 * sesoi, 0.0])
            res = contrast_batch([a, b], [1, -1], ALPHA)
            tost[sign].append(tost_p(res["delta"], res["se"], res["df"], sesoi) < ALPHA)
        u1, b1, u2, b2 = simulate_levels(rng, r, s, n, seed_sd, [0.0, 5.0, 3.0, 8.0])
        inter.append(contrast_batch([b2, u2, b1, u1], [1, -1, -1, 1], ALPHA)["p_value"] < ALPHA)
        tables = dict(zip(DEFAULT_VARIANTS, simulate_levels(rng, r, s, n, seed_sd, [0.0] * len(DEFAULT_VARIANTS))))
        ps = np.stack(
            [
                contrast_batch([tables[v] for v in c.weights], list(c.weights.values()), ALPHA)["p_value"]
                for c in family
            ],
            axis=1,
        )
        fwer.append(np.array([min(q for q in holm(row.tolist())) < ALPHA for row in ps]))
        done += r
    return {
        "seed_sd_points": seed_sd,
        "reps": reps,
        "family_size": len(family),
        "tost_at_plus_sesoi": float(np.concatenate(tost[+1]).mean()),
        "tost_at_minus_sesoi": float(np.concatenate(tost[-1]).mean()),
        "interaction_null": float(np.concatenate(inter).mean()),
        "family_wise": float(np.concatenate(fwer).mean()),
    }


# --------------------------------------------------------------------------- seeds: {min, max}, judged over several looks

SEQ_SESOI = 0.02
N_EXAMPLES_SEQ = 400
VARIANTS_2X2 = ("rnn", "lstm", "lstm-x2", "bilstm", "bilstm-x2")
PAIRS = {  # the default comparison's one-factor questions among these variants
    "cell@1-uni": ("lstm", "rnn"),
    "depth@uni": ("lstm-x2", "lstm"),
    "depth@bi": ("bilstm-x2", "bilstm"),
    "direction@1": ("bilstm", "lstm"),
    "direction@2": ("bilstm-x2", "lstm-x2"),
}


def _family() -> list[Contrast]:
    return [
        Contrast(name=n, kind="pair", a=a, b=b, weights={a: 1.0, b: -1.0}, a_side=(a,), b_side=(b,))
        for n, (a, b) in PAIRS.items()
    ]


def _seed_runs(
    rng, true_acc: dict[str, float], difficulty: np.ndarray, seed_sd: float, seeds: int, v: str
) -> np.ndarray:
    """(seeds, n) 0/1 correctness: each seed shifts the variant's accuracy by N(0, seed_sd) on a logit-free scale."""
    shift = rng.normal(0.0, seed_sd, size=(seeds, 1))
    p = np.clip(difficulty[None, :] + (true_acc[v] - difficulty.mean()) + shift, 0.0, 1.0)
    return (rng.random((seeds, difficulty.size)) < p).astype(np.int8)


def adaptive_design(rng, true_acc, seed_sd, schedule: SeedSchedule, alpha: float | None = None) -> list[list[dict]]:
    """Run the adaptive design once; returns the primary rows of every look (``alpha``: per look, else the schedule's)."""
    difficulty = rng.beta(4, 2, size=N_EXAMPLES_SEQ)  # examples differ in how hard they are: the paired part
    y = np.zeros(N_EXAMPLES_SEQ, dtype=np.int64)
    correct = {v: _seed_runs(rng, true_acc, difficulty, seed_sd, schedule.min, v) for v in VARIANTS_2X2}
    family = _family()
    members = {c.name: list(c.weights) for c in family}
    looks = []
    for _ in schedule.looks:
        preds = {v: np.where(c == 1, 0, 1) for v, c in correct.items()}
        rows, _sec, _det = contrast_family(
            family,
            variants={v: {} for v in VARIANTS_2X2},
            correct=correct,
            preds=preds,
            y=y,
            n_classes=2,
            primary="test_accuracy",
            alpha=alpha or schedule.alpha_per_look(ALPHA),
            sesoi=SEQ_SESOI,
        )
        looks.append(rows)
        more = to_extend(rows, members, {v: c.shape[0] for v, c in correct.items()}, schedule)
        if not more:
            break
        for v, count in more.items():
            extra = count - correct[v].shape[0]
            correct[v] = np.concatenate([correct[v], _seed_runs(rng, true_acc, difficulty, seed_sd, extra, v)])
    return looks


def false_verdict(rows: list[dict], true_acc: dict[str, float]) -> bool:
    """Whether a look said better/worse of equal variants (or the wrong way), or equivalent of a sesoi-sized gap."""
    for r in rows:
        a, b = PAIRS[r["name"]]
        true = true_acc[a] - true_acc[b]
        if r["verdict"] in ("better", "worse") and (true == 0 or (r["verdict"] == "better") != (true > 0)):
            return True
        if r["verdict"] == "equivalent" and abs(true) >= SEQ_SESOI - 1e-12:
            return True
    return False


def sequential_cell(seed_seq, *, seed_sd: float, truth: str, reps: int) -> dict:
    """How often the adaptive design (3, 6, 9 seeds; alpha / 3 a look) makes any false verdict at any look."""
    rng = np.random.default_rng(seed_seq)
    true_acc = (
        dict.fromkeys(VARIANTS_2X2, 0.75)
        if truth == "null"
        else dict(zip(VARIANTS_2X2, (0.71, 0.73, 0.75, 0.75, 0.77)))
    )
    schedule = SeedSchedule(min=3, max=9, step=3)
    false = 0
    for _ in range(reps):
        looks = adaptive_design(rng, true_acc, seed_sd, schedule)
        false += any(false_verdict(rows, true_acc) for rows in looks)
    return {"seed_sd_points": 100 * seed_sd, "truth": truth, "reps": reps, "false_verdicts": false / reps}


def render_sequential(cells: list[dict], args) -> str:
    smoke = " Smoke run: too few repetitions, the rates mean nothing." if args.smoke else ""
    lines = [
        "seeds: {min: 3, max: 9} (looks at 3, 6, 9 seeds; alpha 0.05 spent as 0.05 / 3 a look), five variants "
        f"(rnn, lstm, lstm-x2, bilstm, bilstm-x2) and their five one-factor contrasts, {N_EXAMPLES_SEQ} examples: % of "
        "designs with any false verdict at any look (null: any better/worse; margin: neighbours differ by exactly the "
        "sesoi of 2 points, any equivalent). Should be at most 5." + smoke,
        "",
        "| seed sd (acc. points) | null | at the margin |",
        "| ---: | ---: | ---: |",
    ]
    by = {(c["seed_sd_points"], c["truth"]): c for c in cells}
    for sd in sorted({c["seed_sd_points"] for c in cells}):
        lines.append(
            f"| {sd:g} | {100 * by[(sd, 'null')]['false_verdicts']:.1f} | {100 * by[(sd, 'margin')]['false_verdicts']:.1f} |"
        )
    return "\n".join(lines)


def render_contrasts(cells: list[dict], args) -> str:
    smoke = " Smoke run: too few repetitions, the rates mean nothing." if args.smoke else ""
    size = cells[0]["family_size"] if cells else 0
    lines = [
        f"Contrasts (%), {CONTRAST_SETUP['seeds']} seeds per variant, {CONTRAST_SETUP['n']} examples, sesoi "
        f"±{CONTRAST_SETUP['sesoi_points']} points, alpha {ALPHA}; {args.reps} repetitions per cell. Every rate here is an "
        f"error rate and should be at most 5. Family-wise: any of the default comparison's {size} derived contrasts "
        "significant after Holm, all variants equal." + smoke,
        "",
        "| seed sd (acc. points) | 'equivalent' at +sesoi | 'equivalent' at −sesoi | interaction, main effects present | family-wise |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c['seed_sd_points']} | {100 * c['tost_at_plus_sesoi']:.1f} | {100 * c['tost_at_minus_sesoi']:.1f} | "
            f"{100 * c['interaction_null']:.1f} | {100 * c['family_wise']:.1f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- hierarchical bootstrap


def bootstrap_pvalues(rng, a: np.ndarray, b: np.ndarray, n_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """Hierarchical paired bootstrap of every repetition in (reps, seeds, n) arrays: (p-values, zero outside the CI)."""
    reps, s_a, n = a.shape
    s_b = b.shape[1]
    idx = rng.integers(0, n, size=(n_boot, n))
    idx += np.arange(n_boot)[:, None] * n
    weights = np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)
    # Accuracy of every run on every example resample: one (reps*seeds, n) x (n, n_boot) product.
    acc_a = (a.reshape(-1, n).astype(np.float32) @ weights.T).reshape(reps, s_a, n_boot) / n
    acc_b = (b.reshape(-1, n).astype(np.float32) @ weights.T).reshape(reps, s_b, n_boot) / n
    rep = np.arange(reps)[:, None, None]
    draw = np.arange(n_boot)[None, None, :]
    pick_a = rng.integers(0, s_a, size=(reps, s_a, n_boot))
    pick_b = rng.integers(0, s_b, size=(reps, s_b, n_boot))
    deltas = acc_a[rep, pick_a, draw].mean(axis=1) - acc_b[rep, pick_b, draw].mean(axis=1)  # (reps, n_boot)
    p_le = (np.count_nonzero(deltas <= 0, axis=1) + 1) / (n_boot + 1)
    p_ge = (np.count_nonzero(deltas >= 0, axis=1) + 1) / (n_boot + 1)
    low, high = np.percentile(deltas, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)], axis=1)
    return np.minimum(1.0, 2.0 * np.minimum(p_le, p_ge)), (low > 0) | (high < 0)


# --------------------------------------------------------------------------- cells


def run_cell(seed_seq, *, seed_sd, seeds, n, reps, boot_reps, n_boot, shift=0.0) -> dict:
    rng = np.random.default_rng(seed_seq)
    chunk = max(1, CHUNK_ELEMENTS // (2 * seeds * n))
    t_reject, t_delta, b_reject, b_outside = [], [], [], []
    t_time = b_time = 0.0
    done = 0
    while done < reps:
        r = min(chunk, reps - done)
        a, b = simulate(rng, r, seeds, n, seed_sd, shift)
        t0 = time.perf_counter()
        res = paired_comparison_batch(a, b, ALPHA)
        t_time += time.perf_counter() - t0
        t_reject.append(res["p_value"] < ALPHA)
        t_delta.append(res["delta"])
        k = min(r, boot_reps - done)
        if k > 0:
            t0 = time.perf_counter()
            # Keep the bootstrap's (k*seeds, n_boot) products small whatever the chunk.
            for s in range(0, k, 50):
                p, outside = bootstrap_pvalues(rng, a[s : min(k, s + 50)], b[s : min(k, s + 50)], n_boot)
                b_reject.append(p < ALPHA)
                b_outside.append(outside)
            b_time += time.perf_counter() - t0
        done += r
    t_reject = np.concatenate(t_reject)
    t_delta = np.concatenate(t_delta)
    b_reject = np.concatenate(b_reject)
    positive = shift > 0
    return {
        "seed_sd_points": seed_sd,
        "seeds": seeds,
        "n": n,
        "reps": reps,
        "boot_reps": int(b_reject.size),
        # In the power cell only a rejection in the right direction counts.
        "t_rate": float(np.mean(t_reject & (t_delta > 0))) if positive else float(np.mean(t_reject)),
        "boot_rate": float(np.mean(b_reject & (t_delta[: b_reject.size] > 0)))
        if positive
        else float(np.mean(b_reject)),
        "boot_ci_excludes_zero": float(np.mean(np.concatenate(b_outside))),
        "mean_delta": float(t_delta.mean()),
        "t_seconds": round(t_time, 3),
        "boot_seconds": round(b_time, 3),
    }


def _pct(rate: float, check: bool) -> str:
    text = f"{100 * rate:.1f}"
    if check and not 0.01 <= rate <= 0.07:
        text += " (!)"
    return text


def render(cells: list[dict], power: dict, args) -> str:
    sd_t = 100 * math.sqrt(ALPHA * (1 - ALPHA) / args.reps)
    sd_b = 100 * math.sqrt(ALPHA * (1 - ALPHA) / args.boot_reps)
    smoke = " Smoke run: too few repetitions, the rates mean nothing." if args.smoke else ""
    lines = [
        f"False-positive rate (%) at alpha = {ALPHA}; t-test: {args.reps} repetitions per cell (binomial sd {sd_t:.2f} points), "
        f"hierarchical bootstrap: {args.boot_reps} of the same repetitions, {args.n_boot} draws each (sd {sd_b:.2f}). "
        "(!) marks a rate outside [1, 7]." + smoke,
        "",
        "| seed sd (acc. points) | seeds per variant | test examples | t (seed + example) | hierarchical bootstrap |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c['seed_sd_points']} | {c['seeds']} | {c['n']} | {_pct(c['t_rate'], not args.smoke)} | "
            f"{_pct(c['boot_rate'], not args.smoke)} |"
        )
    lines += [
        "",
        f"Power (%): true difference +{POWER['delta_points']} points (observed mean {100 * power['mean_delta']:.2f}), "
        f"seed sd {POWER['seed_sd']} point, {POWER['seeds']} seeds each, {POWER['n']} examples; "
        "detected = p < 0.05 with the variant ahead.",
        "",
        "| cell | t (seed + example) | hierarchical bootstrap |",
        "| --- | ---: | ---: |",
        f"| +{POWER['delta_points']} points | {100 * power['t_rate']:.1f} | {100 * power['boot_rate']:.1f} |",
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    root = np.random.SeedSequence(args.seed)
    grid = [(sd, s, n) for sd in SEED_SDS for s in SEEDS for n in EXAMPLES]
    children = root.spawn(len(grid) + 1)
    cells = []
    for (sd, s, n), child in zip(grid, children):
        cells.append(
            run_cell(child, seed_sd=sd, seeds=s, n=n, reps=args.reps, boot_reps=args.boot_reps, n_boot=args.n_boot)
        )
        print(
            f"  sd {sd} seeds {s} n {n}: t {100 * cells[-1]['t_rate']:.1f}% bootstrap {100 * cells[-1]['boot_rate']:.1f}%",
            file=sys.stderr,
            flush=True,
        )
    power = run_cell(
        children[-1],
        seed_sd=POWER["seed_sd"],
        seeds=POWER["seeds"],
        n=POWER["n"],
        reps=args.reps,
        boot_reps=args.boot_reps,
        n_boot=args.n_boot,
        shift=shift_for(POWER["delta_points"]),
    )
    table = render(cells, power, args)
    print(table, flush=True)
    contrast_children = np.random.SeedSequence([args.seed, 28]).spawn(len(CONTRAST_SDS))
    contrasts = [contrast_cell(child, seed_sd=sd, reps=args.reps) for sd, child in zip(CONTRAST_SDS, contrast_children)]
    contrast_table = render_contrasts(contrasts, args)
    print("\n" + contrast_table, flush=True)
    seq_children = np.random.SeedSequence([args.seed, 29]).spawn(2 * len(SEQUENTIAL_SDS))
    sequential = [
        sequential_cell(child, seed_sd=sd, truth=truth, reps=max(2, args.reps // 20))
        for (sd, truth), child in zip([(sd, t) for sd in SEQUENTIAL_SDS for t in ("null", "margin")], seq_children)
    ]
    sequential_table = render_sequential(sequential, args)
    print("\n" + sequential_table, flush=True)
    elapsed = time.perf_counter() - start
    print(
        f"total {elapsed:.1f}s (t-test {sum(c['t_seconds'] for c in cells + [power]):.1f}s, "
        f"bootstrap {sum(c['boot_seconds'] for c in cells + [power]):.1f}s, the rest simulation)",
        file=sys.stderr,
    )
    result = {
        "cells": cells,
        "power": power,
        "table_markdown": table,
        "contrasts": contrasts,
        "contrast_table_markdown": contrast_table,
        "sequential": sequential,
        "sequential_table_markdown": sequential_table,
        "seconds": round(elapsed, 2),
        "setup": {
            "smoke": args.smoke,
            "reps": args.reps,
            "boot_reps": args.boot_reps,
            "n_boot": args.n_boot,
            "seed": args.seed,
            "alpha": ALPHA,
            "difficulty_logit": {"mean": MU, "sd": TAU},
            "mean_accuracy": round(_mean_accuracy(), 4),
            "seed_offsets": "logit scale, sd = points / 100 / E[p(1-p)]",
            "power_cell": POWER,
        },
        "machine": C.machine_info(1),
    }
    C.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
