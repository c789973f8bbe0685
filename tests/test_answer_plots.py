"""The answer's figures: the contrast plot and the cost-quality plot, written with the other comparison plots."""

from __future__ import annotations

import sys
from pathlib import Path

from textclf.analysis.compare import compare
from textclf.analysis.plots import pareto_front
from textclf.analysis.report import write_report

sys.path.insert(0, str(Path(__file__).parent))
from test_answer_pipeline import _records


def test_pareto_front():
    points = {"cheap": (80.0, 1.0), "good": (90.0, 5.0), "dominated": (85.0, 6.0), "tie": (80.0, 2.0)}
    assert pareto_front(points) == ["cheap", "good"]


def test_write_report_draws_the_answer_figures(tmp_path):
    recs = _records({"rnn": 0.7, "lstm": 0.8, "lstm-x2": 0.8, "bilstm": 0.85, "bilstm-x2": 0.85}, seeds=2)
    s = compare(recs, "rnn", label_names=["a", "b"])
    names = {p.name for p in write_report(s, recs, tmp_path, title="t")["plots"]}
    assert {"contrasts.png", "cost_quality.png"} <= names
    text = (tmp_path / "report.md").read_text()
    assert "![contrasts](contrasts.png)" in text and "Dominated" in text and "## Contrasts" in text


def test_no_contrast_figure_without_contrasts(tmp_path):
    recs = _records({"rnn": 0.7}, seeds=2)
    s = compare(recs, "rnn", label_names=["a", "b"])
    assert s["contrasts"] == [] and s["answer"] == []
    names = {p.name for p in write_report(s, recs, tmp_path, title="t")["plots"]}
    assert "contrasts.png" not in names
