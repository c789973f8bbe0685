"""Tests for textclf.analysis.compare (summary, calibrated paired comparison, slices, choice on validation) and the report.

Records are synthetic: each run is correct on a chosen set of test examples,
so expected accuracies, macro-F1 and standard deviations are recomputed here
with numpy / sklearn rather than copied from the code under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from textclf.analysis.compare import RunRecord, compare, length_bins
from textclf.analysis.report import render_table, write_report

N = 400
C = 3
LABELS = ["neg", "neu", "pos"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_y(n: int = N, n_classes: int = C, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_classes, n)


def proba_for(y: np.ndarray, correct: np.ndarray, n_classes: int = C, seed: int = 0) -> np.ndarray:
    """Probabilities whose argmax is y where ``correct`` and (y + 1) % C elsewhere."""
    rng = np.random.default_rng(seed)
    pred = np.where(correct, y, (y + 1) % n_classes)
    p = rng.random((y.size, n_classes)) * 0.5
    p[np.arange(y.size), pred] += 1.0
    return p / p.sum(axis=1, keepdims=True)


def neural(variant, seed, y, proba, *, cell="rnn", layers=1, bidirectional=False, metrics=None, history=None):
    return RunRecord(
        variant=variant,
        seed=seed,
        kind="neural",
        cell=cell,
        layers=layers,
        bidirectional=bidirectional,
        metrics=metrics if metrics is not None else {},
        history=history if history is not None else [],
        y_true=y,
        proba=proba,
        run_id=f"{variant}-{seed}",
    )


def runs_with_rates(variant, y, rates, base_seed, **kw):
    """One record per seed; seed k is correct on a random fraction rates[k] of the examples."""
    records = []
    for k, rate in enumerate(rates):
        rng = np.random.default_rng(base_seed + k)
        correct = rng.random(y.size) < rate
        history = [{"epoch": e, "val_accuracy": rate - 0.1 / e, "val_loss": 1.0 / e} for e in range(1, 4)]
        metrics = {
            "params": 1000 * (base_seed + 1),
            "train_seconds": 10.0 + k,
            "tokens_per_second": 5000.0 * (k + 1),
            "val_accuracy": rate,
        }
        records.append(
            neural(variant, k + 1, y, proba_for(y, correct, seed=base_seed + k), metrics=metrics, history=history, **kw)
        )
    return records


@pytest.fixture(scope="module")
def y():
    return make_y()


@pytest.fixture(scope="module")
def records(y):
    a = runs_with_rates("a", y, [0.68, 0.70, 0.72], base_seed=10)
    b = runs_with_rates("b", y, [0.83, 0.85, 0.87], base_seed=20, cell="lstm", bidirectional=True)
    # "c" makes exactly the baseline's predictions, seed for seed.
    c = [neural("c", r.seed, y, r.proba.copy(), cell="gru", metrics=dict(r.metrics)) for r in a]
    return a + b + c


@pytest.fixture(scope="module")
def summary(records):
    return compare(records, "a", label_names=LABELS, n_boot=500, seed=0)


def accuracy(record) -> float:
    return float(np.mean(np.asarray(record.proba).argmax(axis=1) == record.y_true))


def macro_f1(record) -> float:
    pred = np.asarray(record.proba).argmax(axis=1)
    return float(f1_score(record.y_true, pred, labels=list(range(C)), average="macro", zero_division=0))


# --------------------------------------------------------------------------- #
# Summary statistics
# --------------------------------------------------------------------------- #


def test_means_and_sds_match_numpy(records, summary):
    for name in ("a", "b", "c"):
        recs = [r for r in records if r.variant == name]
        v = summary["variants"][name]
        accs = np.array([accuracy(r) for r in recs])
        f1s = np.array([macro_f1(r) for r in recs])
        assert v["test_accuracy"]["mean"] == pytest.approx(accs.mean(), abs=1e-12)
        assert v["test_accuracy"]["sd"] == pytest.approx(accs.std(ddof=1), abs=1e-12)
        assert v["test_macro_f1"]["mean"] == pytest.approx(f1s.mean(), abs=1e-12)
        assert v["test_macro_f1"]["sd"] == pytest.approx(f1s.std(ddof=1), abs=1e-12)
        secs = np.array([r.metrics["train_seconds"] for r in recs])
        assert v["train_seconds"]["mean"] == pytest.approx(secs.mean())
        assert v["train_seconds"]["sd"] == pytest.approx(secs.std(ddof=1))
        assert v["params"] == recs[0].metrics["params"]
        assert v["seeds"] == [1, 2, 3] and v["n_seeds"] == 3
        assert v["run_ids"] == [f"{name}-{s}" for s in (1, 2, 3)]
        # Never supplied: reported as missing rather than as a number.
        assert v["latency_p50_ms"] == {"mean": None, "sd": None}
    assert summary["variants"]["b"]["cell"] == "lstm" and summary["variants"]["b"]["bidirectional"] is True
    assert summary["n_test"] == N
    assert summary["best_variant"] == "b"


def test_single_seed_sd_is_zero_and_missing_values_are_skipped(y):
    correct = np.random.default_rng(1).random(N) < 0.7
    recs = [
        neural("solo", 1, y, proba_for(y, correct), metrics={"train_seconds": 3.0}),
        neural("pair", 1, y, proba_for(y, correct), metrics={"train_seconds": 2.0, "params": 10}),
        neural("pair", 2, y, proba_for(y, ~correct), metrics={"train_seconds": float("nan"), "params": 20}),
    ]
    s = compare(recs, None, label_names=LABELS, n_boot=20)
    assert s["variants"]["solo"]["test_accuracy"]["sd"] == 0.0
    assert s["variants"]["solo"]["params"] is None
    # NaN is dropped, so the pair's train time is the one finite value.
    assert s["variants"]["pair"]["train_seconds"] == {"mean": 2.0, "sd": 0.0}
    assert s["variants"]["pair"]["params"] == 15
    assert all(v["delta_accuracy"] is None and v["delta_macro_f1"] is None for v in s["variants"].values())


def test_cached_only_when_every_record_cached(y):
    correct = np.ones(N, bool)
    recs = [neural("x", s, y, proba_for(y, correct)) for s in (1, 2)]
    recs[0].cached = True
    assert compare(recs, None, label_names=LABELS, n_boot=20)["variants"]["x"]["cached"] is False
    recs[1].cached = True
    assert compare(recs, None, label_names=LABELS, n_boot=20)["variants"]["x"]["cached"] is True


# --------------------------------------------------------------------------- #
# Significance
# --------------------------------------------------------------------------- #


def test_better_variant_is_significant(records, summary):
    d = summary["variants"]["b"]["delta_accuracy"]
    observed = np.mean([accuracy(r) for r in records if r.variant == "b"]) - np.mean(
        [accuracy(r) for r in records if r.variant == "a"]
    )
    assert d["mean"] == pytest.approx(observed, abs=1e-12)
    assert d["mean"] > 0.1
    assert 0 < d["ci_low"] < d["mean"] < d["ci_high"]
    assert d["p_value"] < 0.05 and d["p_adjusted"] < 0.05
    f = summary["variants"]["b"]["delta_macro_f1"]
    assert f["ci_low"] > 0 and f["p_value"] < 0.05


def test_identical_variant_is_not_significant(summary):
    for key in ("delta_accuracy", "delta_macro_f1"):
        d = summary["variants"]["c"][key]
        assert d["mean"] == 0.0
        assert d["ci_low"] <= 0.0 <= d["ci_high"]
        assert d["p_value"] > 0.5 and d["p_adjusted"] >= d["p_value"]


def test_baseline_has_no_delta(summary):
    assert summary["baseline"] == "a"
    assert summary["variants"]["a"]["delta_accuracy"] is None
    assert summary["variants"]["a"]["delta_macro_f1"] is None
    assert "Holm" in summary["significance"] and "seed" in summary["significance"]


def test_deterministic_given_seed(records, summary):
    again = compare(records, "a", label_names=LABELS, n_boot=500, seed=0)
    assert json.dumps(again, sort_keys=True) == json.dumps(summary, sort_keys=True)
    other = compare(records, "a", label_names=LABELS, n_boot=500, seed=1)  # only the macro-F1 bootstrap draws change
    assert other["variants"]["b"]["delta_accuracy"] == summary["variants"]["b"]["delta_accuracy"]
    assert other["variants"]["b"]["delta_macro_f1"]["ci_low"] != summary["variants"]["b"]["delta_macro_f1"]["ci_low"]


def test_holm_adjusts_across_the_variants_compared(records, summary):
    from textclf.analysis.stats import holm

    compared = ["b", "c"]
    for key in ("delta_accuracy", "delta_macro_f1"):
        raw = [summary["variants"][n][key]["p_value"] for n in compared]
        assert [summary["variants"][n][key]["p_adjusted"] for n in compared] == holm(raw)


def test_one_seed_interval_covers_examples_and_says_so():
    """With one seed each, only test-example variance is known: a paired (McNemar-like) width, flagged."""
    n = 2000
    y = make_y(n, seed=5)
    rng = np.random.default_rng(6)
    base = rng.random(n) < 0.75
    flip = rng.random(n) < 0.12  # the other run disagrees on ~12% of examples
    other = base ^ flip
    recs = [neural("base", 1, y, proba_for(y, base)), neural("other", 1, y, proba_for(y, other))]
    s = compare(recs, "base", label_names=LABELS, n_boot=200, seed=3)
    d = s["variants"]["other"]["delta_accuracy"]
    p10 = np.mean(other & ~base)
    p01 = np.mean(base & ~other)
    sd = math.sqrt((p10 + p01 - (p10 - p01) ** 2) / n)
    assert d["mean"] == pytest.approx(p10 - p01, abs=1e-12)
    assert (d["ci_high"] - d["ci_low"]) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.05)
    assert d["seed_variance"] is False
    assert "single seed" in s["significance"] and "test-example variance only" in s["significance"]


def test_seed_variance_widens_the_interval(y):
    """Seed-to-seed spread is part of the interval: the same mean with spread-out seeds gives a much wider CI."""
    base = runs_with_rates("base", y, [0.7, 0.7, 0.7], base_seed=30)
    steady = runs_with_rates("v", y, [0.85, 0.85, 0.85], base_seed=40)
    noisy = runs_with_rates("v", y, [0.70, 0.85, 1.0], base_seed=40)

    def width(recs):
        d = compare(base + recs, "base", label_names=LABELS, n_boot=100, seed=0)["variants"]["v"]["delta_accuracy"]
        return d["ci_high"] - d["ci_low"]

    assert width(noisy) > 2 * width(steady)


# --------------------------------------------------------------------------- #
# Nothing chosen on test data
# --------------------------------------------------------------------------- #


def test_best_variant_is_chosen_on_validation_not_test(y):
    """'a' is better on test, 'b' on validation: the choice follows validation."""
    a = runs_with_rates("a", y, [0.90, 0.91], base_seed=1)
    b = runs_with_rates("b", y, [0.60, 0.61], base_seed=2)
    for r in a:
        r.metrics["val_accuracy"] = 0.70
    for r in b:
        r.metrics["val_accuracy"] = 0.80
    s = compare(a + b, "a", label_names=LABELS, n_boot=50)
    assert s["variants"]["a"]["test_accuracy"]["mean"] > s["variants"]["b"]["test_accuracy"]["mean"]
    assert s["best_variant"] == "b" and "validation" in s["best_variant_by"]
    # the early-stopping metric decides when it is macro-F1
    for r in a:
        r.metrics["val_macro_f1"] = 0.9
    for r in b:
        r.metrics["val_macro_f1"] = 0.5
    assert compare(a + b, "a", label_names=LABELS, n_boot=50, select_by="val_macro_f1")["best_variant"] == "a"


def test_register_champion_picks_the_best_validation_seed():
    from types import SimpleNamespace

    from textclf.pipeline import experiment

    runs = {
        "r1": SimpleNamespace(
            info=SimpleNamespace(run_id="r1"),
            data=SimpleNamespace(metrics={"val_accuracy": 0.7, "test_accuracy": 0.99}, tags={}),
        ),
        "r2": SimpleNamespace(
            info=SimpleNamespace(run_id="r2"),
            data=SimpleNamespace(metrics={"val_accuracy": 0.8, "test_accuracy": 0.50}, tags={}),
        ),
    }
    registered = {}

    class Client:
        def get_run(self, rid):
            return runs[rid]

        def set_registered_model_alias(self, name, alias, version):
            registered["alias"] = (name, alias, version)

        def set_model_version_tag(self, *a):
            pass

    import mlflow

    original = mlflow.register_model
    mlflow.register_model = lambda uri, name: registered.setdefault("uri", uri) and SimpleNamespace(version="1")
    try:
        out = experiment.register_champion(
            Client(),
            {"best_variant": "x", "best_variant_metric": "val_accuracy", "variants": {"x": {"run_ids": ["r1", "r2"]}}},
            "m",
        )
    finally:
        mlflow.register_model = original
    assert registered["uri"] == "runs:/r2/model" and out["chosen_by"] == "val_accuracy"


# --------------------------------------------------------------------------- #
# Where a variant differs
# --------------------------------------------------------------------------- #


def test_length_slices_are_quintiles_with_both_accuracies(y):
    lengths = np.arange(N) % 50 + 1  # 1..50, evenly spread
    correct_long = lengths > 25
    a = [neural("a", 1, y, proba_for(y, np.ones(N, bool)))]
    b = [neural("b", 1, y, proba_for(y, correct_long))]
    s = compare(a + b, "a", label_names=LABELS, n_boot=50, lengths=lengths)
    rows = s["variants"]["b"]["slices"]["length"]
    assert len(rows) == 5 and sum(r["n"] for r in rows) == N
    assert rows[0]["lo"] == 1 and rows[-1]["hi"] == 50 and all(r["hi"] < q["lo"] for r, q in zip(rows, rows[1:]))
    for r in rows:
        idx = (lengths >= r["lo"]) & (lengths <= r["hi"])
        assert r["n"] == idx.sum()
        assert r["accuracy"] == pytest.approx(correct_long[idx].mean())
        assert r["baseline_accuracy"] == 1.0
    assert rows[0]["accuracy"] == 0.0 and rows[-1]["accuracy"] == 1.0


def test_length_bins_merge_tied_edges():
    bins = length_bins(np.array([3] * 90 + [7] * 10))
    assert [len(b) for b in bins] == [90, 10]


def test_disagreements_use_the_majority_over_seeds(y):
    rng = np.random.default_rng(3)
    base = rng.random(N) < 0.7
    better = base.copy()
    better[:40] = True  # right on 40 more texts ...
    better[40:50] = False  # ... and wrong on 10 the baseline gets (where the baseline was right)
    base_right_40_50 = base[40:50].sum()
    a = [neural("a", s, y, proba_for(y, base)) for s in (1, 2, 3)]
    # two of three seeds agree on `better`; the third is all wrong: the majority is `better`
    b = [
        neural("b", 1, y, proba_for(y, better)),
        neural("b", 2, y, proba_for(y, better)),
        neural("b", 3, y, proba_for(y, np.zeros(N, bool))),
    ]
    texts = [f"text {i}" for i in range(N)]
    d = compare(a + b, "a", label_names=LABELS, n_boot=50, texts=texts)["variants"]["b"]["disagreements"]
    assert d["wins"] == int((~base[:40]).sum()) and d["losses"] == int(base_right_40_50)
    assert len(d["examples"]["wins"]) == min(10, d["wins"])
    first = d["examples"]["wins"][0]
    i = int(first["text"].split()[1])
    assert i < 40 and not base[i] and first["label"] == LABELS[y[i]] and first["variant"] == LABELS[y[i]]


def test_slice_columns(y):
    domain = np.where(np.arange(N) % 2 == 0, "film", "book")
    right_on_film = domain == "film"
    a = [neural("a", 1, y, proba_for(y, np.ones(N, bool)))]
    b = [neural("b", 1, y, proba_for(y, right_on_film))]
    s = compare(a + b, "a", label_names=LABELS, n_boot=50, slice_columns={"domain": list(domain)})
    rows = {r["value"]: r for r in s["variants"]["b"]["slices"]["domain"]}
    assert rows["film"]["accuracy"] == 1.0 and rows["book"]["accuracy"] == 0.0 and rows["book"]["n"] == N // 2
    with pytest.raises(ValueError, match="slice column 'domain'"):
        compare(a + b, "a", label_names=LABELS, slice_columns={"domain": ["x"]})


def test_summary_macro_f1_agrees_with_sklearn(records, summary):
    # All classes occur in y here, so this is sklearn's plain average="macro".
    for name in ("a", "b"):
        recs = [r for r in records if r.variant == name]
        expected = np.mean([f1_score(r.y_true, r.proba.argmax(1), average="macro") for r in recs])
        assert summary["variants"][name]["test_macro_f1"]["mean"] == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def test_rejects_bad_input(records, y):
    with pytest.raises(ValueError, match="baseline"):
        compare(records, "nope", label_names=LABELS)
    shuffled = neural("d", 1, y[::-1].copy(), records[0].proba)
    with pytest.raises(ValueError, match="same"):
        compare(records + [shuffled], "a", label_names=LABELS)
    duplicate = neural("a", 1, y, records[0].proba)
    with pytest.raises(ValueError, match="duplicate"):
        compare(records + [duplicate], "a", label_names=LABELS)
    with pytest.raises(ValueError, match="columns"):
        compare(records, "a", label_names=LABELS + ["extra"])
    with pytest.raises(ValueError):
        compare([], None, label_names=LABELS)


# --------------------------------------------------------------------------- #
# Table and report
# --------------------------------------------------------------------------- #


def rendered(summary) -> str:
    from rich.console import Console

    console = Console(width=250, record=True, color_system=None)
    console.print(render_table(summary))
    return console.export_text()


def test_render_table(summary):
    table = render_table(summary)
    assert table.row_count == len(summary["variants"])
    text = rendered(summary)
    assert "a (baseline)" in text
    b_line = next(line for line in text.splitlines() if line.strip("│ ").startswith("b "))
    c_line = next(line for line in text.splitlines() if line.strip("│ ").startswith("c "))
    d = summary["variants"]["b"]["delta_accuracy"]
    # CI brackets survive rendering (not eaten as markup) and b carries the (Holm-adjusted) marker; c does not.
    assert f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] *" in b_line
    assert "*" not in c_line


def png_ok(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG_MAGIC


def test_write_report(records, summary, tmp_path):
    out = write_report(summary, records, tmp_path / "cmp", title="Test comparison", command="textclf run compare")
    report = out["report"].read_text()
    assert report.startswith("# Test comparison")
    assert "textclf run compare" in report
    for name in ("a", "b", "c"):
        assert f"| {name}" in report
    assert "a (baseline)" in report
    assert "b vs a" in report and "c vs a" in report
    assert summary["significance"] in report
    assert json.loads(out["summary"].read_text()) == summary
    names = {p.name for p in out["plots"]}
    # All neural variants have one layer, so there is no depth trend to plot.
    # The answer's figures (contrasts, cost against quality) come with every comparison that has a baseline.
    assert names == {
        "accuracy_vs_params.png",
        "accuracy_vs_train_time.png",
        "learning_curves.png",
        "contrasts.png",
        "cost_quality.png",
    }
    assert all(png_ok(p) for p in out["plots"])
    for p in out["plots"]:
        assert f"]({p.name})" in report


def test_report_with_tfidf_and_depths(y, tmp_path):
    recs = runs_with_rates("rnn", y, [0.7, 0.72], base_seed=50)
    recs += runs_with_rates("lstm2", y, [0.8, 0.82], base_seed=60, cell="lstm", layers=2)
    recs += runs_with_rates("lstm1", y, [0.78], base_seed=70, cell="lstm", layers=1)
    recs += runs_with_rates("bilstm2", y, [0.85], base_seed=80, cell="lstm", layers=2, bidirectional=True)
    for k, rate in enumerate([0.75, 0.76]):
        correct = np.random.default_rng(90 + k).random(N) < rate
        recs.append(
            RunRecord(
                variant="tfidf",
                seed=k + 1,
                kind="tfidf",
                cell=None,
                layers=None,
                bidirectional=None,
                metrics={"params": 50_000, "train_seconds": 0.5},
                history=[],
                y_true=y,
                proba=proba_for(y, correct, seed=90 + k),
                run_id=None,
                cached=True,
            )
        )
    s = compare(recs, "rnn", label_names=LABELS, n_boot=100)
    assert s["variants"]["tfidf"]["cell"] is None and s["variants"]["tfidf"]["run_ids"] == [None, None]
    out = write_report(s, recs, tmp_path, title="Mixed")
    names = {p.name for p in out["plots"]}
    assert "accuracy_by_depth.png" in names and len(names) == 6  # + contrasts.png, cost_quality.png
    assert all(png_ok(p) for p in out["plots"])
    report = out["report"].read_text()
    assert "tfidf" in report and "single seed" in report  # lstm1 and bilstm2 have one seed


def test_report_when_nothing_has_history(y, tmp_path):
    correct = np.random.default_rng(0).random(N) < 0.8
    recs = [RunRecord(variant="tfidf", seed=1, kind="tfidf", y_true=y, proba=proba_for(y, correct))]
    s = compare(recs, None, label_names=LABELS)
    out = write_report(s, recs, tmp_path, title="Only tfidf")
    assert all(png_ok(p) for p in out["plots"])
    assert "learning_curves.png" in {p.name for p in out["plots"]}
    assert "Baseline: none" in out["report"].read_text()
