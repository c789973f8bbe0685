"""A comparison a reviewer would accept, end to end through `textclf run`: slices, disagreements,
parameter-matched variants, the parent run's description, and bad input refused before training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from textclf.cli.main import main

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

FILLER = ["the", "film", "was", "a", "plot", "and", "it", "story", "cast", "really"]


def write_corpus(path: Path, n: int = 160) -> Path:
    """Two classes (a sentiment word decides) and a `domain` column to slice by."""
    import random

    rng = random.Random(0)
    rows = ["text,label,domain"]
    for i in range(n):
        pos = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great"] if pos else ["bad", "awful"]))
        rows.append(f"{' '.join(words)},{'pos' if pos else 'neg'},{'film' if i % 3 else 'book'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_pipeline(path: Path, data: Path, **extra) -> Path:
    spec = {
        "name": "cmp",
        "description": "a tiny comparison for the tests",
        "data": {"source": str(data), "slice_columns": ["domain"]},
        "params": {
            "train": {"epochs": 2, "batch_size": 16, "num_threads": 1},
            "encoder": {"hidden_size": 8},
            "embedding": {"dim": 8},
            "tokenizer": {"min_frequency": 1},
            "evaluate": {"latency_samples": 2},
        },
        "seeds": [1, 2],
        "baseline": "lstm",
        "variants": {
            "lstm": {"encoder": {"cell": "lstm"}},
            "bilstm-matched": {"encoder": {"cell": "lstm", "bidirectional": True, "match_params": "lstm"}},
        },
        **extra,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def project(tmp_path):
    return tmp_path, write_pipeline(tmp_path / "cmp.yaml", write_corpus(tmp_path / "d.csv"))


def run(*args: str) -> int:
    import mlflow

    code = main(list(args))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return code


def test_summary_says_where_each_variant_differs(project, cli):
    from mlflow.tracking import MlflowClient

    tmp, pipe = project
    assert run("run", str(pipe), "-q", "--summary-out", "s.json") == 0
    s = json.loads(Path("s.json").read_text())
    v = s["variants"]["bilstm-matched"]
    # parameter-matched: the bidirectional encoder got a smaller hidden size
    assert s["variants"]["lstm"]["params"] > 0 and v["params"] > 0
    shown = cli("config", "show", str(pipe))
    assert shown.code == 0, shown.output
    cfg = yaml.safe_load(shown.stdout)
    assert cfg["variants"]["bilstm-matched"]["encoder"]["hidden_size"] < 8
    # calibrated deltas with Holm-adjusted p-values
    assert 0 <= v["delta_accuracy"]["p_value"] <= v["delta_accuracy"]["p_adjusted"] <= 1
    assert "p_adjusted" in v["delta_macro_f1"]
    # slices by length and by the user's column, with the baseline beside
    lengths = v["slices"]["length"]
    assert sum(r["n"] for r in lengths) == s["n_test"] and all(r["baseline_accuracy"] is not None for r in lengths)
    assert {r["value"] for r in v["slices"]["domain"]} == {"film", "book"}
    # texts it gets right and the baseline wrong (wins), and the reverse, by majority vote over seeds
    d = v["disagreements"]
    assert d["wins"] + d["losses"] <= s["n_test"]
    for kind, right, wrong in (("wins", "variant", "baseline"), ("losses", "baseline", "variant")):
        examples = d["examples"][kind]
        assert len(examples) == min(d[kind], 10)
        assert all(e[right] == e["label"] != e[wrong] and e["text"] for e in examples), examples
    assert s["best_variant"] in s["variants"] and "validation" in s["best_variant_by"]
    # the parent run tells the story on its page; the report has the slices and the length plot
    client = MlflowClient()
    parent = client.get_run(s["parent_run_id"])
    note = parent.data.tags["mlflow.note.content"]
    assert "a tiny comparison for the tests" in note and "bilstm-matched" in note and "Best variant" in note
    report = Path(client.download_artifacts(s["parent_run_id"], "comparison/report.md")).read_text()
    assert "Where each variant differs" in report and "| domain |" in report
    files = {f.path for f in client.list_artifacts(s["parent_run_id"], "comparison")}
    assert "comparison/accuracy_by_length.png" in files


@pytest.mark.parametrize(
    "case,change,message",
    [
        ("missing slice column", {"data": {"slice_columns": ["genre"]}}, "data.slice_columns names ['genre']"),
        (
            "unknown match target",
            {"variants": {"lstm": {}, "x": {"encoder": {"match_params": "nope"}}}},
            "encoder.match_params='nope' is not a variant",
        ),
        (
            "match a TF-IDF variant",
            {"variants": {"lstm": {}, "tfidf": {"kind": "tfidf"}, "x": {"encoder": {"match_params": "tfidf"}}}},
            "is a TF-IDF baseline",
        ),
    ],
)
def test_bad_comparison_settings_stop_before_training(tmp_path, case, change, message, cli):
    data = write_corpus(tmp_path / "d.csv")
    pipe = write_pipeline(tmp_path / "p.yaml", data)
    spec = yaml.safe_load(pipe.read_text())
    for key, value in change.items():
        spec[key] = {**spec[key], **value} if key == "data" else value
    pipe.write_text(yaml.safe_dump(spec))
    r = cli("run", str(pipe), "-q")  # in-process, in tmp_path (conftest's isolated fixture)
    assert r.code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / ".textclf" / "train").exists()  # nothing trained
    import sqlite3

    db = tmp_path / "mlruns" / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from runs where status = 'RUNNING'").fetchone()[0] == 0
