"""Each extension point added from outside the package: an encoder, a metric that reaches the comparison,
a statistical test a metric chooses, and the same through an installed package's entry points.

Nothing here edits textclf's files: the tests use ``textclf.register_*`` and a ``*.dist-info`` folder on
``sys.path``, as a user's code or a plugin package would. Registries are restored after every test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_rows, write_csv

import textclf
from textclf.cli.main import main

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

TINY = ["--no-track", "-q", "--set", "train.epochs=1", "--set", "embedding.dim=8", "--set", "encoder.hidden_size=8"]
TINY += ["--set", "evaluate.latency_samples=2", "--set", "train.num_threads=1"]


@pytest.fixture(autouse=True)
def registries():
    """Whatever a test registers (or loads from entry points) is gone after it."""
    from textclf.analysis.contrasts import STAT_TESTS
    from textclf.core.metrics import METRICS
    from textclf.models.registry import ENCODERS

    saved = [(r, dict(r.items()), r.loaded, dict(r.added)) for r in (ENCODERS, METRICS, STAT_TESTS)]
    yield
    for r, entries, loaded, added in saved:
        dict.clear(r)
        dict.update(r, entries)
        r.loaded, r.added = loaded, added


def build_bag(input_size, hidden_size, **_):
    """An encoder family: the masked mean of the token vectors through one linear layer."""
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


def bag_family():
    from textclf.models.registry import EncoderFamily

    fixed = (("layers", 1), ("bidirectional", False), ("pooling", "mean"), ("init", "standard"))
    return EncoderFamily("mean of token vectors", build_bag, recurrent=False, fixed=fixed)


def balanced_accuracy(y, pred, proba, n):
    """Mean recall over the classes present: a metric of predicted classes only."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in range(n) if np.any(y == c)]))


def test_an_encoder_registered_from_outside_trains_and_reloads(tmp_path):
    textclf.register_encoder("bag", bag_family())
    data = write_csv(tmp_path / "d.csv", make_rows(60))
    args = ["train", "--set", f"data.source={data}", "--set", "encoder.cell=bag", "--set", "encoder.pooling=mean"]
    assert main([*args, *TINY, "--output", str(tmp_path / "m")]) == 0
    clf = textclf.load_model(str(tmp_path / "m"))
    assert type(clf.model.encoder).__name__ == "Bag"
    assert clf.predict_proba(["good great movie", "bad awful"]).shape == (2, 3)
    with pytest.raises(ValueError, match="must be a EncoderFamily"):
        textclf.register_encoder("broken", build_bag)


def write_pipeline(path: Path, data: Path) -> Path:
    spec = {
        "name": "ext",
        "data": {"source": str(data)},
        "params": {
            "train": {"epochs": 1, "batch_size": 16, "num_threads": 1},
            "encoder": {"hidden_size": 8},
            "embedding": {"dim": 8},
            "tokenizer": {"min_frequency": 1},
            "evaluate": {"latency_samples": 2},
        },
        "seeds": [1, 2],
        "baseline": "rnn",
        "variants": {"rnn": {"encoder": {"cell": "rnn"}}, "gru": {"encoder": {"cell": "gru"}}},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_metric_registered_from_outside_reaches_the_comparison(tmp_path, monkeypatch):
    from textclf.analysis.report import markdown_table
    from textclf.core.metrics import Metric

    textclf.register_metric("balanced_accuracy", Metric(balanced_accuracy, compare=True, label="balanced acc"))
    monkeypatch.chdir(tmp_path)
    pipe = write_pipeline(tmp_path / "p.yaml", write_csv(tmp_path / "d.csv", make_rows(90)))
    # two workers: a registration call in this process reaches the spawned trainings (val_balanced_accuracy)
    assert main(["run", str(pipe), "-q", "--jobs", "2", "--summary-out", "s.json"]) == 0
    s = json.loads(Path("s.json").read_text())
    assert s["compared_metrics"] == ["accuracy", "macro_f1", "balanced_accuracy"]
    for v in s["variants"].values():
        assert 0.0 <= v["test_balanced_accuracy"]["mean"] <= 1.0 and v["val_balanced_accuracy"]["mean"] is not None
    # tested against the baseline by the default test, with Holm across variants, and as a secondary contrast
    delta = s["variants"]["gru"]["delta_balanced_accuracy"]
    assert delta["p_adjusted"] is not None and delta["ci_low"] <= delta["mean"] <= delta["ci_high"]
    assert s["method"]["balanced_accuracy"].startswith("paired t: seed variance + paired example bootstrap")
    assert any(r["metric"] == "test_balanced_accuracy" for r in s["secondary_contrasts"])
    assert "balanced acc % (±sd)" in markdown_table(s).splitlines()[0]


def test_an_entry_workers_cannot_receive_is_refused_with_the_fix():
    from textclf.core.errors import ConfigError
    from textclf.core.metrics import Metric
    from textclf.core.registry import registered

    textclf.register_metric("balanced_accuracy", Metric(balanced_accuracy))
    assert registered()[0][1:] == ("textclf.metrics", {"balanced_accuracy": Metric(balanced_accuracy)})
    textclf.register_metric("local", Metric(lambda y, pred, proba, n: 0.5))
    with pytest.raises(ConfigError, match="'local' cannot be sent to worker processes.*or run with --jobs 1"):
        registered()


def records(rng, n=200):
    """Two variants x three seeds of predictions on one 3-class test set; b is better."""
    from textclf.analysis.compare import RunRecord

    y = rng.integers(0, 3, n)
    out = []
    for name, skill in (("a", 0.6), ("b", 0.8)):
        for seed in range(3):
            pred = np.where(rng.random(n) < skill, y, rng.integers(0, 3, n))
            metrics = {"val_accuracy": skill, "val_balanced_accuracy": skill}
            out.append(RunRecord(variant=name, seed=seed, kind="neural", y_true=y, pred=pred, metrics=metrics))
    return out


def test_a_statistical_test_registered_from_outside_is_chosen_by_a_metric(tmp_path):
    from textclf.analysis.compare import compare
    from textclf.analysis.contrasts import StatTest
    from textclf.analysis.report import caption, markdown_table
    from textclf.core.errors import ConfigError
    from textclf.core.metrics import Metric
    from textclf.pipeline.spec import load_pipeline

    calls = []

    def examples_only(preds, weights, y, n_classes, *, metric, alpha, **_):
        """A paired t over examples alone (no seed term), on each example's seed-averaged correctness."""
        from scipy import stats

        d = sum(w * (np.asarray(p) == y).mean(axis=0) for p, w in zip(preds, weights))
        se = float(d.std(ddof=1) / np.sqrt(d.size))
        half = float(stats.t.ppf(1 - alpha / 2, d.size - 1)) * se
        p = float(2 * stats.t.sf(abs(d.mean()) / se, d.size - 1))
        calls.append((list(weights), metric.fn is balanced_accuracy))
        out = {"delta": float(d.mean()), "ci_low": float(d.mean()) - half, "ci_high": float(d.mean()) + half}
        return {**out, "p_value": p, "se": se, "df": d.size - 1.0, "var_examples": se * se, "var_seeds": 0.0}

    textclf.register_stat_test("examples_only", StatTest(examples_only, "paired t over examples only"))
    metric = Metric(balanced_accuracy, per_epoch=True, compare=True, test="examples_only", label="balanced acc")
    textclf.register_metric("balanced_accuracy", metric)
    s = compare(records(np.random.default_rng(0)), "a", label_names=["x", "y", "z"], select_by="val_balanced_accuracy")
    assert s["method"]["balanced_accuracy"] == "paired t over examples only"
    assert calls[0] == ([1.0, -1.0], True)  # b against the baseline a, on the metric that chose the test
    delta = s["variants"]["b"]["delta_balanced_accuracy"]
    assert delta["df"] == 199.0 and delta["mean"] > 0 and delta["p_value"] < 0.05
    # selected on val_balanced_accuracy: it is the primary metric, so the verdict and the table's Δ are this test's
    assert s["primary_metric"] == "test_balanced_accuracy"
    row = s["contrasts"][0]
    assert row["metric"] == "test_balanced_accuracy" and row["verdict"] == "better"
    assert s["contrast_details"][row["name"]]["df"] == 199.0
    assert "Δbalanced acc vs a" in markdown_table(s) and "on balanced acc, the primary" in caption(s)
    # a metric asking for a test nobody registered is refused when the pipeline loads, before anything trains
    textclf.register_metric("balanced_accuracy", Metric(balanced_accuracy, compare=True, test="nope"))
    pipe = write_pipeline(tmp_path / "p.yaml", write_csv(tmp_path / "d.csv", make_rows(30)))
    with pytest.raises(ConfigError, match="statistical test 'nope', which is not registered"):
        load_pipeline(pipe)
    textclf.register_metric("balanced_accuracy", Metric(balanced_accuracy, compare=True, test="paired_t"))
    with pytest.raises(ConfigError, match="applies to accuracy only; use bootstrap"):
        load_pipeline(pipe)


PLUGIN = """
import numpy as np
from textclf.core.metrics import Metric
from textclf.models.registry import EncoderFamily


def _build(input_size, hidden_size, **_):
    from torch import nn
    return nn.Linear(input_size, hidden_size)


BAG = EncoderFamily("a plugin encoder", _build, recurrent=False, fixed=(("layers", 1),))
ALWAYS_HALF = Metric(lambda y, pred, proba, n: 0.5, per_epoch=True)
"""


def install_plugin(root: Path, monkeypatch, entry_points: str) -> None:
    """What ``pip install`` of a package declaring entry points leaves behind: a module and its dist-info."""
    (root / "textclf_plugin_demo.py").write_text(PLUGIN)
    info = root / "textclf_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: textclf-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(root))


def test_an_installed_package_extends_the_cli_through_entry_points(tmp_path, monkeypatch, capsys):
    from textclf.core.metrics import METRICS
    from textclf.models.registry import ENCODERS

    install_plugin(
        tmp_path,
        monkeypatch,
        "[textclf.encoders]\nplugbag = textclf_plugin_demo:BAG\n\n"
        "[textclf.metrics]\nalways_half = textclf_plugin_demo:ALWAYS_HALF\n",
    )
    for registry in (ENCODERS, METRICS):
        registry.loaded = False  # as in a fresh process, where the groups are read on the first lookup
    show = ["config", "show", "--set", "encoder.cell=plugbag", "--set", "train.early_stopping_metric=always_half"]
    assert main(show) == 0, capsys.readouterr().err
    assert "plugbag" in capsys.readouterr().out
    assert ENCODERS["plugbag"].description == "a plugin encoder" and METRICS["always_half"].per_epoch


def test_a_broken_entry_point_is_named_with_its_fix(tmp_path, monkeypatch, capsys):
    from textclf.models.registry import ENCODERS

    install_plugin(tmp_path, monkeypatch, "[textclf.encoders]\nghost = textclf_plugin_demo:MISSING\n")
    ENCODERS.loaded = False
    assert main(["config", "show", "--set", "encoder.cell=lstm"]) == 2
    err = capsys.readouterr().err
    assert "ghost = textclf_plugin_demo:MISSING" in err and "textclf-plugin-demo" in err and "uninstall" in err


def balanced_from_counts(confusion):
    """balanced_accuracy of confusion matrices (..., C, C), rows = true class."""
    conf = np.asarray(confusion, dtype=np.float64)
    support = conf.sum(axis=-1)
    recall = np.divide(np.diagonal(conf, axis1=-2, axis2=-1), support, out=np.zeros_like(support), where=support > 0)
    return recall.sum(axis=-1) / (support > 0).sum(axis=-1)


def test_a_metric_without_from_counts_gets_the_same_bootstrap():
    """The generic route (each resample expanded back into labels) scores what a counts route scores, so a new
    metric gets the bootstrap whose calibration tests/test_stats.py checks, with no function of counts to write."""
    from textclf.analysis.contrasts import STAT_TESTS
    from textclf.core.metrics import Metric

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 80)
    preds = [np.where(rng.random((2, 80)) < skill, y, rng.integers(0, 3, (2, 80))) for skill in (0.5, 0.7)]
    run = STAT_TESTS["bootstrap"].fn
    kwargs = {"alpha": 0.05, "n_boot": 50, "seed": 1, "keep_truncated_df": False}
    generic = run(preds, [1.0, -1.0], y, 3, metric=Metric(balanced_accuracy, compare=True), **kwargs)
    counts = run(preds, [1.0, -1.0], y, 3, metric=Metric(balanced_accuracy, from_counts=balanced_from_counts), **kwargs)
    for key in ("delta", "ci_low", "ci_high", "p_value", "se", "df", "var_examples"):
        assert generic[key] == pytest.approx(counts[key], rel=1e-12, abs=1e-15), key
    assert generic["se"] > 0


def test_a_plugins_code_is_part_of_every_cache_key(tmp_path, monkeypatch):
    """Editing a plug-in's behaviour recomputes what it ran; a comment does not; no plug-in, no change to the keys."""
    from textclf.core import code
    from textclf.core.cache import stage_key
    from textclf.core.code import plugin_fingerprint

    monkeypatch.setattr(code, "_noted", set())  # data sources another test registered in this process
    assert plugin_fingerprint() == ""  # this install declares no extension: the keys are as before
    base = stage_key("train", {"a": 1})
    monkeypatch.delitem(sys.modules, "textclf_plugin_demo", raising=False)  # imported from another tmp_path before
    install_plugin(tmp_path, monkeypatch, "[textclf.encoders]\nplugbag = textclf_plugin_demo:BAG\n")
    with_plugin = stage_key("train", {"a": 1})
    assert with_plugin != base
    src = tmp_path / "textclf_plugin_demo.py"
    src.write_text(src.read_text() + "\n# only a comment, and a blank line\n\n")
    assert stage_key("train", {"a": 1}) == with_plugin
    src.write_text(src.read_text().replace("lambda y, pred, proba, n: 0.5", "lambda y, pred, proba, n: 0.25"))
    assert stage_key("train", {"a": 1}) != with_plugin


def test_an_encoder_registered_by_a_call_is_part_of_the_cache_keys():
    from textclf.core.cache import stage_key

    base = stage_key("train", {"a": 1})
    textclf.register_encoder("bag", bag_family())
    assert stage_key("train", {"a": 1}) != base
