"""End-to-end pipeline runs through the real CLI: MLflow layout, cache reuse, reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from textclf.cli.main import main

pytestmark = pytest.mark.slow

WORDS_POS = ["good", "great", "fine", "lovely", "superb"]
WORDS_NEG = ["bad", "awful", "poor", "dull", "weak"]
FILLER = ["the", "film", "was", "a", "plot", "and", "it", "story", "cast", "really"]


def write_corpus(path: Path, n: int = 160, seed: int = 0) -> Path:
    """A tiny two-class corpus: the label is the polarity of the one sentiment word."""
    import random

    rng = random.Random(seed)
    rows = ["text,label"]
    for i in range(n):
        pos = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS_POS if pos else WORDS_NEG))
        rows.append(f"{' '.join(words)},{'pos' if pos else 'neg'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_pipeline(path: Path, data: Path, **params) -> Path:
    spec = {
        "name": "tiny",
        "data": {"source": str(data)},
        "params": {
            "train": {"epochs": 2, "batch_size": 16, "num_threads": 1, **params.get("train", {})},
            "encoder": {"hidden_size": 8, **params.get("encoder", {})},
            "embedding": {"dim": 8},
            "tokenizer": {"min_frequency": 1},
            "evaluate": {"latency_samples": 3},
        },
        "seeds": [1, 2],
        "baseline": "rnn",
        "variants": {
            "rnn": {"encoder": {"cell": "rnn"}},
            "bilstm": {"encoder": {"cell": "lstm", "bidirectional": True}},
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(tmp_path / ".textclf"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    data = write_corpus(tmp_path / "reviews.csv")
    return tmp_path, write_pipeline(tmp_path / "tiny.yaml", data)


def runs_of(parent_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return client, parent, children


def run_cli(*args: str) -> int:
    import mlflow

    code = main(list(args))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return code


def test_pipeline_records_parent_children_and_reuses_cache(project, capsys):
    tmp, pipe = project
    assert run_cli("run", str(pipe), "-q", "--summary-out", "s1.json") == 0
    s1 = json.loads(Path("s1.json").read_text())
    client, parent, children = runs_of(s1["parent_run_id"])

    # one parent, four nested children: (rnn, bilstm) x seeds (1, 2)
    assert parent.data.tags["textclf.role"] == "parent"
    got = sorted((c.data.tags["variant"], c.data.tags["seed"]) for c in children)
    assert got == [("bilstm", "1"), ("bilstm", "2"), ("rnn", "1"), ("rnn", "2")]
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.params["encoder.cell"] == ("rnn" if c.data.tags["variant"] == "rnn" else "lstm")
        assert c.data.params["train.seed"] == c.data.tags["seed"]
        assert c.data.tags["bidirectional"] == ("true" if c.data.tags["variant"] == "bilstm" else "false")
        assert c.data.tags["textclf.cached"] == "false"
        assert {"test_accuracy", "test_macro_f1", "params", "train_seconds", "latency_p50_ms"} <= set(c.data.metrics)
        history = client.get_metric_history(c.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == [1, 2]  # step = epoch
        arts = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {
            "config.yaml",
            "tokenizer.json",
            "confusion_matrix.png",
            "learning_curves.png",
            "classification_report.txt",
        } <= arts
        assert c.data.tags["textclf.model_uri"]
        assert len(c.inputs.dataset_inputs) == 3
    parent_arts = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/report.md", "comparison/summary.json"} <= parent_arts

    # summary.json content
    assert set(s1["variants"]) == {"rnn", "bilstm"}
    for row in s1["variants"].values():
        assert set(row["test_accuracy"]) >= {"mean", "sd"} and 0.0 <= row["test_accuracy"]["mean"] <= 1.0
        assert len(row["run_ids"]) == 2 and row["cached"] is False
        assert row["params"] > 0
    assert s1["variants"]["rnn"]["delta_accuracy"] is None
    assert set(s1["variants"]["bilstm"]["delta_accuracy"]) >= {"mean", "ci_low", "ci_high", "p_value"}
    report = Path(client.download_artifacts(parent.info.run_id, "comparison/report.md")).read_text()
    assert "rnn" in report and "bilstm" in report and "baseline" in report.lower()

    # a re-run with nothing changed trains and records nothing: it shows the answer the first run recorded
    all_runs = lambda: client.search_runs([parent.info.experiment_id], max_results=1000)  # noqa: E731
    before = {r.info.run_id for r in all_runs()}
    capsys.readouterr()
    assert run_cli("run", str(pipe), "--summary-out", "same.json") == 0
    assert "nothing changed since parent run " + s1["parent_run_id"] in " ".join(capsys.readouterr().out.split())
    assert json.loads(Path("same.json").read_text()) == s1
    assert {r.info.run_id for r in all_runs()} == before

    # --new-run records it again: cached children that link the first run's models, the same metrics
    assert run_cli("run", str(pipe), "-q", "--new-run", "--summary-out", "s2.json") == 0
    s2 = json.loads(Path("s2.json").read_text())
    assert s2["parent_run_id"] != s1["parent_run_id"]
    _, _, children2 = runs_of(s2["parent_run_id"])
    assert len(children2) == 4
    first = {(c.data.tags["variant"], c.data.tags["seed"]): c for c in children}
    for c in children2:
        assert c.data.tags["textclf.cached"] == "true"
        src = first[(c.data.tags["variant"], c.data.tags["seed"])]
        assert c.data.tags["textclf.cached_from"] == src.info.run_id
        assert c.data.metrics["test_accuracy"] == src.data.metrics["test_accuracy"]
    for name in s1["variants"]:
        assert s2["variants"][name]["test_accuracy"] == s1["variants"][name]["test_accuracy"]
        assert s2["variants"][name]["cached"] is True

    # changing one variant's param re-runs exactly that variant
    spec = yaml.safe_load(pipe.read_text())
    spec["variants"]["bilstm"]["encoder"]["hidden_size"] = 6
    pipe.write_text(yaml.safe_dump(spec))
    assert run_cli("run", str(pipe), "-q", "--summary-out", "s3.json") == 0
    s3 = json.loads(Path("s3.json").read_text())
    _, _, children3 = runs_of(s3["parent_run_id"])
    fresh = sorted((c.data.tags["variant"], c.data.tags["textclf.cached"]) for c in children3)
    assert fresh == [("bilstm", "false"), ("bilstm", "false"), ("rnn", "true"), ("rnn", "true")]

    # textclf report re-prints a past parent's comparison
    capsys.readouterr()
    assert run_cli("report", s3["parent_run_id"], "--json") == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["parent_run_id"] == s3["parent_run_id"]
    assert reported["variants"]["bilstm"]["test_accuracy"] == s3["variants"]["bilstm"]["test_accuracy"]
    assert run_cli("report", s1["parent_run_id"]) == 0
    table = capsys.readouterr().out
    assert s1["parent_run_id"] in table and "bilstm" in table and "rnn (baseline)" in table


def test_same_seed_same_metrics_and_force_recomputes(project):
    tmp, pipe = project
    assert run_cli("run", str(pipe), "-q", "--variant", "rnn", "--summary-out", "a.json") == 0
    a = json.loads(Path("a.json").read_text())
    # --force recomputes every stage; same config + seed on the same machine => same metrics
    assert run_cli("run", str(pipe), "-q", "--variant", "rnn", "--force", "--summary-out", "b.json") == 0
    b = json.loads(Path("b.json").read_text())
    _, _, children = runs_of(b["parent_run_id"])
    assert all(c.data.tags["textclf.cached"] == "false" for c in children)
    assert a["variants"]["rnn"]["test_accuracy"] == b["variants"]["rnn"]["test_accuracy"]


def test_four_concurrent_runs_share_store_and_cache(project):
    """4 `textclf run` processes, same store and cache, overlapping work: all complete, all recorded.

    Two run only `rnn`, two run `rnn` and `bilstm`; each (variant, seed) must be
    trained once (per-key cache locks) and every run recorded (SQLite in WAL
    mode, a store-creation lock and retries on MLflow's insert races).
    """
    tmp, pipe = project
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    only = [["--variant", "rnn"], ["--variant", "rnn"], [], []]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "textclf.cli",
                "run",
                str(pipe),
                "-q",
                *only[i],
                "--set",
                "train.num_threads=1",
                "--summary-out",
                f"c{i}.json",
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
        assert "database is locked" not in err.lower()
    summaries = [json.loads((tmp / f"c{i}.json").read_text()) for i in range(4)]
    assert len({s["parent_run_id"] for s in summaries}) == 4
    for s, variants in zip(summaries, only):
        _, parent, children = runs_of(s["parent_run_id"])
        assert parent.info.status == "FINISHED"
        assert len(children) == (2 if variants else 4) and all(c.info.status == "FINISHED" for c in children)
        pairs = [(c.data.tags["variant"], c.data.tags["seed"]) for c in children]
        assert len(set(pairs)) == len(pairs)
    # Same (variant, seed) => same result, whichever process computed it.
    assert len({json.dumps(s["variants"]["rnn"]["test_accuracy"]) for s in summaries}) == 1
    # One train entry per (variant, seed), each complete and loadable; no temporaries left.
    from textclf.serving.classifier import Classifier

    entries = [p for p in (tmp / ".textclf" / "train").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 4
    for e in entries:
        assert json.loads((e / "_entry.json").read_text())["stage"] == "train"
        assert Classifier.from_folder(e / "model").predict_proba(["good film"]).shape == (1, 2)
    assert not list((tmp / ".textclf").glob("*/.tmp-*"))


def test_train_cli_writes_model_folder_and_metrics(project):
    tmp, _ = project
    data = tmp / "reviews.csv"
    args = [
        "train",
        "-q",
        "--set",
        f"data.source={data}",
        "--set",
        "train.epochs=8",
        "--set",
        "train.lr=0.02",
        "--set",
        "encoder.hidden_size=8",
        "--set",
        "embedding.dim=8",
        "--set",
        "train.num_threads=1",
        "--set",
        "evaluate.latency_samples=2",
        "--output",
        "model",
        "--metrics-out",
        "m.json",
    ]
    assert run_cli(*args) == 0
    m = json.loads(Path("m.json").read_text())
    for key in (
        "val_accuracy",
        "test_accuracy",
        "test_macro_f1",
        "params",
        "train_seconds",
        "tokens_per_second",
        "model_dir",
        "run_id",
    ):
        assert m[key] is not None, key
    assert sorted(p.name for p in Path("model").iterdir()) == [
        "config.json",
        "labels.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert json.loads(Path("model/labels.json").read_text()) == ["neg", "pos"]
    from textclf.serving.classifier import Classifier

    clf = Classifier.from_folder("model")
    proba = clf.predict_proba(["the film was great", "the film was awful", "zzz unseen"])
    assert proba.shape == (3, 2)
    assert abs(proba.sum(axis=1) - 1).max() < 1e-5
    # the copied folder is the trained model: it labels unseen texts of the same task
    # well above chance (42/60 has a one-sided binomial p = 0.001). The exact share
    # depends on the seed's dropout masks: seeds 1-8 of this setting gave 0.70-0.92.
    fresh = [
        line.rsplit(",", 1) for line in write_corpus(tmp / "fresh.csv", n=60, seed=99).read_text().splitlines()[1:]
    ]
    predicted = clf.predict([t for t, _ in fresh])
    assert predicted == [clf.labels[i] for i in clf.predict_proba([t for t, _ in fresh]).argmax(1)]
    assert sum(p == y for p, (_, y) in zip(predicted, fresh)) / len(fresh) >= 0.7


def test_multi_task_pipeline_compares_each_task_on_its_own(project):
    tmp, _ = project
    write_corpus(tmp / "other.csv", n=120, seed=7)
    spec = yaml.safe_load((tmp / "tiny.yaml").read_text())
    spec.pop("data")
    spec["seeds"] = [1]
    spec["tasks"] = {
        "first": {"data": {"source": str(tmp / "reviews.csv")}},
        "second": {"data": {"source": str(tmp / "other.csv")}, "variants": ["rnn"], "baseline": "rnn"},
    }
    (tmp / "multi.yaml").write_text(yaml.safe_dump(spec))
    assert run_cli("run", "multi.yaml", "-q", "--summary-out", "m.json") == 0
    s = json.loads(Path("m.json").read_text())
    assert set(s["tasks"]) == {"first", "second"}
    assert set(s["tasks"]["first"]["variants"]) == {"rnn", "bilstm"}
    assert set(s["tasks"]["second"]["variants"]) == {"rnn"}
    # each task is scored on its own test set
    assert s["tasks"]["first"]["n_test"] != s["tasks"]["second"]["n_test"]
    _, _, children = runs_of(s["parent_run_id"])
    assert sorted((c.data.tags["textclf.task"], c.data.tags["variant"]) for c in children) == [
        ("first", "bilstm"),
        ("first", "rnn"),
        ("second", "rnn"),
    ]


def test_cached_rerun_reuses_rendered_comparison_plots(project, monkeypatch):
    """Plots depend only on the results: an unchanged re-run copies them instead of re-rendering."""
    from mlflow.tracking import MlflowClient

    import textclf.analysis.report

    tmp, pipe = project
    calls = []
    real = textclf.analysis.report._make_plots
    monkeypatch.setattr(textclf.analysis.report, "_make_plots", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run_cli("run", str(pipe), "-q", "--variant", "rnn", "--summary-out", "a.json") == 0
    assert run_cli("run", str(pipe), "-q", "--variant", "rnn", "--summary-out", "b.json") == 0
    assert len(calls) == 1  # rendered once, for the first run
    for name in ("a.json", "b.json"):
        parent = json.loads(Path(name).read_text())["parent_run_id"]
        files = {f.path for f in MlflowClient().list_artifacts(parent, "comparison")}
        assert {"comparison/learning_curves.png", "comparison/report.md"} <= files
    # A changed result is plotted afresh.
    assert (
        run_cli("run", str(pipe), "-q", "--variant", "rnn", "--set", "train.epochs=1", "--summary-out", "c.json") == 0
    )
    assert len(calls) == 2


def test_a_cached_result_in_another_store_gets_its_own_model(project):
    """Experiment ids repeat across MLflow stores: a cached child must never point at another store's run."""
    from mlflow.tracking import MlflowClient

    tmp, pipe = project
    store_b = f"sqlite:///{tmp}/other/mlflow.db"
    for _ in range(2):  # the second run looks up store A's source runs (cached children)
        assert run_cli("run", str(pipe), "-q", "--variant", "rnn", "--summary-out", "a.json") == 0
    assert (
        run_cli("run", str(pipe), "-q", "--variant", "rnn", "--tracking-uri", store_b, "--summary-out", "b.json") == 0
    )
    b = json.loads(Path("b.json").read_text())
    client = MlflowClient(tracking_uri=store_b)
    parent = client.get_run(b["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 2
    for c in children:
        # The stage cache is shared, but store B never saw store A's runs: B logs the model itself.
        assert "textclf.cached_from" not in c.data.tags
        assert not c.data.tags["textclf.model_uri"].startswith("runs:/")  # logged here, not a pointer to store A


def test_final_metrics_sit_beside_the_per_epoch_curves_not_on_them():
    """val_accuracy is a per-epoch curve; the restored best epoch's value is final_val_accuracy, one value per step each."""
    from mlflow.tracking import MlflowClient

    from textclf.tracking import runs, store

    store.setup(None)
    client = MlflowClient()
    run = client.create_run(store.experiment_id("t"))
    history = [
        {"epoch": 1, "val_accuracy": 0.6, "val_loss": 0.7},
        {"epoch": 2, "val_accuracy": 0.9, "val_loss": 0.5},
        {"epoch": 3, "val_accuracy": 0.7, "val_loss": 0.6},
    ]
    metrics = runs.history_metrics(history, {1: 1000, 2: 2000}) + runs.final_metrics(
        {"val_accuracy": 0.9, "test_accuracy": 0.8}, history
    )
    runs.log_batch(client, run.info.run_id, metrics=metrics)
    got = client.get_run(run.info.run_id).data.metrics
    assert got["final_val_accuracy"] == 0.9 and got["test_accuracy"] == 0.8 and got["val_loss"] == 0.6
    assert "final_test_accuracy" not in got  # only names that collide with a curve are prefixed
    for key, want in (("val_loss", [(1, 0.7), (2, 0.5), (3, 0.6)]), ("val_accuracy", [(1, 0.6), (2, 0.9), (3, 0.7)])):
        points = client.get_metric_history(run.info.run_id, key)
        assert sorted((m.step, m.value) for m in points) == want  # the curve is intact, one value per step
    assert sorted(m.timestamp for m in client.get_metric_history(run.info.run_id, "val_loss"))[:2] == [
        1000,
        2000,
    ]  # when the epochs ended
