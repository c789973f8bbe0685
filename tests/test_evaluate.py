"""Tests for textclf.core.metrics (metrics, latency) and textclf.plots.

Expected values are worked out by hand in the comments, not taken from the
code under test.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest

from textclf.analysis.cost import measure_latency
from textclf.analysis.plots import plot_confusion_matrix, plot_learning_curves
from textclf.core.metrics import (
    classification_metrics,
    classification_report_text,
    expected_calibration_error,
    flatten_metrics,
)

# y = [0, 0, 1, 1]; argmax predictions = [0, 0, 1, 0]
Y_BIN = np.array([0, 0, 1, 1])
P_BIN = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])


def test_binary_metrics_by_hand():
    m = classification_metrics(Y_BIN, P_BIN, ["neg", "pos"])

    assert m["accuracy"] == pytest.approx(0.75)
    # class 0: P = 2/3, R = 1 -> F1 = 0.8 ; class 1: P = 1, R = 1/2 -> F1 = 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["weighted_f1"] == pytest.approx((0.8 + 2 / 3) / 2)  # equal supports
    assert m["micro_f1"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]
    assert m["per_class"]["neg"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["pos"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})

    # mean negative log-probability of the true class
    expected_ll = -(math.log(0.9) + math.log(0.6) + math.log(0.7) + math.log(0.2)) / 4
    assert m["log_loss"] == pytest.approx(expected_ll)

    # AUC of class 1: positives score {0.7, 0.2}, negatives {0.1, 0.4};
    # pairs ranked correctly: 0.7>0.1, 0.7>0.4, 0.2>0.1 -> 3 of 4.
    assert m["roc_auc"] == pytest.approx(0.75)

    # Confidences 0.9, 0.6, 0.7, 0.8 fall in four different 1/15-wide bins,
    # so ECE = mean |correct - conf| = (0.1 + 0.4 + 0.3 + 0.8) / 4.
    assert m["ece"] == pytest.approx(0.4)
    assert all(isinstance(m[k], float) for k in ("accuracy", "macro_f1", "log_loss", "roc_auc", "ece"))


def test_ece_groups_samples_sharing_a_bin():
    # 0.95 and 0.97 both lie in the last bin (14/15, 1]: accuracy 1/2, mean
    # confidence 0.96 -> |0.5 - 0.96| * 2/3. 0.55 is alone and correct:
    # |1 - 0.55| * 1/3. Per-sample averaging would give a different answer.
    y = np.array([0, 1, 0])
    proba = np.array([[0.95, 0.05], [0.97, 0.03], [0.55, 0.45]])
    expected = abs(0.5 - 0.96) * 2 / 3 + abs(1 - 0.55) / 3
    assert expected_calibration_error(y, proba) == pytest.approx(expected)
    # A single bin: |overall accuracy - mean confidence|.
    assert expected_calibration_error(y, proba, n_bins=1) == pytest.approx(abs(2 / 3 - (0.95 + 0.97 + 0.55) / 3))


def test_ece_zero_for_perfect_calibration():
    # Confidence 0.75 everywhere and exactly 3 of 4 correct.
    y = np.array([0, 0, 0, 1])
    proba = np.tile([0.75, 0.25], (4, 1))
    assert expected_calibration_error(y, proba) == pytest.approx(0.0)


def test_multiclass_with_absent_class_does_not_crash():
    # Class "c" never occurs in y_true but is predicted once.
    y = np.array([0, 0, 1, 1])
    proba = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]],
        dtype=np.float32,  # rows sum to 1 only up to float32 rounding
    )
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["roc_auc"] is None  # documented: undefined when a class is absent
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 1, 1], [0, 0, 0]]
    assert math.isfinite(m["log_loss"]) and math.isfinite(m["ece"])


def test_class_never_predicted_scores_zero():
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["per_class"]["c"]["precision"] == 0.0
    assert m["per_class"]["c"]["recall"] == 0.0
    assert m["roc_auc"] is not None and 0.0 <= m["roc_auc"] <= 1.0


def test_multiclass_perfect_ranking_auc_is_one():
    y = np.array([0, 1, 2, 0, 1, 2])
    proba = np.full((6, 3), 0.1)
    proba[np.arange(6), y] = 0.8
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError):
        classification_metrics(Y_BIN, P_BIN, ["a", "b", "c"])
    with pytest.raises(ValueError):
        classification_metrics(Y_BIN[:3], P_BIN, ["a", "b"])


_MLFLOW_NAME = re.compile(r"^[A-Za-z0-9_\-. /]+$")


def test_flatten_metrics_names_and_values():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    labels = ["Sci/Tech", "a b", "weird:label?"]
    m = classification_metrics(y, proba, labels)
    flat = flatten_metrics(m, prefix="val_")

    assert flat["val_accuracy"] == pytest.approx(0.5)
    assert "val_roc_auc" not in flat  # None is skipped
    assert not any("confusion" in k or "per_class" in k for k in flat)
    assert all(isinstance(v, float) for v in flat.values())
    assert all(_MLFLOW_NAME.match(k) for k in flat), [k for k in flat if not _MLFLOW_NAME.match(k)]
    assert all(k.startswith("val_") for k in flat)
    # per-class: 4 stats x 3 labels, each label mapped to a distinct safe name
    per_class = [k for k in flat if "__" in k]
    assert len(per_class) == 12
    assert flat["val_f1__a b"] == pytest.approx(2 / 3)  # P = 1, R = 1/2
    assert flat["val_support__Sci_Tech"] == 2.0
    assert len({k.split("__", 1)[1] for k in per_class}) == 3


def test_flatten_metrics_keeps_colliding_labels_apart():
    m = {"accuracy": 1.0, "per_class": {"a/b": {"f1": 0.1}, "a?b": {"f1": 0.2}}}
    flat = flatten_metrics(m, prefix="")
    assert sorted(flat.values()) == [0.1, 0.2, 1.0]


def test_classification_report_text():
    text = classification_report_text(Y_BIN, np.array([0, 0, 1, 0]), ["neg", "pos"])
    assert "neg" in text and "pos" in text
    assert "0.8000" in text  # F1 of "neg", four digits


def test_measure_latency_call_pattern():
    calls: list[int] = []

    def fake_predict(batch):
        assert isinstance(batch, list) and all(isinstance(t, str) for t in batch)
        calls.append(len(batch))
        return np.zeros((len(batch), 2))

    texts = [f"text {i}" for i in range(10)]
    out = measure_latency(fake_predict, texts, n_single=7, batch_size=4, warmup=2)

    assert set(out) == {"latency_p50_ms", "latency_p95_ms", "texts_per_s_b256"}
    assert all(v > 0 for v in out.values())
    assert out["latency_p95_ms"] >= out["latency_p50_ms"]
    # warm-up: 2 singles + one batch; timed: 7 singles; pass: 10 texts in 4/4/2
    assert calls == [1, 1, 4] + [1] * 7 + [4, 4, 2]


def test_measure_latency_measures_time():
    def slow_predict(batch):
        time.sleep(0.002)
        return batch

    out = measure_latency(slow_predict, ["a", "b", "c"], n_single=5, batch_size=2, warmup=0)
    assert out["latency_p50_ms"] >= 2.0
    # The pass makes 2 calls of >= 2 ms for 3 texts: at most 750 texts/s.
    assert out["texts_per_s_b256"] <= 750.0


def test_measure_latency_rejects_empty():
    with pytest.raises(ValueError):
        measure_latency(lambda b: b, [])


# ---------------------------------------------------------------- plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 2000  # a real rendered figure, not an empty image


def test_plot_confusion_matrix(tmp_path):
    out = plot_confusion_matrix(
        [[5, 1, 0], [2, 7, 1], [0, 0, 0]], ["a", "b", "c"], tmp_path / "sub" / "cm.png", title="t"
    )
    assert out == tmp_path / "sub" / "cm.png"
    _assert_png(out)


def test_plot_confusion_matrix_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"], tmp_path / "cm.png")


def test_plot_learning_curves(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_accuracy": 0.5, "val_accuracy": 0.45},
        {"epoch": 2, "train_loss": 0.7, "val_loss": 0.9, "train_accuracy": 0.7, "val_accuracy": None},
        {"epoch": 3, "train_loss": 0.5, "lr": 0.001},  # missing keys are skipped
    ]
    out = plot_learning_curves(history, tmp_path / "curves.png", title="lstm")
    _assert_png(out)


def test_plot_learning_curves_without_accuracy(tmp_path):
    out = plot_learning_curves([{"epoch": 1, "train_loss": 0.3}], tmp_path / "c.png")
    _assert_png(out)
