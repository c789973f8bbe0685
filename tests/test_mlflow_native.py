"""What MLflow holds after textclf runs: where files go, live per-epoch metrics, model links, portable models, tidy records.

One tiny pipeline (an LSTM and the TF-IDF baseline, one seed, 3 epochs) runs
once for the module from a working directory *other* than the store's
folder, then again fully cached with ``--register``; the tests read that
store.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import write_corpus  # noqa: E402
from test_reuse import _isolate, cli  # noqa: E402

pytestmark = pytest.mark.slow

TEXTS = ["the film was great", "the plot was awful", "zzz unseen"]
EPOCHS = 3
DESCRIPTION = "LSTM against **TF-IDF** on the tiny corpus."


@dataclass
class World:
    root: Path
    uri: str
    cwd: Path  # where the runs were started
    first: dict  # summary of the first run
    second: dict  # summary of the fully cached re-run (with --register)
    seen_live: dict  # epoch -> val_accuracy values the store held when that epoch's callback returned
    registry_warnings: list


def _children(client, parent_id: str) -> dict:
    parent = client.get_run(parent_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return {r.data.tags["variant"]: r for r in runs}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    from textclf.tracking import runs

    root = tmp_path_factory.mktemp("native")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root)
        data = write_corpus(root / "reviews.csv")
        spec = {
            "name": "native",
            "description": DESCRIPTION,
            "data": {"source": str(data)},
            "seeds": [1],
            "baseline": "tfidf",
            "params": {
                "train": {"epochs": EPOCHS, "batch_size": 16, "num_threads": 1, "patience": 0},
                "encoder": {"hidden_size": 8},
                "embedding": {"dim": 8},
                "tokenizer": {"min_frequency": 1},
                "evaluate": {"latency_samples": 2},
            },
            "variants": {"lstm": {}, "tfidf": {"kind": "tfidf"}},
        }
        (root / "native.yaml").write_text(yaml.safe_dump(spec))
        uri = f"sqlite:///{root}/store/mlflow.db"
        cwd = root / "elsewhere"
        cwd.mkdir()
        mp.chdir(cwd)
        mp.setenv("MLFLOW_TRACKING_URI", uri)

        seen: dict = {}
        original = runs.LiveMetrics.__call__

        def spy(self, epoch, metrics):  # what the store holds the moment an epoch's callback returns
            original(self, epoch, metrics)
            seen[epoch] = [m.value for m in MlflowClient().get_metric_history(self.run_id, "val_accuracy")]

        mp.setattr(runs.LiveMetrics, "__call__", spy)
        assert (
            cli(
                "run", str(root / "native.yaml"), "-q", "--jobs", "1", "--tracking-uri", uri, "--summary-out", "s1.json"
            )
            == 0
        )
        handler = _Collect()
        logging.getLogger("mlflow").addHandler(handler)
        try:
            assert (
                cli(
                    "run",
                    str(root / "native.yaml"),
                    "-q",
                    "--jobs",
                    "1",
                    "--tracking-uri",
                    uri,
                    "--register",
                    "native",
                    "--summary-out",
                    "s2.json",
                )
                == 0
            )
        finally:
            logging.getLogger("mlflow").removeHandler(handler)
        first, second = (json.loads((cwd / f"s{i}.json").read_text()) for i in (1, 2))
        yield World(root, uri, cwd, first, second, seen, handler.messages)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def store(world, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.uri)
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(world.root / ".textclf"))
    mlflow.set_tracking_uri(world.uri)
    from mlflow.tracking import MlflowClient

    return world, MlflowClient()


# --------------------------------------------------------------------------- where files go


def test_artifacts_live_beside_the_store_not_in_the_working_directory(store):
    w, client = store
    assert not (w.cwd / "mlruns").exists()
    exp = client.get_experiment(w.first["experiment_id"])
    assert exp.artifact_location == (w.root / "store" / "artifacts" / "native").as_uri()
    run = client.get_run(w.first["parent_run_id"])
    assert run.info.artifact_uri.startswith(exp.artifact_location)
    assert (
        w.root
        / "store"
        / "artifacts"
        / "native"
        / w.first["parent_run_id"]
        / "artifacts"
        / "comparison"
        / "summary.json"
    ).is_file()


def test_models_from_mlflow_are_materialised_under_the_cache_dir(store, tmp_path):
    import textclf

    w, _ = store
    ref = f"runs:/{w.first['variants']['lstm']['run_ids'][0]}"
    default = w.root / ".textclf" / "models"
    assert (
        cli(
            "predict",
            "-q",
            "--model",
            ref,
            "--cache-dir",
            str(tmp_path / "c1"),
            "--output",
            str(tmp_path / "p.csv"),
            *TEXTS[:1],
        )
        == 0
    )
    assert len(list((tmp_path / "c1" / "models").iterdir())) == 1
    clf = textclf.load_model(ref, cache_dir=tmp_path / "c2")
    assert clf.path.is_relative_to(tmp_path / "c2" / "models")
    assert (
        cli("export", "-q", "--model", ref, "--cache-dir", str(tmp_path / "c3"), "--output", str(tmp_path / "exported"))
        == 0
    )
    assert (tmp_path / "c3" / "models").is_dir()
    assert not default.exists()  # nothing landed in the default cache


# --------------------------------------------------------------------------- live metrics


def test_per_epoch_metrics_are_logged_as_each_epoch_ends_once_per_step(store):
    w, client = store
    # the store held epoch N's value when epoch N ended (the curve grows while the variant trains)
    assert sorted(w.seen_live) == list(range(1, EPOCHS + 1))
    assert all(len(w.seen_live[e]) == e for e in w.seen_live)
    run = client.get_run(w.first["variants"]["lstm"]["run_ids"][0])
    for key in ("val_accuracy", "train_loss", "val_loss"):
        points = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in points] == list(range(1, EPOCHS + 1)), key  # one value per step
        assert [m.timestamp for m in points] == sorted(m.timestamp for m in points)
    assert "final_val_accuracy" in run.data.metrics  # the restored best epoch's, beside the curve, not on it
    final_ts = client.get_metric_history(run.info.run_id, "test_accuracy")[0].timestamp
    assert points[-1].timestamp <= final_ts
    # the final metrics are linked to the LoggedModel, so the Models tab compares models
    model_id = run.data.tags["textclf.model_uri"].removeprefix("models:/")
    assert "test_accuracy" in {m.key for m in client.get_logged_model(model_id).metrics}


def test_a_cached_child_replays_the_history_with_the_original_times(store):
    w, client = store
    source = client.get_run(w.first["variants"]["lstm"]["run_ids"][0])
    cached = client.get_run(w.second["variants"]["lstm"]["run_ids"][0])
    assert cached.data.tags["textclf.cached"] == "true"
    assert cached.info.start_time > source.info.end_time
    for key in ("val_accuracy", "train_loss"):

        def curve(run):
            return sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run.info.run_id, key))  # noqa: B023

        a, b = curve(cached), curve(source)
        assert [x[:2] for x in a] == [x[:2] for x in b], key
        # when each epoch ended (the train stage's clock; the live log took its own a few ms later), not replay time
        assert all(abs(x[2] - y[2]) < 1000 for x, y in zip(a, b)), (a, b)


# --------------------------------------------------------------------------- model links


def test_a_cached_child_links_the_source_logged_model_and_registers_cleanly(store):
    import textclf

    w, client = store
    source = client.get_run(w.first["variants"]["lstm"]["run_ids"][0])
    cached = client.get_run(w.second["variants"]["lstm"]["run_ids"][0])
    model_uri = source.data.tags["textclf.model_uri"]
    assert model_uri.startswith("models:/m-")
    assert (
        cached.data.tags["textclf.model_uri"] == model_uri
        and cached.data.tags["textclf.cached_from"] == source.info.run_id
    )
    assert [o.model_id for o in cached.outputs.model_outputs] == [model_uri.removeprefix("models:/")]
    assert not [m for m in w.registry_warnings if "has no artifacts" in m], w.registry_warnings
    reg = w.second["registered"]
    assert reg["model_uri"].startswith("models:/m-")
    clf = textclf.load_model("models:/native@champion")
    want = textclf.load_model(reg["model_uri"]).predict_proba(TEXTS)
    assert np.array_equal(clf.predict_proba(TEXTS), want)


# --------------------------------------------------------------------------- portable models


def test_the_logged_model_pins_its_requirements_and_not_textclf(store):
    from importlib import metadata

    import mlflow

    w, client = store
    uri = client.get_run(w.first["variants"]["lstm"]["run_ids"][0]).data.tags["textclf.model_uri"]
    lines = [x.strip() for x in Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().splitlines() if x.strip()]
    pins = dict(line.split("==") for line in lines)
    assert len(pins) == len(lines)  # every line is name==version
    assert "textclf" not in pins
    assert {"torch", "tokenizers", "safetensors", "numpy", "pandas", "scikit-learn", "mlflow"} <= set(pins)
    for name, version in pins.items():
        assert metadata.version(name).split("+")[0] == version, name


# Runs in a fresh interpreter that cannot import the installed textclf: -I drops
# PYTHONPATH and the script's folder, and the editable install's finder and any
# sys.path entry holding a textclf/ folder are removed before anything loads.
_HIDDEN = r"""
import importlib.util, json, sys
from pathlib import Path
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "textclf").exists()]
sys.path_importer_cache.clear()
assert importlib.util.find_spec("textclf") is None, "textclf is still importable"
import mlflow, pandas
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pandas.DataFrame({"text": [%r, %r, %r]}))
print(json.dumps({"textclf": sys.modules["textclf"].__file__, "rows": out.to_dict(orient="records")}))
""" % tuple(TEXTS)  # noqa: UP031 (braces in the script)


@pytest.mark.parametrize("variant", ["lstm", "tfidf"])
def test_the_logged_model_loads_where_textclf_is_not_installed(store, tmp_path, variant):
    import textclf

    w, client = store
    uri = client.get_run(w.first["variants"][variant]["run_ids"][0]).data.tags["textclf.model_uri"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TEXTCLF_CACHE_DIR")}
    res = subprocess.run(
        [sys.executable, "-I", "-c", _HIDDEN, uri], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    # the copy the model carries is what ran, not an installed textclf
    assert "/artifacts/code/textclf/" in got["textclf"] or "/code/textclf/" in got["textclf"], got["textclf"]
    clf = textclf.load_model(uri)
    want = clf.predict_proba(TEXTS)
    proba = np.array([[r[f"proba_{c}"] for c in clf.labels] for r in got["rows"]], dtype=np.float32)
    assert np.array_equal(proba, want.astype(np.float32))


# --------------------------------------------------------------------------- tidy records


def test_records_are_tidy_tags_params_description_table(store):
    w, client = store
    parent = client.get_run(w.first["parent_run_id"])
    note = parent.data.tags["mlflow.note.content"]
    # The description leads; the comparison table (one row per variant) follows it.
    assert note.startswith(f"**native**: {DESCRIPTION}")
    assert "| lstm" in note and "| tfidf" in note
    assert parent.data.tags["textclf.pipeline"] == "native"
    children = _children(client, w.first["parent_run_id"])
    bare = {"variant", "seed", "cell", "layers", "bidirectional"}
    for run in (parent, *children.values()):
        for tag in run.data.tags:
            assert tag.startswith(("textclf.", "mlflow.")) or tag in bare, tag
        assert "textclf.version" in run.data.tags
        assert not any(v == "None" for v in run.data.params.values())
    neural, tfidf = children["lstm"].data.params, children["tfidf"].data.params
    assert not [k for k in neural if k.startswith("tfidf.")]
    assert not [k for k in tfidf if k.startswith(("encoder.", "train.", "tokenizer.", "embedding."))]
    assert "tfidf.C" in tfidf and "encoder.cell" in neural
    assert neural["encoder.init_from"] == "null" and neural["encoder.bidirectional"] == "false"
    table = json.loads(
        (
            w.root
            / "store"
            / "artifacts"
            / "native"
            / parent.info.run_id
            / "artifacts"
            / "comparison"
            / "variants.json"
        ).read_text()
    )
    assert table["columns"][0] == "variant" and sorted(row[0] for row in table["data"]) == ["lstm", "tfidf"]


# --------------------------------------------------------------------------- system metrics


def _train_args(data: Path, *extra: str) -> list[str]:
    return [
        "train",
        "-q",
        "--set",
        f"data.source={data}",
        "--set",
        "train.epochs=2",
        "--set",
        "encoder.hidden_size=8",
        "--set",
        "embedding.dim=8",
        "--set",
        "tokenizer.min_frequency=1",
        "--set",
        "train.num_threads=1",
        "--set",
        "evaluate.latency_samples=2",
        "--metrics-out",
        "m.json",
        *extra,
    ]


def _all_runs():
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_system_metrics_are_logged_during_train(tmp_path, monkeypatch):
    pytest.importorskip("psutil")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    data = write_corpus(tmp_path / "reviews.csv", n=80)
    assert cli(*_train_args(data, "--system-metrics")) == 0
    run = MlflowClient().get_run(json.loads(Path("m.json").read_text())["run_id"])
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)


def test_system_metrics_without_psutil_stop_before_any_run(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psutil" else real(name, *a))
    data = write_corpus(tmp_path / "reviews.csv", n=80)
    (tmp_path / "p.yaml").write_text(
        yaml.safe_dump({"name": "p", "data": {"source": str(data)}, "variants": {"t": {"kind": "tfidf"}}})
    )
    for args in (_train_args(data, "--system-metrics"), ["run", "p.yaml", "-q", "--system-metrics"]):
        assert cli(*args) == 2
        err = capsys.readouterr().err
        assert "textclf[system]" in err and "psutil" in err and "Traceback" not in err
    assert (
        not (tmp_path / "mlruns" / "mlflow.db").exists() or _all_runs() == []
    )  # no run was started, let alone left RUNNING


def test_a_crash_in_run_setup_ends_the_run_failed(tmp_path, monkeypatch):
    """A setup step after the parent run exists (here the system-metrics monitor) raises: the run ends FAILED, never RUNNING."""
    pytest.importorskip("psutil")
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    def boom(self):
        raise RuntimeError("monitor could not start")

    monkeypatch.setattr(SystemMetricsMonitor, "start", boom)
    data = write_corpus(tmp_path / "reviews.csv", n=80)
    (tmp_path / "p.yaml").write_text(
        yaml.safe_dump({"name": "p", "data": {"source": str(data)}, "variants": {"t": {"kind": "tfidf"}}})
    )
    with pytest.raises(RuntimeError, match="monitor could not start"):
        cli("run", "p.yaml", "-q", "--system-metrics")
    statuses = [r.info.status for r in _all_runs()]
    assert statuses and set(statuses) == {"FAILED"}, statuses


def test_the_system_extra_brings_psutil_and_dev_includes_it():
    import tomllib

    from textclf.tracking.runs import SYSTEM_EXTRA

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = {k: {req.split(">")[0].split("=")[0].split("[")[0].strip() for req in v} for k, v in extras.items()}
    assert "psutil" in names["system"] and names["system"] <= names["dev"]
    assert "textclf[system]" in SYSTEM_EXTRA  # the message names the extra that exists
    assert "torch>=2.4,<2.14" in project["dependencies"]
