"""Every figure textclf draws: per-run confusion matrices and learning curves;
the two figures of the answer (what each contrast buys, with its interval and
verdict, and quality against cost); and the comparison's accuracy-vs-cost,
depth and mean-learning-curve plots.

Figures are drawn on :class:`matplotlib.figure.Figure` objects rendered by the
Agg canvas instead of through ``pyplot``: that needs no display, never changes
the process-wide backend, and leaves no figures open in a global registry when
many runs are plotted in one process. matplotlib is imported inside the
functions so ``import textclf`` stays fast. The comparison plots read the
summary dict built by :func:`textclf.analysis.compare.compare` (and, for
learning curves, the run records' per-epoch histories).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "pareto_front",
    "plot_accuracy_by_depth",
    "plot_accuracy_by_length",
    "plot_accuracy_vs_cost",
    "plot_confusion_matrix",
    "plot_contrasts",
    "plot_cost_quality",
    "plot_learning_curves",
    "plot_mean_learning_curves",
]

_DPI = 120


_MAX_TICKS = 60  # class names per axis of a confusion matrix


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def literal_text(plot):
    """Decorates a plot function: every text it makes is literal, never read as TeX.

    Titles, legends, annotations and tick labels hold the user's names
    (variants, labels): ``$x^$`` would be parsed as maths and fail to render
    after every training. No textclf plot writes maths.
    """
    import functools

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return wrapper


@literal_text
def plot_confusion_matrix(
    cm: Sequence[Sequence[int]],
    label_names: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Draw a confusion matrix (rows = true, columns = predicted) to a PNG.

    Cells show raw counts; colours show each row normalised by its total
    (i.e. per-class recall) so that rare classes remain readable next to
    frequent ones. Returns the written path.
    """
    import numpy as np

    counts = np.asarray(cm, dtype=np.int64)
    n = len(label_names)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix has shape {counts.shape}, expected ({n}, {n}) for {n} labels")
    row_totals = counts.sum(axis=1, keepdims=True)
    # Classes absent from y_true have an all-zero row: show it as 0, not NaN.
    normalised = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64), where=row_totals > 0)

    side = min(max(4.0, 0.6 * n + 2.5), 24.0)
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")

    # Past ~60 classes the names overlap even at the largest size, and drawing a thousand of them takes
    # minutes: name every k-th row and column.
    ticks = range(0, n, -(-n // _MAX_TICKS))
    names = [str(label_names[i]) for i in ticks]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix")

    # Past ~30 classes the numbers would overlap; colours alone remain useful.
    if n <= 30:
        fontsize = 10 if n <= 10 else 7
        for i in range(n):
            for j in range(n):
                # Dark text on light cells, light text on dark cells.
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, f"{counts[i, j]:d}", ha="center", va="center", color=colour, fontsize=fontsize)
    return _save(fig, path)


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for index, row in enumerate(history):
        value = row.get(key)
        if value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        epoch = row.get("epoch", index + 1)
        xs.append(float(epoch if epoch is not None else index + 1))
        ys.append(value)
    return xs, ys


@literal_text
def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Draw train vs validation loss and accuracy per epoch to a PNG.

    ``history`` holds one dict per epoch (``epoch``, ``train_loss``,
    ``val_loss``, ``train_accuracy``, ``val_accuracy``, ...). Missing,
    ``None`` or non-finite values are skipped; a panel with no data says so
    instead of failing. Returns the written path.
    """
    panels = (
        ("loss", ("train_loss", "val_loss")),
        ("accuracy", ("train_accuracy", "val_accuracy")),
    )
    fig = _new_figure(10.0, 4.0)
    axes = fig.subplots(1, 2)
    for ax, (quantity, keys) in zip(axes, panels):
        plotted = False
        for key in keys:
            xs, ys = _series(history, key)
            if not xs:
                continue
            style = "-" if key.startswith("train") else "--"
            ax.plot(xs, ys, style, marker="o", markersize=3, label=key.split("_", 1)[0])
            plotted = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.set_title(quantity)
        if plotted:
            ax.legend()
            ax.grid(True, alpha=0.3)
            # Epochs are whole numbers; fractional ticks would be misleading.
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _stat(entry: dict[str, Any], key: str) -> tuple[float | None, float]:
    """(mean, sd) of a summary entry that is either {"mean", "sd"} or a bare number."""
    value = entry.get(key)
    if isinstance(value, dict):
        return _finite(value.get("mean")), _finite(value.get("sd")) or 0.0
    return _finite(value), 0.0


def _colours(n: int) -> list:
    from matplotlib import colormaps

    # tab10 stays distinguishable for the usual handful of variants; tab20 beyond that.
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _marker(entry: dict[str, Any]) -> str:
    if entry.get("kind") != "neural":
        return "s"
    return "^" if entry.get("bidirectional") else "o"


@literal_text
def plot_accuracy_vs_cost(
    summary: dict[str, Any],
    cost_key: str,
    path: str | Path,
    *,
    xlabel: str,
    log_x: bool | None = None,
    title: str | None = None,
) -> Path:
    """Scatter mean test accuracy (± sd over seeds) against a cost metric, one labelled point per variant.

    ``cost_key`` names a summary field (``params``, ``train_seconds``, ...).
    Variants without that value are left out. ``log_x=None`` picks a log axis
    when the costs are positive and span more than a factor of 20, since
    parameter counts and training times of different models differ by orders
    of magnitude. Markers: circle = unidirectional, triangle = bidirectional,
    square = non-neural.
    """
    variants = summary.get("variants", {})
    points = []
    for name, entry in variants.items():
        x, x_sd = _stat(entry, cost_key)
        y, y_sd = _stat(entry, "test_accuracy")
        if x is None or y is None:
            continue
        points.append((name, entry, x, x_sd, 100 * y, 100 * y_sd))

    fig = _new_figure(7.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    baseline = summary.get("baseline")
    for (name, entry, x, x_sd, y, y_sd), colour in zip(points, _colours(len(points))):
        ax.errorbar(
            x,
            y,
            yerr=y_sd,
            xerr=x_sd or None,
            fmt=_marker(entry),
            color=colour,
            markersize=8 if name == baseline else 6,
            capsize=3,
        )
        ax.annotate(
            name + (" (baseline)" if name == baseline else ""),
            (x, y),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    if points:
        xs = [p[2] for p in points]
        if log_x is None:
            log_x = min(xs) > 0 and max(xs) / min(xs) > 20
        if log_x and min(xs) > 0:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    else:
        _no_data(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or f"Test accuracy vs {xlabel.split(' (')[0]}")
    fig.tight_layout()
    return _save(fig, path)


@literal_text
def plot_accuracy_by_depth(summary: dict[str, Any], path: str | Path, title: str | None = None) -> Path | None:
    """Mean test accuracy (± sd) against number of layers, per cell and direction.

    Only neural variants are drawn: one solid line per cell for
    unidirectional and one dashed line for bidirectional encoders. When
    several variants share a cell, direction and depth (e.g. they differ in
    another setting), every one is drawn as a point and the line joins the
    best of them at each depth. Returns ``None`` without writing anything when
    the neural variants span fewer than two depths, as there is no trend to show.
    """
    series: dict[tuple[str, bool], dict[int, list[tuple[str, float, float]]]] = {}
    for name, entry in summary.get("variants", {}).items():
        if entry.get("kind") != "neural" or entry.get("layers") is None:
            continue
        y, y_sd = _stat(entry, "test_accuracy")
        if y is None:
            continue
        key = (str(entry.get("cell")), bool(entry.get("bidirectional")))
        series.setdefault(key, {}).setdefault(int(entry["layers"]), []).append((name, 100 * y, 100 * y_sd))
    depths = {d for by_depth in series.values() for d in by_depth}
    if len(depths) < 2:
        return None

    from matplotlib.ticker import MaxNLocator

    cells = sorted({cell for cell, _ in series})
    colour_of = dict(zip(cells, _colours(len(cells))))
    fig = _new_figure(7.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for (cell, bidirectional), by_depth in sorted(series.items()):
        colour = colour_of[cell]
        style = "--" if bidirectional else "-"
        marker = "^" if bidirectional else "o"
        label = f"{cell} ({'bidirectional' if bidirectional else 'unidirectional'})"
        line_x, line_y = [], []
        for depth in sorted(by_depth):
            entries = by_depth[depth]
            for name, y, y_sd in entries:
                ax.errorbar(depth, y, yerr=y_sd, fmt=marker, color=colour, capsize=3)
                if len(entries) > 1:
                    ax.annotate(name, (depth, y), textcoords="offset points", xytext=(5, 3), fontsize=7)
            best = max(entries, key=lambda e: e[1])
            line_x.append(depth)
            line_y.append(best[1])
        # Markers on the line itself so a single-depth series still shows (and its legend entry matches).
        ax.plot(line_x, line_y, style, marker=marker, color=colour, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layers")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "Test accuracy by depth")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


@literal_text
def plot_accuracy_by_length(summary: dict[str, Any], path: str | Path, title: str | None = None) -> Path | None:
    """Test accuracy per text-length quintile, one line per variant (the baseline dashed).

    Reads ``variants.<name>.slices.length`` of the summary; returns ``None``
    without writing anything when no variant has length slices.
    """
    series = {name: (entry.get("slices") or {}).get("length") for name, entry in summary.get("variants", {}).items()}
    series = {name: rows for name, rows in series.items() if rows}
    if not series:
        return None
    fig = _new_figure(7.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    baseline = summary.get("baseline")
    for (name, rows), colour in zip(series.items(), _colours(len(series))):
        ax.plot(
            range(len(rows)),
            [100 * r["accuracy"] for r in rows],
            "--" if name == baseline else "-",
            marker="o",
            color=colour,
            label=name + (" (baseline)" if name == baseline else ""),
        )
    bins = next(iter(series.values()))
    ax.set_xticks(range(len(bins)))
    ax.set_xticklabels([f"{r['lo']}–{r['hi']}\n(n={r['n']})" for r in bins], fontsize=8)
    ax.set_xlabel("text length in tokens (quintiles of the test set)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "Where each variant wins: accuracy by text length")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _epoch_values(history: Sequence[dict[str, Any]], key: str) -> dict[int, float]:
    values: dict[int, float] = {}
    for index, row in enumerate(history or []):
        value = _finite(row.get(key))
        if value is None:
            continue
        epoch = row.get("epoch")
        values[int(epoch) if epoch is not None else index + 1] = value
    return values


@literal_text
def plot_mean_learning_curves(
    records: Sequence[Any],
    path: str | Path,
    *,
    key: str = "val_accuracy",
    title: str | None = None,
) -> Path:
    """Per-epoch ``key`` averaged over seeds, one line per variant (shaded ± sd when there are several seeds).

    ``records`` need ``variant`` and ``history`` attributes. Runs without a
    history (the TF-IDF baseline) are skipped. Seeds that stopped early
    contribute only to the epochs they reached, so late epochs may average
    fewer seeds.
    """
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    per_variant: dict[str, list[dict[int, float]]] = {}
    for rec in records:
        values = _epoch_values(getattr(rec, "history", None) or [], key)
        if values:
            per_variant.setdefault(rec.variant, []).append(values)

    fig = _new_figure(8.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for (name, runs), colour in zip(per_variant.items(), _colours(len(per_variant))):
        epochs = sorted({e for run in runs for e in run})
        means, sds = [], []
        for e in epochs:
            at_epoch = np.array([run[e] for run in runs if e in run])
            means.append(at_epoch.mean())
            sds.append(at_epoch.std(ddof=1) if at_epoch.size > 1 else 0.0)
        means_arr, sds_arr = np.array(means), np.array(sds)
        scale = 100.0 if "accuracy" in key else 1.0
        ax.plot(epochs, scale * means_arr, marker="o", markersize=3, color=colour, label=f"{name} (n={len(runs)})")
        if len(runs) > 1:
            ax.fill_between(
                epochs, scale * (means_arr - sds_arr), scale * (means_arr + sds_arr), color=colour, alpha=0.15
            )
    if per_variant:
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _no_data(ax, "no per-epoch history")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key.replace("_", " ") + (" (%)" if "accuracy" in key else ""))
    ax.set_title(title or f"{key.replace('_', ' ')} per epoch (mean over seeds)")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- the answer's figures

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
