"""The two figures of the answer: what each contrast buys (with its interval and verdict), and quality against cost.

Both read the summary of :func:`textclf.analysis.compare.compare` (its
``contrasts``, ``primary_metric``, ``sesoi`` and per-variant figures) and are
drawn like the other comparison plots (:mod:`textclf.analysis.plots`: Agg
canvas, no pyplot state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textclf.analysis.plots import _colours, _marker, _new_figure, _save, _stat, literal_text

__all__ = ["pareto_front", "plot_contrasts", "plot_cost_quality"]

VERDICT_COLOURS = {"better": "#1a7f37", "worse": "#cf222e", "equivalent": "#0969da", "inconclusive": "#8c959f"}
_LABELS = {"test_accuracy": "test accuracy (%)", "test_macro_f1": "test macro-F1 (%)"}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names not dominated in (quality: higher is better, cost: lower is better), by cost."""
    front = [
        n
        for n, (q, c) in points.items()
        if not any((q2 >= q and c2 <= c) and (q2 > q or c2 < c) for m, (q2, c2) in points.items() if m != n)
    ]
    return sorted(front, key=lambda n: points[n][1])


@literal_text
def plot_contrasts(summary: dict[str, Any], path: str | Path) -> Path | None:
    """Each contrast's difference with its interval, the ±sesoi band shaded, coloured by verdict (None: no contrasts)."""
    rows = summary.get("contrasts") or []
    if not rows:
        return None
    sesoi = 100 * float(summary.get("sesoi") or 0.0)
    fig = _new_figure(7.5, 0.45 * len(rows) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.axvspan(-sesoi, sesoi, color="#0969da", alpha=0.12, label=f"±{sesoi:g} points (sesoi)")
    ax.axvline(0.0, color="black", lw=0.8)
    for i, r in enumerate(reversed(rows)):
        colour = VERDICT_COLOURS.get(r["verdict"], "#8c959f")
        d, lo, hi = 100 * r["delta"], 100 * r["ci_low"], 100 * r["ci_high"]
        ax.errorbar(d, i, xerr=[[d - lo], [hi - d]], fmt="o", color=colour, capsize=3)
        ax.annotate(r["verdict"], (hi, i), textcoords="offset points", xytext=(4, -3), fontsize=7, color=colour)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["name"] for r in reversed(rows)], fontsize=8)
    metric = _LABELS.get(summary.get("primary_metric", "test_accuracy"), "test score").replace(" (%)", "")
    ax.set_xlabel(f"difference a − b in {metric} (points), {1 - summary.get('alpha', 0.05):.0%} interval")
    ax.set_title("What each contrast buys")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


@literal_text
def plot_cost_quality(summary: dict[str, Any], path: str | Path) -> Path | None:
    """Primary metric against training seconds and against p50 latency (seed sd as error bars), Pareto front joined."""
    variants = summary.get("variants") or {}
    metric = summary.get("primary_metric", "test_accuracy")
    panels = [("train_seconds", "training time (s)"), ("latency_p50_ms", "p50 latency (ms)")]
    if not any(_stat(v, k)[0] is not None for v in variants.values() for k, _ in panels):
        return None
    fig = _new_figure(11.0, 4.6)
    colours = dict(zip(variants, _colours(len(variants))))
    for j, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, 2, j + 1)
        points = {}
        for name, entry in variants.items():
            x, x_sd = _stat(entry, key)
            y, y_sd = _stat(entry, metric)
            if x is None or y is None:
                continue
            points[name] = (100 * y, x)
            ax.errorbar(
                x, 100 * y, yerr=100 * y_sd, xerr=x_sd or None, fmt=_marker(entry), color=colours[name], capsize=3
            )
            ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        front = pareto_front(points)
        if len(front) > 1:
            ax.plot(
                [points[n][1] for n in front],
                [points[n][0] for n in front],
                "--",
                color="black",
                lw=0.8,
                label="Pareto front",
            )
            ax.legend(loc="lower right", fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel(_LABELS.get(metric, metric))
        ax.grid(True, alpha=0.3)
    fig.suptitle("Quality against cost (mean ± sd over seeds; dashed: not dominated)")
    return _save(fig, path)
