"""Each extension point is one registry entry: an encoder family, a metric, a data source.

Every test registers a new entry (monkeypatched, so nothing leaks into other
tests) and runs the real ``textclf train`` on it in this process, then uses
what it produced, without touching any other module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import imported_after, make_rows, write_csv

TINY = [
    "--no-track",
    "-q",
    "--set",
    "train.epochs=2",
    "--set",
    "embedding.dim=8",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "evaluate.latency_samples=2",
    "--set",
    "train.num_threads=1",
]


def _bag_of_embeddings(input_size, hidden_size, **_):
    """A new family: mean of the token vectors through one linear layer (exact masking by construction)."""
    import torch
    from torch import nn

    class Bag(nn.Module):
        cell, layers, bidirectional, dropout, pooling = "bag", 1, False, 0.0, "mean"

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(input_size, hidden_size)
            self.hidden_size = self.output_size = hidden_size

        def sequence(self, x, lengths):
            mask = (torch.arange(x.size(1)) < lengths[:, None]).unsqueeze(-1)
            return torch.tanh(self.proj(x)) * mask

        def forward(self, x, lengths):
            return self.sequence(x, lengths).sum(1) / lengths[:, None].to(x.dtype)

    return Bag()


def test_an_encoder_family_is_one_registry_entry(tmp_path, monkeypatch):
    from textclf import load_model
    from textclf.cli.main import main
    from textclf.models.registry import ENCODERS, EncoderFamily

    monkeypatch.setitem(
        ENCODERS,
        "bag",
        EncoderFamily(
            "mean of token vectors",
            _bag_of_embeddings,
            recurrent=False,
            fixed=(("layers", 1), ("bidirectional", False), ("pooling", "mean")),
        ),
    )
    data = write_csv(tmp_path / "d.csv", make_rows(60))
    args = [
        "train",
        "--set",
        f"data.source={data}",
        "--set",
        "encoder.cell=bag",
        "--set",
        "encoder.pooling=mean",
        *TINY,
        "--output",
        str(tmp_path / "m"),
        "--metrics-out",
        str(tmp_path / "m.json"),
    ]
    assert main(args) == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["cell"] == "bag"
    clf = load_model(tmp_path / "m")
    assert type(clf.model.encoder).__name__ == "Bag"
    assert clf.predict_proba(["good great movie", "bad awful"]).shape == (2, 3)
    # the family's fixed keys are checked like any config value
    assert (
        main(["train", "--set", f"data.source={data}", "--set", "encoder.cell=bag", "--set", "encoder.layers=2", *TINY])
        == 2
    )


def test_a_metric_is_one_registry_entry(tmp_path, monkeypatch):
    from textclf.cli.main import main
    from textclf.core import metrics

    def balanced_accuracy(y, pred, proba, n):
        recalls = [np.mean(pred[y == c] == c) for c in range(n) if np.any(y == c)]
        return float(np.mean(recalls))

    monkeypatch.setitem(metrics.METRICS, "balanced_accuracy", metrics.Metric(balanced_accuracy, per_epoch=True))
    data = write_csv(tmp_path / "d.csv", make_rows(60))
    out = tmp_path / "m.json"
    args = [
        "train",
        "--set",
        f"data.source={data}",
        *TINY,
        "--set",
        "train.early_stopping_metric=balanced_accuracy",
        "--metrics-out",
        str(out),
    ]
    assert main(args) == 0
    m = json.loads(out.read_text())
    assert 0.0 <= m["test_balanced_accuracy"] <= 1.0 and 0.0 <= m["val_balanced_accuracy"] <= 1.0


def test_a_data_source_is_one_registry_entry(tmp_path, monkeypatch):
    import datasets

    from textclf.cli.main import main
    from textclf.data import sources

    rows = make_rows(90)
    seen = {}

    def read(spec, cfg, cache_dir):
        seen["spec"] = spec
        return {"train": datasets.Dataset.from_list(rows)}

    entry = sources.Source(
        "mem",
        lambda s: s.startswith("mem:"),
        read,
        lambda s, root: {"mem": s, "rows": len(rows)},
        lambda s, split: None,
    )
    monkeypatch.setattr(sources, "SOURCES", {"mem": entry, **sources.SOURCES})
    out = tmp_path / "m.json"
    assert main(["train", "--set", "data.source=mem:reviews", *TINY, "--metrics-out", str(out)]) == 0
    assert seen["spec"] == "mem:reviews" and json.loads(out.read_text())["test_accuracy"] is not None


@pytest.mark.parametrize(
    "registry,key",
    [("textclf.models.registry", "ENCODERS"), ("textclf.core.metrics", "METRICS"), ("textclf.data.sources", "SOURCES")],
)
def test_registries_import_without_torch(registry, key):
    """Validating a config reads the registries; that must not pay for importing torch."""
    assert imported_after(f"import {registry} as r; assert r.{key}", ("torch",))[0] == []
