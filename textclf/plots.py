"""PNG figures logged as MLflow artifacts: confusion matrices and learning curves.

Figures are drawn on :class:`matplotlib.figure.Figure` objects rendered by the
Agg canvas instead of through ``pyplot``: that needs no display, never changes
the process-wide backend, and leaves no figures open in a global registry when
many runs are plotted in one process. matplotlib is imported inside the
functions so ``import textclf`` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_confusion_matrix", "plot_learning_curves"]

_DPI = 120


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

    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([str(x) for x in label_names], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels([str(x) for x in label_names])
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
