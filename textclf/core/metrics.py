"""The metrics every model is scored with, one registry: :data:`METRICS`.

All classifiers (neural and baseline), the trainer's per-epoch validation and
the comparison score predictions with the functions registered here, so a
number means the same thing everywhere. Adding a metric is one entry in
:data:`METRICS` (``textclf.register_metric``, or the ``textclf.metrics``
entry-point group): it is then logged as ``val_<name>`` / ``test_<name>`` for
every run; with ``per_epoch=True`` (it must then need only the predicted
classes) it is also computed on validation after every epoch, logged as a
curve, and accepted as ``train.early_stopping_metric``; with ``compare=True``
it is a column of the comparison, tested against the baseline and in every
contrast by its ``test`` (:data:`textclf.analysis.contrasts.STAT_TESTS`).

:func:`classification_metrics` adds per-class precision / recall / F1 and the
confusion matrix; :func:`flatten_metrics` turns that into MLflow scalars.
Nothing here builds an N × C or C × C array it does not need: per-class counts
are bincounts, and many classes are scored from a :class:`TopProba` (the top
k classes of each row) instead of the full probability matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textclf.core import names
from textclf.core.registry import Registry

__all__ = [
    "METRICS",
    "Metric",
    "TopProba",
    "accuracy_from_counts",
    "classification_metrics",
    "classification_report_text",
    "epoch_metrics",
    "expected_calibration_error",
    "flatten_metrics",
    "macro_f1",
    "macro_f1_from_counts",
]

# Past this many classes a C × C confusion matrix (and its plot) is no use to anyone
# and grows quadratically: classification_metrics leaves it out.
CONFUSION_MAX_CLASSES = 1000
# Per-class scalars are logged as MLflow metrics up to this many classes (4 per class).
PER_CLASS_METRICS_MAX = 200


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    ``fn(y, pred, proba, n_classes)`` gets integer labels ``y`` (N,), predicted
    classes ``pred`` (N,) and, when ``from_proba``, row-normalised class
    probabilities ``proba`` (N, C) (else ``None``); it returns a float, or
    ``None`` when the metric is undefined on this data.

    ``compare=True``: a column of the comparison (``test_<name>`` per
    variant, ``delta_<name>`` against the baseline, a secondary contrast, or
    the primary one when the variants are selected on ``val_<name>``). Such a
    metric is a fraction in [0, 1], higher is better, from the predicted
    classes only. ``test`` names its statistical test in
    :data:`textclf.analysis.contrasts.STAT_TESTS` (default ``bootstrap``, which
    fits any such metric); ``from_counts`` is the same score of confusion
    matrices (..., C, C) -> (...), which lets the bootstrap score every
    resample at once (without it, each resample is expanded back into labels);
    ``label`` is its name in tables.
    """

    fn: Callable[[np.ndarray, np.ndarray, np.ndarray | None, int], float | None]
    higher_is_better: bool = True
    from_proba: bool = False  # needs probabilities, not only the predicted class
    per_epoch: bool = False  # computed on validation after every epoch (needs only predicted classes)
    description: str = ""
    # The same metric from a TopProba (too many classes for the full matrix); None: not computed then.
    from_top: Callable[[np.ndarray, TopProba], float | None] | None = None
    compare: bool = False
    test: str = "bootstrap"
    from_counts: Callable[[np.ndarray], np.ndarray] | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.compare and (self.from_proba or not self.higher_is_better):
            raise ValueError(
                "a metric in the comparison (compare=True) must be scored from predicted classes (from_proba=False) "
                "and higher-is-better, like accuracy"
            )


@dataclass(frozen=True)
class TopProba:
    """What scoring needs of class probabilities when the full (N, C) matrix would be too large.

    ``classes`` (N, k): the k most probable classes of each row, most probable
    first; ``proba`` (N, k) their probabilities; ``true`` (N,) the probability
    of the row's true class. With C = 10**5 classes and 20,000 texts this is
    a few MB where the matrix is 7.5 GiB.
    """

    classes: np.ndarray
    proba: np.ndarray
    true: np.ndarray
    n_classes: int

    @property
    def pred(self) -> np.ndarray:
        return self.classes[:, 0]

    @classmethod
    def ordered(cls, classes: np.ndarray, proba: np.ndarray, true: np.ndarray, n_classes: int) -> TopProba:
        """Rows sorted by probability, ties by class index, so ``pred`` is what ``argmax`` of the full row gives."""
        order = np.lexsort((classes, -proba), axis=-1)
        return cls(
            np.take_along_axis(classes, order, 1).astype(np.int64),
            np.take_along_axis(proba, order, 1).astype(np.float32),
            np.asarray(true, np.float32),
            int(n_classes),
        )

    @classmethod
    def from_dense(cls, proba: np.ndarray, y: np.ndarray, k: int = 5) -> TopProba:
        p = np.asarray(proba)
        k = min(k, p.shape[1])
        top = np.argpartition(-p, k - 1, axis=1)[:, :k] if k < p.shape[1] else np.broadcast_to(np.arange(k), p.shape)
        return cls.ordered(top, np.take_along_axis(p, top, 1), p[np.arange(len(p)), np.asarray(y)], p.shape[1])

    @classmethod
    def concat(cls, parts: Sequence[TopProba]) -> TopProba:
        return cls(
            *(np.concatenate([getattr(t, f) for t in parts]) for f in ("classes", "proba", "true")), parts[0].n_classes
        )


def _counts(y: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, support, predicted count) per class, float64: O(N + C), never a C × C matrix."""
    tp = np.bincount(y[pred == y], minlength=n_classes).astype(np.float64)
    return (
        tp,
        np.bincount(y, minlength=n_classes).astype(np.float64),
        np.bincount(pred, minlength=n_classes).astype(np.float64),
    )


def _confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class (only for C <= CONFUSION_MAX_CLASSES)."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _f1(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 per class; a class never true nor predicted scores 0 (sklearn's zero_division=0)."""
    denom = support + predicted
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _f1_per_class(y: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(f1 per class, support per class) from labels: bincounts, never a C × C matrix."""
    tp, support, predicted = _counts(y, pred, n_classes)
    return _f1(tp, support, predicted), support


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over all ``n_classes`` (sklearn ``average="macro"``, ``zero_division=0``)."""
    f1, _ = _f1_per_class(np.asarray(y, np.int64), np.asarray(pred, np.int64), n_classes)
    return float(f1.mean())


def macro_f1_from_counts(confusion: Any) -> np.ndarray:
    """:func:`macro_f1` of (possibly resampling-weighted) confusion matrices (..., C, C), rows = true class."""
    conf = np.asarray(confusion, dtype=np.float64)
    return _f1(np.diagonal(conf, axis1=-2, axis2=-1), conf.sum(axis=-1), conf.sum(axis=-2)).mean(axis=-1)


def accuracy_from_counts(confusion: Any) -> np.ndarray:
    """Accuracy of (possibly resampling-weighted) confusion matrices (..., C, C): trace / total."""
    conf = np.asarray(confusion, dtype=np.float64)
    total = conf.sum(axis=(-2, -1))
    return np.divide(np.trace(conf, axis1=-2, axis2=-1), total, out=np.zeros_like(total), where=total > 0)


def _weighted_f1(y, pred, proba, n):
    f1, support = _f1_per_class(y, pred, n)
    return float((f1 * support).sum() / support.sum())


def _log_loss(y, pred, proba, n):
    return _mean_nll(proba[np.arange(len(y)), y])


def _mean_nll(p_true: np.ndarray) -> float:
    eps = np.finfo(np.float64).eps  # as sklearn clips
    return float(-np.mean(np.log(np.clip(np.asarray(p_true, np.float64), eps, 1.0))))


METRICS: dict[str, Metric] = Registry(
    "textclf.metrics",
    Metric,
    {
        "accuracy": Metric(
            lambda y, pred, proba, n: float(np.mean(pred == y)),
            per_epoch=True,
            description="share of texts classified correctly",
            compare=True,
            test="paired_t",
            from_counts=accuracy_from_counts,
            label="accuracy",
        ),
        "macro_f1": Metric(
            lambda y, pred, proba, n: macro_f1(y, pred, n),
            per_epoch=True,
            description="mean F1 over classes, each class counting equally",
            compare=True,
            from_counts=macro_f1_from_counts,
            label="macro-F1",
        ),
        "micro_f1": Metric(
            lambda y, pred, proba, n: float(np.mean(pred == y)),
            description="F1 over all decisions (equals accuracy for single-label data)",
        ),
        "weighted_f1": Metric(_weighted_f1, description="per-class F1 weighted by class frequency"),
        "log_loss": Metric(
            _log_loss,
            higher_is_better=False,
            from_proba=True,
            description="mean negative log-probability of the true class",
            from_top=lambda y, top: _mean_nll(top.true),
        ),
        "roc_auc": Metric(
            lambda y, pred, proba, n: _roc_auc(y, proba),
            from_proba=True,
            description="binary: AUC of class 1; multi-class: macro one-vs-rest",
        ),
        "ece": Metric(
            lambda y, pred, proba, n: expected_calibration_error(y, proba),
            higher_is_better=False,
            from_proba=True,
            description="expected calibration error of the top-class confidence (15 bins)",
            from_top=lambda y, top: _ece(top.proba[:, 0].astype(np.float64), (top.pred == y).astype(np.float64)),
        ),
    },
)


def epoch_metric_names() -> list[str]:
    """Metrics computed on validation after every epoch (and allowed as the early-stopping metric)."""
    return [name for name, m in METRICS.items() if m.per_epoch and not m.from_proba]


def epoch_metrics(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Every per-epoch metric (the trainer's validation after each epoch)."""
    y, pred = np.asarray(y, np.int64), np.asarray(pred, np.int64)
    out = {}
    for name in epoch_metric_names():
        value = METRICS[name].fn(y, pred, None, n_classes)
        if value is not None:
            out[name] = float(value)
    return out


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
    return _ece(p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64), n_bins)


def _ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    # Interior edges only: searchsorted(side="left") maps conf in (e_i, e_{i+1}]
    # to bin i, and clipping folds conf == 0 into the first bin.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, n_bins - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    # |acc_b - conf_b| * n_b / N == |acc_sum_b - conf_sum_b| / N
    return float(np.abs(acc_sum - conf_sum).sum() / len(confidence))


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


def _check_top(y_true: Any, top: TopProba, n_labels: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must be a non-empty 1-D array of class indices, got shape {y.shape} dtype {y.dtype}")
    if top.n_classes != n_labels:
        raise ValueError(f"the predictions cover {top.n_classes} classes but {n_labels} label names were given")
    if top.classes.shape[0] != y.shape[0] or top.true.shape != y.shape:
        raise ValueError(f"y_true has {y.shape[0]} rows but the predictions have {top.classes.shape[0]}")
    if y.min() < 0 or y.max() >= n_labels:
        raise ValueError(f"y_true holds class indices outside [0, {n_labels - 1}]")
    return y.astype(np.int64)


def classification_metrics(y_true: Any, proba: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Score class probabilities against integer labels with every metric in :data:`METRICS`.

    ``proba`` is the (N, C) matrix, or a :class:`TopProba` where that matrix
    would be too large (metrics without ``from_top`` are then ``None``).
    Returns the registered scalars (``None`` where undefined, e.g. ``roc_auc``
    when a class is absent from ``y_true``), plus ``per_class`` (label ->
    precision, recall, f1, support) and ``confusion_matrix`` (rows = true,
    columns = predicted, in ``label_names`` order; ``None`` beyond
    :data:`CONFUSION_MAX_CLASSES` classes, where C × C counts outgrow any use).
    Classes that are missing from ``y_true`` or never predicted score 0 rather
    than raising.
    """
    label_names = [str(name) for name in label_names]
    n_classes = len(label_names)
    if n_classes < 2:
        raise ValueError("need at least two classes")
    out: dict[str, Any] = {}
    if isinstance(proba, TopProba):
        y = _check_top(y_true, proba, n_classes)
        y_pred = proba.pred.astype(np.int64)
        for name, metric in METRICS.items():
            value = (
                (metric.from_top(y, proba) if metric.from_top else None)
                if metric.from_proba
                else metric.fn(y, y_pred, None, n_classes)
            )
            out[name] = None if value is None else float(value)
    else:
        y, p = _check_inputs(y_true, proba, n_classes)
        y_pred = p.argmax(axis=1)
        # Models emit float32 softmax outputs whose rows sum to 1 only up to
        # rounding; renormalise so probability-based metrics see a distribution.
        row_sums = p.sum(axis=1, keepdims=True)
        p_norm = p / np.where(row_sums > 0, row_sums, 1.0)
        for name, metric in METRICS.items():
            value = metric.fn(y, y_pred, p_norm if metric.from_proba else None, n_classes)
            out[name] = None if value is None else float(value)
    tp, support, predicted = _counts(y, y_pred, n_classes)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = _f1(tp, support, predicted)
    out["per_class"] = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    out["confusion_matrix"] = (
        _confusion(y, y_pred, n_classes).astype(int).tolist() if n_classes <= CONFUSION_MAX_CLASSES else None
    )
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def flatten_metrics(m: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Flatten a :func:`classification_metrics` dict into MLflow metrics.

    Scalars become ``f"{prefix}{key}"``; per-class values become
    ``f"{prefix}{stat}__{label}"`` (e.g. ``test_f1__sports``) with the label
    mapped to a key MLflow accepts (:func:`textclf.core.names.safe_keys`:
    ``Sci/Tech`` -> ``Sci_Tech``, a 300-character label shortened), for at most
    :data:`PER_CLASS_METRICS_MAX` classes: beyond that (four metrics a class,
    logged per run) they are skipped, and the classification report holds them.
    ``None`` values, the confusion matrix and other non-scalars are skipped.
    """
    out: dict[str, float] = {}
    for key, value in m.items():
        if key == "per_class" or value is None or not _is_scalar(value):
            continue
        out[f"{prefix}{key}"] = float(value)

    per_class = m.get("per_class") or {}
    if len(per_class) > PER_CLASS_METRICS_MAX:
        return out
    safe = names.safe_keys(per_class)  # distinct labels stay distinct ("a/b", "a?b")
    for label, stats in per_class.items():
        for stat, value in stats.items():
            if value is None or not _is_scalar(value):
                continue
            out[f"{prefix}{stat}__{safe[str(label)]}"] = float(value)
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
