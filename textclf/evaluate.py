"""Evaluation metrics and inference-cost measurement shared by every model.

All classifiers (neural and baseline) are scored by the same functions so that
their numbers are comparable: :func:`classification_metrics` turns class
probabilities into a nested metrics dict, :func:`flatten_metrics` turns that
dict into MLflow-ready scalar metrics, and :func:`measure_latency` times any
``predict_fn(list[str])`` the same way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "classification_report_text",
    "expected_calibration_error",
    "flatten_metrics",
    "measure_latency",
]

# Keys of classification_metrics() that hold scalars, in a stable order.
SCALAR_KEYS = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "log_loss", "roc_auc", "ece")

# MLflow accepts alphanumerics, "_", "-", ".", " " and "/" in metric names; "/"
# is excluded for label fragments because MLflow also rejects names that are
# not already normalised paths (e.g. "a//b", "x/../y").
_UNSAFE_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_\-. ]")


def _check_inputs(y_true: Any, proba: Any, n_labels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if p.ndim != 2:
        raise ValueError(f"proba must be 2-D (N, C), got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} rows but proba has {p.shape[0]}")
    if y.shape[0] == 0:
        raise ValueError("cannot compute metrics on an empty set")
    if n_labels is not None and p.shape[1] != n_labels:
        raise ValueError(f"proba has {p.shape[1]} columns but {n_labels} label names were given")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError("y_true must hold integer class indices")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"y_true holds class indices outside [0, {p.shape[1] - 1}]")
    return y, p


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence.

    The max probability of each row is placed in one of ``n_bins`` equal-width
    bins over (0, 1] (bin ``i`` holds ``i/n < conf <= (i+1)/n``); the result is
    ``sum_b |accuracy_b - mean_confidence_b| * n_b / N``.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y, p = _check_inputs(y_true, proba)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Interior edges only: searchsorted(side="left") maps conf in (e_i, e_{i+1}]
    # to bin i, and clipping folds conf == 0 into the first bin.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, n_bins - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    # |acc_b - conf_b| * n_b / N == |acc_sum_b - conf_sum_b| / N
    return float(np.abs(acc_sum - conf_sum).sum() / len(y))


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    n_classes = p.shape[1]
    # AUC is undefined unless every class appears in y_true; sklearn would raise.
    if len(np.unique(y)) != n_classes:
        return None
    try:
        if n_classes == 2:
            return float(roc_auc_score(y, p[:, 1]))
        return float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(n_classes))))
    except ValueError:
        return None


def classification_metrics(y_true: Any, proba: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Score class probabilities against integer labels.

    Returns a dict with the float scalars ``accuracy``, ``macro_f1``,
    ``micro_f1``, ``weighted_f1``, ``log_loss``, ``roc_auc`` (binary: AUC of
    class 1; multi-class: macro one-vs-rest; ``None`` when a class is absent
    from ``y_true``) and ``ece``, plus ``per_class`` (label -> precision,
    recall, f1, support) and ``confusion_matrix`` (rows = true, columns =
    predicted, in ``label_names`` order). Classes that are missing from
    ``y_true`` or never predicted score 0 rather than raising.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
    )

    label_names = [str(name) for name in label_names]
    n_classes = len(label_names)
    if n_classes < 2:
        raise ValueError("need at least two classes")
    y, p = _check_inputs(y_true, proba, n_classes)
    labels = list(range(n_classes))
    y_pred = p.argmax(axis=1)

    # Models emit float32 softmax outputs whose rows sum to 1 only up to
    # rounding; recent sklearn warns (or refuses) on that, so renormalise.
    row_sums = p.sum(axis=1, keepdims=True)
    p_norm = p / np.where(row_sums > 0, row_sums, 1.0)

    precision, recall, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=labels, zero_division=0
    )

    def _f1(average: str) -> float:
        return float(f1_score(y, y_pred, labels=labels, average=average, zero_division=0))

    return {
        "accuracy": float(accuracy_score(y, y_pred)),
        "macro_f1": _f1("macro"),
        "micro_f1": _f1("micro"),
        "weighted_f1": _f1("weighted"),
        "log_loss": float(log_loss(y, p_norm, labels=labels)),
        "roc_auc": _roc_auc(y, p_norm),
        "ece": expected_calibration_error(y, p_norm),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(y, y_pred, labels=labels).astype(int).tolist(),
    }


def _sanitise_label(label: str) -> str:
    cleaned = _UNSAFE_LABEL_CHARS.sub("_", str(label)).strip()
    return cleaned or "_"


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def flatten_metrics(m: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Flatten a :func:`classification_metrics` dict into MLflow metrics.

    Scalars become ``f"{prefix}{key}"``; per-class values become
    ``f"{prefix}{stat}__{label}"`` (e.g. ``test_f1__sports``) with the label
    reduced to characters MLflow accepts. ``None`` values, the confusion
    matrix and other non-scalars are skipped.
    """
    out: dict[str, float] = {}
    for key, value in m.items():
        if key == "per_class" or value is None or not _is_scalar(value):
            continue
        out[f"{prefix}{key}"] = float(value)

    per_class = m.get("per_class") or {}
    used: set[str] = set()
    for index, (label, stats) in enumerate(per_class.items()):
        safe = _sanitise_label(label)
        # Two labels can sanitise to the same text ("a/b", "a?b"); keep both.
        if safe in used:
            safe = f"{safe}_{index}"
        used.add(safe)
        for stat, value in stats.items():
            if value is None or not _is_scalar(value):
                continue
            out[f"{prefix}{stat}__{safe}"] = float(value)
    return out


def classification_report_text(y_true: Any, y_pred: Any, label_names: Sequence[str]) -> str:
    """sklearn's text classification report (4 digits) over all ``label_names``."""
    from sklearn.metrics import classification_report

    label_names = [str(name) for name in label_names]
    return classification_report(
        np.asarray(y_true),
        np.asarray(y_pred),
        labels=list(range(len(label_names))),
        target_names=label_names,
        digits=4,
        zero_division=0,
    )


def measure_latency(
    predict_fn: Callable[[list[str]], object],
    texts: Sequence[str],
    *,
    n_single: int = 100,
    batch_size: int = 256,
    warmup: int = 5,
) -> dict[str, float]:
    """Time ``predict_fn`` at batch size 1 and at ``batch_size``.

    Call sequence: ``warmup`` single-text calls and (if ``warmup > 0``) one
    call with the first ``batch_size`` texts, so lazy initialisation and
    allocator growth are not timed; then ``n_single`` timed single-text calls
    cycling through ``texts``; then one timed pass over all ``texts`` in
    chunks of ``batch_size``.

    Returns ``latency_p50_ms`` and ``latency_p95_ms`` (per single-text call)
    and ``texts_per_s_b256`` (throughput of the batched pass; the key keeps
    that name whatever ``batch_size`` is, so runs stay comparable in MLflow).
    """
    texts = list(texts)
    if not texts:
        raise ValueError("measure_latency needs at least one text")
    if n_single < 1 or batch_size < 1 or warmup < 0:
        raise ValueError("n_single and batch_size must be >= 1 and warmup >= 0")

    n = len(texts)
    for i in range(warmup):
        predict_fn([texts[i % n]])
    if warmup > 0:
        predict_fn(texts[:batch_size])

    times_ms = np.empty(n_single, dtype=np.float64)
    for i in range(n_single):
        start = time.perf_counter()
        predict_fn([texts[i % n]])
        times_ms[i] = (time.perf_counter() - start) * 1000.0

    start = time.perf_counter()
    for lo in range(0, n, batch_size):
        predict_fn(texts[lo : lo + batch_size])
    elapsed = time.perf_counter() - start
    # A no-op predict_fn on a tiny set can finish below the timer's resolution.
    elapsed = max(elapsed, 1e-9)

    return {
        "latency_p50_ms": float(np.percentile(times_ms, 50)),
        "latency_p95_ms": float(np.percentile(times_ms, 95)),
        "texts_per_s_b256": float(n / elapsed),
    }
