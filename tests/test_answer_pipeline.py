"""The answer a comparison gives: contrasts in summary.json, the guardrails, and bad contrast configs refused
before anything trains."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from textclf.analysis.compare import RunRecord, compare
from textclf.analysis.report import markdown_table, write_report
from textclf.cli.main import main

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

KEYS = {
    "name",
    "a",
    "b",
    "kind",
    "metric",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "sesoi",
    "verdict",
    "mde",
    "seeds_a",
    "seeds_b",
    "cost_ratio",
}
FILLER = ["the", "film", "was", "a", "plot", "and", "it", "story", "cast", "really"]


def write_corpus(path: Path, n: int = 120) -> Path:
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(n):
        pos = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great"] if pos else ["bad", "awful"]))
        rows.append(f"{' '.join(words)},{'pos' if pos else 'neg'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_pipeline(path: Path, corpus: Path, **extra) -> Path:
    spec = {
        "name": "answer",
        "data": {"source": str(corpus)},
        "params": {
            "train": {"epochs": 1, "batch_size": 16, "num_threads": 1},
            "encoder": {"hidden_size": 8},
            "embedding": {"dim": 8},
            "tokenizer": {"min_frequency": 1},
            "evaluate": {"latency_samples": 2},
        },
        "seeds": [1, 2],
        "baseline": "lstm",
        "variants": {
            "lstm": {"encoder": {"cell": "lstm"}},
            "bilstm": {"encoder": {"cell": "lstm", "bidirectional": True}},
        },
        **extra,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _runs() -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def test_two_variant_pipeline_answers_with_contrasts(tmp_path, capsys):
    pipe = write_pipeline(tmp_path / "p.yaml", write_corpus(tmp_path / "d.csv"))
    assert main(["run", str(pipe), "-q", "--summary-out", "s.json", "--set", "compare.sesoi=1.5"]) == 0
    s = json.loads(Path("s.json").read_text())
    assert s["primary_metric"] == "test_accuracy" and s["sesoi"] == pytest.approx(0.015)
    (c,) = s["contrasts"]
    assert set(c) == KEYS
    assert (c["name"], c["a"], c["b"], c["kind"], c["metric"]) == (
        "direction@1",
        "bilstm",
        "lstm",
        "pair",
        "test_accuracy",
    )
    assert c["verdict"] in ("better", "worse", "equivalent", "inconclusive") and c["seeds_a"] == c["seeds_b"] == 2
    assert c["ci_low"] <= c["delta"] <= c["ci_high"] and c["p_value"] is not None and c["mde"] > 0
    assert set(c["cost_ratio"]) == {"train_seconds", "params", "latency_p50_ms"} and c["cost_ratio"]["params"] > 1
    assert s["answer"] and s["answer"][0].startswith("direction@1 (lstm → bilstm)")
    # secondary metric: an interval, no verdict
    (sec,) = s["secondary_contrasts"]
    assert sec["metric"] == "test_macro_f1" and sec["verdict"] is None and sec["p_adjusted"] is None
    # the terminal output and the parent's description open with the answer
    out = capsys.readouterr().out
    assert out.index("Answer") < out.index("Variant comparison")
    from mlflow.tracking import MlflowClient

    parent = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(s["parent_run_id"])
    note = parent.data.tags["mlflow.note.content"]
    assert note.index("direction@1") < note.index("| variant")


def test_unknown_contrast_variant_is_refused_before_training(tmp_path, capsys):
    pipe = write_pipeline(
        tmp_path / "p.yaml", write_corpus(tmp_path / "d.csv"), contrasts={"depth": {"a": "lstm-x2", "b": "lstm"}}
    )
    assert main(["run", str(pipe), "-q"]) == 2
    err = capsys.readouterr().err
    assert "contrasts.depth.a" in err and "'lstm-x2' is not a variant" in err and "Variants: bilstm, lstm" in err
    assert "Traceback" not in err
    assert _runs() == 0


def test_declared_contrasts_replace_the_derived_family(tmp_path):
    from textclf.pipeline.spec import load_pipeline

    pipe = write_pipeline(
        tmp_path / "p.yaml", write_corpus(tmp_path / "d.csv"), contrasts={"both ways": {"a": "bilstm", "b": "lstm"}}
    )
    assert load_pipeline(pipe).spec.contrasts["both ways"].a == "bilstm"
    with pytest.raises(Exception, match="compare.sesoi"):
        load_pipeline(pipe, overrides=["compare.sesoi=-1"])
    # --set reaches the pipeline-level sections too
    other = write_pipeline(tmp_path / "q.yaml", write_corpus(tmp_path / "e.csv"))
    got = load_pipeline(other, overrides=["contrasts.dir.a=bilstm", "contrasts.dir.b=lstm", "compare.alpha=0.01"]).spec
    assert (got.contrasts["dir"].a, got.contrasts["dir"].b, got.compare.alpha) == ("bilstm", "lstm", 0.01)


def test_test_set_that_is_the_validation_set_is_refused(tmp_path, capsys):
    data = write_corpus(tmp_path / "d.csv")
    pipe = write_pipeline(tmp_path / "p.yaml", data, data={"source": str(data), "test_fraction": 0})
    assert main(["run", str(pipe), "-q"]) == 2
    err = capsys.readouterr().err
    assert "data.test_fraction" in err and "data.test" in err and "compare.allow_test_is_validation" in err
    assert _runs() == 0
    # opted in: it builds
    from textclf.pipeline.spec import load_pipeline

    assert load_pipeline(
        pipe, overrides=["compare.allow_test_is_validation=true"]
    ).spec.compare.allow_test_is_validation


# --------------------------------------------------------------------------- compare() on synthetic runs


def _records(
    levels: dict[str, float], seeds: int, n: int = 600, seed_sd: float = 0.01, rng_seed: int = 0
) -> list[RunRecord]:
    rng = np.random.default_rng(rng_seed)
    y = rng.integers(0, 2, n)
    hard = rng.random(n)
    shape = {
        "rnn": ("rnn", 1, False),
        "lstm": ("lstm", 1, False),
        "lstm-x2": ("lstm", 2, False),
        "bilstm": ("lstm", 1, True),
        "bilstm-x2": ("lstm", 2, True),
    }
    out = []
    for name, acc in levels.items():
        cell, layers, bi = shape[name]
        for s in range(1, seeds + 1):
            right = hard < acc + rng.normal(0, seed_sd)
            pred = np.where(right, y, 1 - y)
            out.append(
                RunRecord(
                    variant=name,
                    seed=s,
                    kind="neural",
                    y_true=y,
                    pred=pred,
                    cell=cell,
                    layers=layers,
                    bidirectional=bi,
                    metrics={
                        "train_seconds": 10.0 * layers * (2 if bi else 1),
                        "params": 100 * layers,
                        "latency_p50_ms": 1.0 * layers,
                        "val_accuracy": acc,
                    },
                )
            )
    return out


def test_one_seed_gets_no_p_value_no_star_and_an_inconclusive_verdict(tmp_path):
    s = compare(_records({"rnn": 0.6, "lstm": 0.8}, seeds=1), "rnn", label_names=["a", "b"])
    (c,) = s["contrasts"]
    assert c["p_value"] is None and c["p_adjusted"] is None and c["verdict"] == "inconclusive" and c["mde"] is None
    assert "single seed" in s["answer"][0]
    table = markdown_table(s)
    assert "*" not in table.split("\n", 2)[2] and "± n/a" in table
    paths = write_report(s, _records({"rnn": 0.6, "lstm": 0.8}, seeds=1), tmp_path, title="t")
    text = paths["report"].read_text()
    assert text.index("## Answer") < text.index("## Results") and "a side has a single seed" in text


def test_two_seeds_a_big_difference_is_better_with_its_cost():
    s = compare(_records({"rnn": 0.6, "lstm": 0.8}, seeds=3), "rnn", label_names=["a", "b"])
    (c,) = s["contrasts"]
    assert c["verdict"] == "better" and c["p_adjusted"] < 0.05
    assert "better" in s["answer"][0] and "the training time" in s["answer"][0]


def test_equivalent_only_when_shown_and_the_two_by_two_is_analysed():
    levels = {"rnn": 0.7, "lstm": 0.8, "lstm-x2": 0.8, "bilstm": 0.85, "bilstm-x2": 0.85}
    s = compare(_records(levels, seeds=5, n=6000, seed_sd=0.002), "rnn", label_names=["a", "b"])
    by = {c["name"]: c for c in s["contrasts"]}
    assert {
        "depth (main)",
        "direction (main)",
        "depth x direction",
        "depth@uni",
        "depth@bi",
        "direction@1",
        "direction@2",
    } <= set(by)
    assert by["direction (main)"]["verdict"] == "better" and by["direction (main)"]["kind"] == "main"
    assert (
        by["depth x direction"]["kind"] == "interaction"
        and by["depth x direction"]["cost_ratio"]["train_seconds"] is None
    )
    assert by["depth@uni"]["verdict"] == "equivalent"  # same true accuracy, large test set, 5 seeds
    assert any("buys nothing" in a for a in s["answer"] if a.startswith("depth@uni"))
    # Holm over the family: every p_adjusted at least its p_value
    assert all(c["p_adjusted"] >= c["p_value"] for c in s["contrasts"])
    # lstm-x2 trains as long as bilstm, answers slower and is less accurate: dominated
    assert "bilstm" in s["dominated"]["lstm-x2"] and "bilstm" not in s["dominated"]


def test_few_seeds_are_inconclusive_and_say_what_would_decide():
    s = compare(
        _records({"rnn": 0.8, "lstm": 0.81}, seeds=2, n=400, seed_sd=0.03, rng_seed=0), "rnn", label_names=["a", "b"]
    )
    (c,) = s["contrasts"]
    assert c["verdict"] == "inconclusive" and c["mde"] > 0.1
    need = s["contrast_details"][c["name"]]["seeds_needed"]
    assert need > 2 and f"would need ~{need} seeds per variant" in s["answer"][0]
    # a test set too small for the sesoi: seeds cannot help, and the sentence says so
    y = np.zeros(60, dtype=int)
    right = (
        np.arange(60) % 2 == 0
    )  # the two variants are right on disjoint halves: equal, and maximally apart per example
    recs = [
        RunRecord(
            variant=v, seed=s, kind="neural", y_true=y, pred=np.where(ok, 0, 1), cell=v, layers=1, bidirectional=False
        )
        for v, ok in (("rnn", right), ("lstm", ~right))
        for s in (1, 2, 3)
    ]
    s = compare(recs, "rnn", label_names=["a", "b"])
    assert s["contrasts"][0]["verdict"] == "inconclusive" and "use a larger test set" in s["answer"][0]


def test_test_is_validation_warns_on_every_verdict_line():
    s = compare(_records({"rnn": 0.6, "lstm": 0.8}, seeds=3), "rnn", label_names=["a", "b"], test_is_validation=True)
    assert s["test_is_validation"] and all("WARNING" in a for a in s["answer"])


def test_primary_metric_follows_the_selection_metric():
    recs = _records({"rnn": 0.6, "lstm": 0.8}, seeds=3)
    for r in recs:
        r.metrics["val_macro_f1"] = r.metrics["val_accuracy"]
    s = compare(recs, "rnn", label_names=["a", "b"], select_by="val_macro_f1")
    assert s["primary_metric"] == "test_macro_f1" and s["contrasts"][0]["metric"] == "test_macro_f1"
    assert s["secondary_contrasts"][0]["metric"] == "test_accuracy"
    assert "ΔF1 vs rnn" in markdown_table(s)
