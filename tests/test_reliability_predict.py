"""Predictions never destroy or garble data, and a model is easy to name.

- ``predict --output`` onto its own ``--input`` is refused unless ``--force``;
  outputs are written atomically.
- One rule for input columns that collide with the columns predict / embed
  write, the same for CSV, JSONL and Parquet.
- The model of a FAILED or deleted run is refused unless ``--allow-failed``; a
  RUNNING one loads with a warning; a LoggedModel left PENDING by a killed
  process becomes FAILED.
- The served pyfunc refuses non-string texts with a 400 and never sends a
  traceback.
- ``PARENT_RUN_ID:VARIANT``, ``PARENT_RUN_ID:best`` and ``best`` name the
  champion seed's model of a ``textclf run``.

One tiny pipeline (two variants x two seeds, one epoch) is run once for the
module; the tests that need no trained model use conftest's empty store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import write_corpus  # noqa: E402
from test_reuse import _isolate  # noqa: E402

pytestmark = pytest.mark.slow

PARAMS = {
    "train": {"epochs": 1, "batch_size": 16, "num_threads": 1},
    "encoder": {"hidden_size": 8, "cell": "lstm"},
    "embedding": {"dim": 8},
    "tokenizer": {"min_frequency": 1},
    "evaluate": {"latency_samples": 2},
}


def cli(*args: str) -> int:
    """The real ``textclf`` entry point, in this process."""
    import mlflow

    from textclf.cli.main import main

    uri = os.environ["MLFLOW_TRACKING_URI"]
    code = main(list(args))
    mlflow.set_tracking_uri(uri)
    return code


@dataclass
class World:
    root: Path
    uri: str
    summary: dict
    folder: Path  # a trained model folder (no MLflow needed to load it)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root)
        data = write_corpus(root / "reviews.csv")
        spec = {
            "name": "tiny",
            "data": {"source": str(data)},
            "params": PARAMS,
            "seeds": [1, 2],
            "variants": {"lstm": {}, "gru": {"encoder": {"cell": "gru"}}},
        }
        (root / "tiny.yaml").write_text(yaml.safe_dump(spec))
        assert cli("run", str(root / "tiny.yaml"), "-q", "--summary-out", "s.json") == 0
        summary = json.loads((root / "s.json").read_text())
        folder = next((root / ".textclf" / "train").glob("*/model"))
        yield World(root, os.environ["MLFLOW_TRACKING_URI"], summary, folder)


@pytest.fixture
def store(world, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.uri)
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(world.root / ".textclf"))
    mlflow.set_tracking_uri(world.uri)
    return world


# --------------------------------------------------------------------------- the input is never lost


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_predict_onto_its_own_input_is_refused_unless_forced(store, tmp_path, capsys, ext):
    from textclf.cli.reuse import write_table

    src = tmp_path / f"reviews{ext}"
    write_table(pd.DataFrame({"id": [7, 8], "text": ["a great cast", "dull plot"], "label": ["pos", "neg"]}), src)
    before = src.read_bytes()
    link = tmp_path / f"alias{ext}"
    link.symlink_to(src)  # the same file under another name is the same file
    for out in (src, link):
        assert cli("predict", "-m", str(store.folder), "-i", str(src), "-o", str(out)) == 2
        err = capsys.readouterr().err
        assert "is the --input file" in err and "--force" in err and str(out) in err
        assert src.read_bytes() == before
    assert cli("predict", "-q", "-m", str(store.folder), "-i", str(src), "-o", str(src), "--force") == 0
    from textclf.cli.reuse import read_texts

    table, _ = read_texts(src)
    assert list(table.columns)[:3] == ["id", "text", "input_label"] and table["input_label"].tolist() == ["pos", "neg"]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_failed_write_leaves_the_old_output_and_no_temporary(store, tmp_path, monkeypatch):
    from textclf.cli import reuse

    (tmp_path / "in.txt").write_text("a great cast\ndull plot\n")
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")

    def half_then_fail(df, fh):
        fh.write('{"text": "a gre')
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(reuse, "_write_jsonl", half_then_fail)
    with pytest.raises(OSError):
        reuse.predict(model=str(store.folder), input=tmp_path / "in.txt", output=out, quiet=True)
    assert out.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


# --------------------------------------------------------------------------- colliding columns: one rule


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_colliding_columns_one_rule_for_every_format(store, tmp_path, capsys, ext):
    from textclf.cli.reuse import read_texts, write_table

    # An input holding a column named like an output column keeps it as input_<name>, in every format.
    once = tmp_path / f"once{ext}"
    write_table(
        pd.DataFrame({"text": ["a great cast", "dull plot"], "label": ["pos", "neg"], "proba_pos": ["x", "y"]}), once
    )
    assert cli("predict", "-q", "-m", str(store.folder), "-i", str(once), "-o", str(tmp_path / f"p1{ext}")) == 0
    got, _ = read_texts(tmp_path / f"p1{ext}")
    assert list(got.columns) == ["text", "input_label", "input_proba_pos", "label", "proba_neg", "proba_pos"]
    assert got["input_label"].tolist() == ["pos", "neg"] and got["input_proba_pos"].tolist() == ["x", "y"]

    # Predicting on that output again would need input_label twice: refused, naming the columns, nothing written.
    assert (
        cli("predict", "-m", str(store.folder), "-i", str(tmp_path / f"p1{ext}"), "-o", str(tmp_path / f"p2{ext}")) == 2
    )
    err = capsys.readouterr().err
    assert "'input_label'" in err and "'label'" in err and "Drop or rename" in err and f"p1{ext}" in err
    assert not (tmp_path / f"p2{ext}").exists()


def test_embed_parquet_follows_the_same_rule(store, tmp_path, capsys):
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pd.DataFrame({"text": ["a great cast", "dull plot"], "embedding": ["e1", "e2"]}).to_parquet(src, index=False)
    assert cli("embed", "-q", "-m", str(store.folder), "-i", str(src), "-o", str(tmp_path / "e1.parquet")) == 0
    t = pq.read_table(tmp_path / "e1.parquet")
    assert t.column_names == ["text", "input_embedding", "embedding"]
    assert (
        cli("embed", "-m", str(store.folder), "-i", str(tmp_path / "e1.parquet"), "-o", str(tmp_path / "e2.parquet"))
        == 2
    )
    assert "'input_embedding'" in capsys.readouterr().err and not (tmp_path / "e2.parquet").exists()
    assert cli("embed", "-m", str(store.folder), "-i", str(src), "-o", str(src)) == 2  # its own input
    assert "--force" in capsys.readouterr().err


# --------------------------------------------------------------------------- run states


def _first_child(world, variant: str = "lstm") -> str:
    return world.summary["variants"][variant]["run_ids"][0]


def test_models_of_failed_deleted_and_running_runs(store, capsys, caplog):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    rid = _first_child(store)
    ref = f"runs:/{rid}"
    try:
        client.set_terminated(rid, "FAILED")
        assert cli("predict", "-m", ref, "a great cast") == 2
        err = capsys.readouterr().err
        assert rid in err and "FAILED" in err and "--allow-failed" in err
        assert cli("predict", "-m", ref, "--allow-failed", "a great cast") == 0
        capsys.readouterr()
        assert cli("export", "-m", ref, "-o", "exported") == 2 and not Path("exported").exists()
        assert "--allow-failed" in capsys.readouterr().err

        client.set_terminated(rid, "FINISHED")
        client.delete_run(rid)
        assert cli("predict", "-m", ref, "a great cast") == 2
        err = capsys.readouterr().err
        assert rid in err and "deleted" in err and "--allow-failed" in err
        client.restore_run(rid)

        client.update_run(rid, status="RUNNING")
        caplog.clear()
        assert cli("predict", "-m", ref, "a great cast") == 0
        assert any(
            rid in r.getMessage() and "RUNNING" in r.getMessage() for r in caplog.records if r.levelname == "WARNING"
        )
    finally:
        if client.get_run(rid).info.lifecycle_stage == "deleted":
            client.restore_run(rid)
        client.set_terminated(rid, "FINISHED")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_pending_logged_models_of_killed_processes_become_failed(capsys):
    from mlflow.tracking import MlflowClient

    from textclf.tracking import runs, store

    store.setup(None)  # conftest's empty store
    client = MlflowClient()
    exp = client.create_experiment("pending")
    host = socket.gethostname()
    dead = client.create_run(exp, tags={"textclf.host": host, "textclf.pid": str(_dead_pid())})
    alive = client.create_run(exp, tags={"textclf.host": host, "textclf.pid": str(os.getpid())})
    ended = client.create_run(exp)
    client.set_terminated(ended.info.run_id, "KILLED")
    m_dead = client.create_logged_model(exp, source_run_id=dead.info.run_id)
    m_alive = client.create_logged_model(exp, source_run_id=alive.info.run_id)
    m_ended = client.create_logged_model(exp, source_run_id=ended.info.run_id)
    m_ready = client.create_logged_model(exp, source_run_id=ended.info.run_id)
    client.finalize_logged_model(m_ready.model_id, "READY")

    runs.mark_stale_runs(exp)
    status = {m: str(client.get_logged_model(m.model_id).status) for m in (m_dead, m_alive, m_ended, m_ready)}
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert status == {m_dead: "FAILED", m_alive: "PENDING", m_ended: "FAILED", m_ready: "READY"}

    # and a FAILED logged model is not loaded without --allow-failed
    assert cli("predict", "-m", f"models:/{m_dead.model_id}", "x") == 2
    err = capsys.readouterr().err
    assert m_dead.model_id in err and "FAILED" in err and "--allow-failed" in err


# --------------------------------------------------------------------------- serving


def test_served_model_refuses_non_string_texts_and_sends_no_traceback(store, monkeypatch):
    """The scoring server's own input conversion and error handling, in process, on a freshly logged model."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from textclf.tracking.models import log_model

    mlflow.set_experiment("serving")
    with mlflow.start_run():
        info = log_model(store.folder, ["a great cast"])
    model = mlflow.pyfunc.load_model(info.model_uri)
    schema = model.metadata.get_input_schema()

    def call(payload):
        try:
            r = scoring_server.invocations(json.dumps(payload), "application/json", model, schema)
            return r.status, r.response
        except MlflowException as exc:
            return exc.get_http_status_code(), exc.serialize_as_json()

    status, body = call({"dataframe_records": [{"text": "a great cast"}, {"text": ""}]})
    assert status == 200 and len(json.loads(body)["predictions"]) == 2
    for bad, kind in ((5, "int"), (True, "bool"), ({"a": 1}, "dict"), (None, "null"), (2.5, "float")):
        # (the "inputs" / "instances" forms are cast to the signature's string type by MLflow before the model runs)
        for payload in (
            {"dataframe_records": [{"text": "fine"}, {"text": bad}]},
            {"dataframe_split": {"columns": ["text"], "data": [["fine"], [bad]]}},
        ):
            status, body = call(payload)
            assert status == 400, (payload, body)
            message = json.loads(body)["message"]
            assert f"row 1 is {kind}" in message, message
            assert "stack_trace" not in json.loads(body) and "Traceback" not in body

    # A failure inside the model: a short 500, the details in the server's log only.
    clf = model.unwrap_python_model().clf
    monkeypatch.setattr(
        clf, "predict_table", lambda texts: (_ for _ in ()).throw(RuntimeError(f"boom in {store.root}"))
    )
    status, body = call({"inputs": ["a great cast"]})
    assert status == 500 and "stack_trace" not in json.loads(body)
    assert str(store.root) not in body and "Traceback" not in body


# --------------------------------------------------------------------------- PARENT:VARIANT, PARENT:best, best


def test_friendly_references_name_the_champion_seed(store, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    import textclf
    from textclf.core.errors import ModelError
    from textclf.tracking import champion

    client = MlflowClient()
    parent = store.summary["parent_run_id"]
    metric = store.summary["best_variant_metric"]
    # Make the second seed of each variant the better one on validation (the first wins a tie).
    for variant in ("lstm", "gru"):
        client.log_metric(store.summary["variants"][variant]["run_ids"][1], metric, 2.0, step=99)

    for variant in ("lstm", "gru"):
        clf = textclf.load_model(f"{parent}:{variant}")
        want = store.summary["variants"][variant]["run_ids"][1]
        assert clf.ref.details["variant"] == variant
        assert clf.ref.run_id == want
        assert champion.best_seed_run(client, store.summary["variants"][variant]["run_ids"], metric).info.run_id == want
        direct = textclf.load_model(f"runs:/{want}")
        assert np.array_equal(clf.predict_proba(["a great cast"]), direct.predict_proba(["a great cast"]))

    best = store.summary["best_variant"]
    assert textclf.load_model(f"{parent}:best").ref.details["variant"] == best
    assert textclf.load_model("best").ref.details["parent_run_id"] == parent

    # through the verbs
    assert cli("predict", "-q", "-m", f"{parent}:gru", "a great cast") == 0
    assert cli("embed", "-q", "-m", "best", "-i", str(_txt(tmp_path)), "-o", str(tmp_path / "e.npy")) == 0
    assert np.load(tmp_path / "e.npy").shape == (2, 8)
    assert cli("export", "-q", "-m", f"{parent}:lstm", "-o", str(tmp_path / "exported")) == 0
    assert (tmp_path / "exported" / "model.safetensors").is_file()
    capsys.readouterr()

    # unknown variant: the variants listed; a run that is not a parent: runs:/ suggested
    with pytest.raises(ModelError, match=r"no variant 'nope'; its variants are \['gru', 'lstm'\]"):
        textclf.load_model(f"{parent}:nope")
    assert cli("predict", "-m", f"{parent}:nope", "x") == 2
    assert "its variants are" in capsys.readouterr().err
    child = store.summary["variants"]["lstm"]["run_ids"][0]
    with pytest.raises(ModelError, match=f"not the parent run.*runs:/{child}"):
        textclf.load_model(f"{child}:lstm")

    # a local folder that exists always wins
    os.symlink(store.folder, tmp_path / "best")  # conftest runs each test in its tmp_path
    assert textclf.load_model("best").ref.kind == "folder"


def _txt(tmp_path: Path) -> Path:
    p = tmp_path / "in.txt"
    p.write_text("a great cast\ndull plot\n")
    return p


def test_best_in_an_empty_store_says_what_to_do():
    from mlflow.tracking import MlflowClient

    import textclf
    from textclf.core.errors import ModelError
    from textclf.tracking import store

    store.setup(None)
    MlflowClient().create_experiment("empty")  # the store exists, with no `textclf run` in it
    with pytest.raises(ModelError, match="no finished `textclf run`"):
        textclf.load_model("best")


def test_multi_task_references_and_the_selection_metric(monkeypatch):
    """``PARENT:TASK/VARIANT`` and ``PARENT:TASK/best`` against a recorded multi-task summary (no training needed)."""
    from types import SimpleNamespace

    import mlflow.tracking

    from textclf.core.errors import ModelError
    from textclf.tracking import refs

    def run(rid, metrics=None, tags=None, status="FINISHED"):
        return SimpleNamespace(
            info=SimpleNamespace(run_id=rid, status=status, lifecycle_stage="active"),
            data=SimpleNamespace(metrics=metrics or {}, tags=tags or {}),
        )

    parent = "a" * 32
    runs = {
        parent: run(parent, tags={"textclf.role": "parent"}),
        # selected by the task's own metric, val_macro_f1: test accuracy and val_accuracy decide nothing
        "c1": run("c1", {"val_macro_f1": 0.6, "val_accuracy": 0.9, "test_accuracy": 0.99}),
        "c2": run("c2", {"val_macro_f1": 0.7, "val_accuracy": 0.1, "test_accuracy": 0.10}),
        "c3": run("c3", {"val_macro_f1": 0.5}),
    }
    summary = {
        "tasks": {
            "depth": {
                "best_variant": "deep",
                "best_variant_metric": "val_macro_f1",
                "variants": {"flat": {"run_ids": ["c3"]}, "deep": {"run_ids": ["c1", "c2"]}},
            },
            "ends": {"best_variant": None, "variants": {"lstm": {"run_ids": ["c3"]}}},
        }
    }
    monkeypatch.setattr(refs, "_setup", lambda uri, ref: "sqlite:///fake.db")
    monkeypatch.setattr(mlflow.tracking, "MlflowClient", lambda: SimpleNamespace(get_run=lambda rid: runs[rid]))
    monkeypatch.setattr(refs, "_summary", lambda client, ref, p: summary)
    monkeypatch.setattr(
        refs,
        "_resolve_mlflow",
        lambda ref, *a, **k: refs.ResolvedModel(ref=ref, path=Path("."), kind="run", run_id=ref[len("runs:/") :]),
    )

    for ref, want, variant in (
        (f"{parent}:depth/deep", "c2", "deep"),
        (f"{parent}:depth/best", "c2", "deep"),
        (f"{parent}:depth/flat", "c3", "flat"),
    ):
        got = refs.resolve(ref)
        assert (got.run_id, got.details["variant"], got.details["task"], got.ref) == (want, variant, "depth", ref)
    with pytest.raises(ModelError, match=r"multi-task.*TASK/VARIANT.*\['depth', 'ends'\]"):
        refs.resolve(f"{parent}:deep")
    with pytest.raises(ModelError, match=r"no variant 'x'; its variants are \['flat', 'deep'\]"):
        refs.resolve(f"{parent}:depth/x")
    with pytest.raises(ModelError, match="no variant .* validation score"):
        refs.resolve(f"{parent}:ends/best")
    runs[parent].data.tags = {"textclf.role": "train"}
    with pytest.raises(ModelError, match=f"not the parent run.*runs:/{parent}"):
        refs.resolve(f"{parent}:depth/deep")
