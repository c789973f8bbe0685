"""A confusion matrix of many classes stays drawable: at most a readable number of class names per axis."""

from __future__ import annotations

import pytest

from textclf.analysis import plots


@pytest.mark.parametrize("n", [3, 60, 61, 1000])
def test_confusion_matrix_names_at_most_60_classes_per_axis(n, tmp_path, monkeypatch):
    drawn = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (drawn.append(fig), save(fig, path))[1])
    names = [f"class{i:04d}" for i in range(n)]
    out = plots.plot_confusion_matrix([[int(i == j) for j in range(n)] for i in range(n)], names, tmp_path / "cm.png")
    assert out.stat().st_size > 0
    (ax, _colorbar) = drawn[0].axes
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        shown = [t.get_text() for t in labels]
        assert shown[0] == "class0000"
        # Every class named while they fit; past that every k-th, evenly, the k as small as keeps them within 60.
        assert shown == names[:: -(-n // 60)]
        assert len(shown) <= 60
