"""Equal-budget tuning, read back: expected best validation score vs trials, the ranking at k = 1 and k = N, the cost.

A comparison at default settings answers "which architecture likes these
defaults"; tuned separately with an equal budget, rankings often change
(Melis et al. 2018; Dodge et al. 2019, "Show Your Work"). For each variant's
N trial values sorted ascending, v_(1) ≤ … ≤ v_(N), the expected best of k
configurations drawn from them is (Dodge et al. 2019)::

    E[max of k] = Σ_i v_(i) · [(i/N)^k − ((i−1)/N)^k],   k = 1..N

k = 1 is the mean trial (one configuration from the space, about what an
untuned run gets); k = N approaches the best found. A pruned trial enters
with the best value it reached before the pruner stopped it (a lower bound
of its full training); a failed one with its best before it failed, or, when
it reached no validation at all, the study's worst value. TPE's trials are
not independent draws; the curve reads them as if they were.

For a metric where lower is better (``val_loss``) the same formula gives the
expected minimum, on the negated values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textclf.analysis.plots import literal_text


def expected_max(values: Sequence[float], *, maximize: bool = True) -> list[float]:
    """E[best of k draws with replacement from ``values``], k = 1..len(values) (Dodge et al. 2019)."""
    if not values:
        return []
    sign = 1.0 if maximize else -1.0
    v = sorted(sign * float(x) for x in values)
    n = len(v)
    return [
        sign * sum(v[i - 1] * ((i / n) ** k - ((i - 1) / n) ** k) for i in range(1, n + 1)) for k in range(1, n + 1)
    ]


def tuning_entry(tuned) -> dict[str, Any]:
    """``variants.<name>.tuning`` of summary.json for a finished search (:class:`textclf.pipeline.tune.Tuned`)."""
    spec, trials = tuned.spec, tuned.trials
    maximize = spec.direction == "maximize"
    known = [r.value for r in trials if r.value is not None]
    worst = (min if maximize else max)(known)
    values = [worst if r.value is None else float(r.value) for r in trials]
    complete = [r for r in trials if r.state == "complete"]
    mean_complete = sum(r.train_seconds for r in complete) / len(complete)
    epochs = tuned.config.train.epochs
    return {
        "trials": len(trials),
        "pruned": sum(r.state == "pruned" for r in trials),
        "failed": sum(r.state == "failed" for r in trials),
        "metric": spec.metric,
        "direction": spec.direction,
        "pruner": spec.pruner,
        "seed": tuned.seed,
        "best_trial": tuned.best.number,
        "best_params": dict(tuned.best.params),
        "best_val": float(tuned.best.value),
        "expected_max_val": expected_max(values, maximize=maximize),
        "trial_values": [
            {
                "number": r.number,
                "state": r.state,
                "value": v,
                "epochs": r.epochs,
                "train_seconds": round(r.train_seconds, 3),
            }
            for r, v in zip(trials, values)
        ],
        "train_seconds": sum(r.train_seconds for r in trials),
        "epochs": sum(r.epochs for r in trials),
        "max_epochs": len(trials) * epochs,
        "completed_mean_seconds": mean_complete,
        "unpruned_estimate_seconds": len(trials) * mean_complete,
        "space": {k: d.to_dict() for k, d in tuned.space.items()},
        "study_key": tuned.study_key,
        "run_id": tuned.run_id,
    }


def summarize(summary: dict[str, Any]) -> None:
    """Add ``summary["tuning"]`` (the search's settings, the rankings at k = 1 and k = N, the verdict) once every
    tuned variant has its ``tuning`` entry."""
    r = ranking(summary)
    if r is None:
        return
    t = next(v["tuning"] for v in summary["variants"].values() if v.get("tuning"))
    summary["tuning"] = {
        "trials": r["n"],
        "metric": t["metric"],
        "pruner": t["pruner"],
        "sampler": "optuna TPE (multivariate)",
        "seed": t["seed"],
        "ranking": r,
    }
    summary["tuning"]["verdict"] = verdict(summary)


def ranking(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The tuned variants ranked by E[best] at k = 1 and at k = N, and whether the order is the same."""
    tuned = {n: v["tuning"] for n, v in summary.get("variants", {}).items() if v.get("tuning")}
    if not tuned:
        return None
    sign = 1 if next(iter(tuned.values()))["direction"] == "maximize" else -1
    names = list(tuned)

    def order(index: int) -> list[str]:
        return sorted(names, key=lambda n: (-sign * tuned[n]["expected_max_val"][index], names.index(n)))

    first, last = order(0), order(-1)
    flipped = [(a, b) for i, a in enumerate(first) for b in first[i + 1 :] if last.index(a) > last.index(b)]
    n = min(len(t["expected_max_val"]) for t in tuned.values())
    return {"k1": first, "kN": last, "n": n, "same": first == last, "flipped": [list(p) for p in flipped]}


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if metric == "val_loss" else f"{100 * value:.1f}"


def verdict(summary: dict[str, Any]) -> str | None:
    """One sentence: does the ranking at k = 1 (≈ untuned) survive an equal tuning budget (k = N)?"""
    r = (summary.get("tuning") or {}).get("ranking")
    if not r:
        return None
    if len(r["k1"]) < 2:
        return "Only one variant was tuned: there is no ranking to compare."
    metric = next(v["tuning"]["metric"] for v in summary["variants"].values() if v.get("tuning"))
    text = f"Ranking by expected best {metric} at k = 1 (one configuration from the space, ≈ untuned): {' > '.join(r['k1'])}; at k = {r['n']}: {' > '.join(r['kN'])}. "
    if r["same"]:
        return text + "**The ranking holds under an equal tuning budget.**"
    curves = {n: v["tuning"]["expected_max_val"] for n, v in summary["variants"].items() if v.get("tuning")}
    swaps = "; ".join(
        f"{b} overtakes {a} ({_fmt(metric, curves[b][-1])} vs {_fmt(metric, curves[a][-1])} at k = {r['n']})"
        for a, b in r["flipped"]
    )
    return text + f"**Tuning changes the ranking**: {swaps}."


def markdown(summary: dict[str, Any]) -> list[str]:
    """The report's tuning section (empty when nothing was tuned)."""
    tuned = {n: v["tuning"] for n, v in summary.get("variants", {}).items() if v.get("tuning")}
    if not tuned:
        return []
    any_t = next(iter(tuned.values()))
    metric, n = any_t["metric"], min(t["trials"] for t in tuned.values())
    unit = "" if metric == "val_loss" else " %"
    half = max(1, math.ceil(n / 2))
    lines = [
        "## Tuning: an equal budget per variant",
        "",
        f"Every tuned variant got **{n} trials** (Optuna TPE seeded by {any_t['seed']}, pruner {any_t['pruner']}), each chosen by "
        f"`{metric}` on validation data; the final runs above use each variant's best trial's configuration. "
        "Training seconds count training steps only; *without pruning* estimates the trials at the mean time of a completed trial.",
        "",
        f"| variant | trials | pruned | best {metric}{unit} | E[best] k=1 | k={half} | k={n} | train s | without pruning ≈ s | epochs (of max) | best params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, t in tuned.items():
        curve = t["expected_max_val"]
        params = ", ".join(f"{k}={_short(v)}" for k, v in t["best_params"].items())
        lines.append(
            f"| {name} | {t['trials']} | {t['pruned']} | {_fmt(metric, t['best_val'])} | {_fmt(metric, curve[0])} | "
            f"{_fmt(metric, curve[half - 1])} | {_fmt(metric, curve[-1])} | {t['train_seconds']:.1f} | "
            f"{t['unpruned_estimate_seconds']:.1f} | {t['epochs']} ({t['max_epochs']}) | {params} |"
        )
    untuned = [name for name, v in summary["variants"].items() if not v.get("tuning")]
    if untuned:
        lines += ["", f"Not tuned: {', '.join(untuned)} (TF-IDF chooses its C on validation data)."]
    names = list(tuned)
    lines += [
        "",
        f"**Expected best {metric}{unit} after k trials**, E[max of k] = Σ_i v_(i)·[(i/N)^k − ((i−1)/N)^k] over the trial values "
        "sorted ascending (Dodge et al. 2019). k = 1 is the mean trial, about what an untuned configuration from the space gets. "
        "Pruned trials enter with the best value they reached before they were stopped, failed ones with theirs (or the study's "
        "worst); TPE's trials are not independent draws, and the curve reads them as if they were.",
        "",
        "| k | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for k in range(1, n + 1):
        lines.append(f"| {k} | " + " | ".join(_fmt(metric, tuned[x]["expected_max_val"][k - 1]) for x in names) + " |")
    lines += ["", verdict(summary) or "", ""]
    return lines


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


@literal_text
def plot_expected_max(summary: dict[str, Any], path: str | Path) -> Path | None:
    """One line per tuned variant: expected best validation score against the number of trials k."""
    from textclf.analysis.plots import _colours, _new_figure, _save

    tuned = {n: v["tuning"] for n, v in summary.get("variants", {}).items() if v.get("tuning")}
    if not tuned:
        return None
    metric = next(iter(tuned.values()))["metric"]
    scale = 1.0 if metric == "val_loss" else 100.0
    fig = _new_figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for (name, t), colour in zip(tuned.items(), _colours(len(tuned))):
        curve = t["expected_max_val"]
        ax.plot(
            range(1, len(curve) + 1), [scale * v for v in curve], marker="o", markersize=3, color=colour, label=name
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # k counts trials
    ax.set_xlabel("trials k")
    ax.set_ylabel(f"expected best {metric}" + ("" if metric == "val_loss" else " (%)"))
    ax.set_title(f"Expected best {metric} after k trials (equal budget)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def render_table(summary: dict[str, Any]):
    """The tuning table for the terminal (a :class:`rich.table.Table`), or None when nothing was tuned."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    tuned = {n: v["tuning"] for n, v in summary.get("variants", {}).items() if v.get("tuning")}
    if not tuned:
        return None
    metric = next(iter(tuned.values()))["metric"]
    table = Table(
        title=f"Tuning: {next(iter(tuned.values()))['trials']} trials per variant",
        caption=Text((verdict(summary) or "").replace("**", "")),
    )
    for i, h in enumerate(
        (
            "variant",
            "trials",
            "pruned",
            f"best {metric}",
            "E[best] k=1",
            "E[best] k=N",
            "train s",
            "without pruning ≈ s",
        )
    ):
        table.add_column(escape(h), justify="left" if i == 0 else "right")
    for name, t in tuned.items():
        c = t["expected_max_val"]
        table.add_row(
            Text(name),
            str(t["trials"]),
            str(t["pruned"]),
            _fmt(metric, t["best_val"]),
            _fmt(metric, c[0]),
            _fmt(metric, c[-1]),
            f"{t['train_seconds']:.1f}",
            f"{t['unpruned_estimate_seconds']:.1f}",
        )
    return table
