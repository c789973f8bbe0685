"""Nothing fails after the training is spent: names, registry names, test sets and grid sizes are settled first.

A user's names (variants, tasks, labels) reach MLflow as metric keys, run
names and artifact folders; a name MLflow refuses used to fail only once every
variant had trained. Each class here is either made safe (names map to legal
keys, recorded in the run) or refused before anything trains (a registry name
that cannot be found again, variants tested on different data, a grid of
millions of variants), with a message naming the value and the fix, exit 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import make_rows, write_csv

from textclf.cli.main import main
from textclf.core import names
from textclf.core.errors import ConfigError

# Names a user can choose, beyond the examples of the report: grid values, paths, punctuation, emoji, control
# characters, markup and TeX, long, and near-collisions.
NASTY = [
    "lr=0.001",
    "lr=1e-05",
    "dropout=0.5",
    "x/1",
    "../up",
    "a//b",
    "./a",
    "..",
    ".",
    "",
    " ",
    "a b",
    "a:b",
    "a?b#c%d",
    "Sci/Tech",
    "😀",
    "naïve",
    "nul\x00x",
    "tab\tnew\nline",
    "[/]bold[",
    "$\\frac{x$",
    "x" * 300,
    "é" * 300,
    "a_b",
    "a/b",
    "a?b",
    "a_b-" + "0" * 8,
    "-lead",
    "trail.",
    "C:\\\\dir",
]


def _mlflow_accepts_key(key: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, _validate_metric_name

    try:
        _validate_metric_name(key)
    except MlflowException:
        return False
    return len(key) <= MAX_ENTITY_KEY_LENGTH


def tiny_params(**train):
    return {
        "train": {"epochs": 1, "batch_size": 16, "num_threads": 1, **train},
        "encoder": {"hidden_size": 8},
        "embedding": {"dim": 8},
        "tokenizer": {"min_frequency": 1},
        "evaluate": {"latency_samples": 2},
    }


def write_pipeline(path: Path, **spec) -> Path:
    path.write_text(
        yaml.safe_dump({"name": "names", "params": tiny_params(), "seeds": [1], **spec}, allow_unicode=True)
    )
    return path


def cli(*args: str) -> int:
    import mlflow

    code = main(list(args))
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return code


@pytest.fixture
def no_training(monkeypatch):
    """Any training (or the executor that starts them) is a test failure: refusals must come first."""

    def trained(*args, **kwargs):
        raise AssertionError("a variant started training before the refusal")

    monkeypatch.setattr("textclf.pipeline.experiment.execute", trained)
    monkeypatch.setattr("textclf.pipeline.experiment.compute_upstream", trained)


def said(capsys) -> str:
    """What the command printed (stdout and stderr), with rich's line wrapping undone."""
    out = capsys.readouterr()
    return " ".join((out.out + out.err).split())


def store_runs() -> list:
    """Every run of the test's MLflow store (none when it was never opened)."""
    db = Path("mlruns/mlflow.db")
    if not db.exists():
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


# --------------------------------------------------------------------------- the mapping


def test_every_name_maps_to_a_distinct_key_mlflow_accepts():
    keys = names.safe_keys(NASTY)
    assert len(set(keys.values())) == len(NASTY)  # distinct names stay distinct
    for name, key in keys.items():
        assert len(key) <= names.PART_MAX
        # as a task and a variant around the longest parent metric, and as a per-class metric of a label
        for composed in (names.metric_key(key, key, "test_macro_f1_mean"), f"test_precision__{key}"):
            assert _mlflow_accepts_key(composed), (name, composed)
        assert "/" not in key and not key.startswith(".")  # a folder under comparison/, never above it
    # readable where it can be, and the same every time
    assert keys["lr=0.001"] == "lr_0.001" and keys["Sci/Tech"] == "Sci_Tech" and keys["a b"] == "a b"
    assert keys["a_b"] == "a_b"  # a legal name keeps itself; the names that meet it differ from it and each other
    assert len({keys["a/b"], keys["a?b"], keys["a_b"]}) == 3
    assert names.safe_keys(list(reversed(NASTY))) == keys
    assert names.changed(keys)["lr=0.001"] == "lr_0.001" and "a_b" not in names.changed(keys)


def test_run_names_and_tags_lose_only_control_characters():
    assert names.display("😀 a/b [x]-s1") == "😀 a/b [x]-s1"
    assert names.display("nul\x00x\ny") == "nul_x_y"
    long = names.display("v" * 1000)
    assert len(long) <= names.MAX_KEY and long != names.display("v" * 999)


def test_per_class_metrics_of_long_and_odd_labels_are_legal_keys():
    """A 400-character label (MLflow keys stop at 250) and labels that differ only in punctuation."""
    import numpy as np

    from textclf.core.metrics import classification_metrics, flatten_metrics

    labels = ["q" * 400, "q" * 399 + "!", "$\\frac{x$", "a/b", "a?b"]
    y = np.arange(5)
    flat = flatten_metrics(classification_metrics(y, np.eye(5), labels), prefix="test_")
    per_class = [k for k in flat if "__" in k]
    assert len(per_class) == 4 * len(labels)  # none lost to a collision
    assert all(_mlflow_accepts_key(k) for k in flat), [k for k in flat if not _mlflow_accepts_key(k)]


def test_plots_read_names_as_text_not_tex(tmp_path):
    """A label or variant named like TeX ("$x^$") used to fail the confusion matrix after the training."""
    from textclf.analysis.plots import plot_confusion_matrix

    out = plot_confusion_matrix(
        [[2, 1], [0, 3]], ["$\\frac{x$", "b$^$"], tmp_path / "cm.png", title="v$_$ seed=1: test"
    )
    assert out.is_file() and out.stat().st_size > 0


# --------------------------------------------------------------------------- registry names


REFUSED_REGISTRY = [
    "x/1",
    "../up",
    "a@b",
    "m:1",
    "q?x",
    "h#1",
    "p%20",
    "",
    "  ",
    " lead",
    "trail ",
    ".hidden",
    "-x",
    "n\x00ul",
    "r" * 251,
]


@pytest.mark.parametrize("name", REFUSED_REGISTRY)
def test_registry_names_mlflow_refuses_or_cannot_find_again_are_refused(name):
    with pytest.raises(ConfigError) as err:
        names.check_registry_name(name)
    msg = str(err.value)
    assert repr(name) in msg and "--register" in msg and "e.g." in msg


@pytest.mark.parametrize("name", ["champion-model", "sentiment v2", "modèle_1", "RT.bilstm", "7up"])
def test_accepted_registry_names_are_accepted_and_found_again_by_mlflow(name):
    from mlflow.store.artifact.utils.models import _parse_model_uri
    from mlflow.utils.validation import _validate_model_name

    assert names.check_registry_name(name) == name
    _validate_model_name(name)
    parsed = _parse_model_uri(f"models:/{name}@champion")
    assert (parsed.name, parsed.alias) == (name, "champion")


@pytest.mark.parametrize("name", ["x/1", "a@b", "../up"])
def test_run_register_refuses_before_any_training(tmp_path, capsys, no_training, name):
    write_csv(tmp_path / "d.csv", make_rows(60))
    pipe = write_pipeline(tmp_path / "p.yaml", data={"source": "d.csv"}, variants={"rnn": {"encoder": {"cell": "rnn"}}})
    assert cli("run", str(pipe), "--register", name) == 2
    text = said(capsys)
    assert repr(name) in text and "Traceback" not in text
    assert store_runs() == []  # no parent run left RUNNING or FAILED


def test_library_register_checks_come_before_any_run(tmp_path, no_training):
    """run_pipeline itself (not only the CLI) refuses a bad name, and --register on a multi-task pipeline."""
    from textclf.core.cache import StageCache
    from textclf.pipeline.experiment import run_pipeline
    from textclf.pipeline.spec import load_pipeline

    write_csv(tmp_path / "d.csv", make_rows(60))
    single = load_pipeline(write_pipeline(tmp_path / "p.yaml", data={"source": "d.csv"}, variants={"a": {}}))
    with pytest.raises(ConfigError, match="'x/1'"):
        run_pipeline(single, cache=StageCache(tmp_path / ".textclf"), register="x/1")
    multi = load_pipeline(
        write_pipeline(
            tmp_path / "m.yaml",
            variants={"a": {}},
            tasks={"t1": {"data": {"source": "d.csv"}}, "t2": {"data": {"source": "d.csv"}}},
        )
    )
    with pytest.raises(ConfigError, match="2 tasks"):
        run_pipeline(multi, cache=StageCache(tmp_path / ".textclf"), register="good-name")
    assert store_runs() == []


# --------------------------------------------------------------------------- one test set per comparison


@pytest.mark.parametrize(
    "differs",
    [
        {"data": {"source": "other.csv"}},
        {"data": {"test_fraction": 0.2}},
        {"data": {"split_seed": 7}},
        {"data": {"max_examples": 40}},
    ],
)
def test_variants_tested_on_different_data_are_refused_before_training(tmp_path, capsys, no_training, differs):
    write_csv(tmp_path / "d.csv", make_rows(60))
    write_csv(tmp_path / "other.csv", make_rows(90))
    pipe = write_pipeline(
        tmp_path / "p.yaml", data={"source": "d.csv"}, baseline="a", variants={"a": {}, "b/odd": differs}
    )
    key = "data." + next(iter(differs["data"]))
    for verb in (["config", "show"], ["run"]):
        assert cli(*verb, str(pipe)) == 2
        text = said(capsys)
        assert "'a'" in text and "'b/odd'" in text and key in text and "tasks" in text, text
        assert "Traceback" not in text
    assert store_runs() == []


def test_each_task_may_have_its_own_data(tmp_path):
    """Different data across tasks is what tasks are for; only variants compared with each other must agree."""
    from textclf.pipeline.spec import load_pipeline

    write_csv(tmp_path / "d.csv", make_rows(60))
    write_csv(tmp_path / "other.csv", make_rows(90))
    pipe = load_pipeline(
        write_pipeline(
            tmp_path / "m.yaml",
            variants={"a": {}, "b": {"data": {"slice_columns": []}}},
            tasks={"one": {"data": {"source": "d.csv"}}, "two": {"data": {"source": "other.csv"}}},
        )
    )
    assert sorted(pipe.variants) == ["one/a", "one/b", "two/a", "two/b"]


# --------------------------------------------------------------------------- grid size


def test_a_grid_past_the_limit_is_refused_before_it_is_expanded(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", make_rows(60))
    values = [round(0.001 * (i + 1), 4) for i in range(40)]
    over = write_pipeline(
        tmp_path / "over.yaml", data={"source": "d.csv"}, grid={"train.lr": values, "train.weight_decay": values}
    )
    assert cli("config", "show", str(over)) == 2  # 1,600 variants
    text = said(capsys)
    assert (
        "1,600 variants" in text and "train.lr (40)" in text and "train.weight_decay (40)" in text and "1,000" in text
    )
    # the report's case: 5 keys × 40 values = 10^8 variants, refused at once (it used to end in a MemoryError)
    huge = write_pipeline(
        tmp_path / "huge.yaml",
        data={"source": "d.csv"},
        grid={
            "train.lr": values,
            "train.weight_decay": values,
            "train.batch_size": list(range(1, 41)),
            "encoder.hidden_size": list(range(1, 41)),
            "embedding.dim": list(range(1, 41)),
        },
    )
    assert cli("config", "show", str(huge)) == 2
    text = said(capsys)
    assert "102,400,000 variants" in text and "embedding.dim (40)" in text
    empty = write_pipeline(tmp_path / "empty.yaml", data={"source": "d.csv"}, grid={"train.lr": []})
    assert cli("config", "show", str(empty)) == 2  # used to run the default config as the only "variant"
    assert "'train.lr'" in said(capsys)


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_grid_over_lr_and_odd_names_run_to_a_comparison(tmp_path, capsys):
    """The documented grid over train.lr, variants named with paths, markup, TeX, emoji and NUL, a 300-character label."""
    from mlflow.tracking import MlflowClient

    long_label = "L" * 300
    write_csv(tmp_path / "d.csv", make_rows(60, labels=("neg", "$\\frac{x$", long_label)))
    odd = ["a/b[/]$x^$", "😀\x00nul"]
    pipe = write_pipeline(
        tmp_path / "p.yaml",
        data={"source": "d.csv"},
        grid={"train.lr": [0.001, 0.002]},
        variants={n: {} for n in odd},
        baseline=odd[0],
    )
    assert cli("run", str(pipe), "--jobs", "1", "--summary-out", "s.json") == 0
    s = json.loads(Path("s.json").read_text())
    assert set(s["variants"]) == {"lr=0.001", "lr=0.002", *odd}  # the comparison exists, under the user's names
    assert s["mlflow_keys"]["variants"]["lr=0.001"] == "lr_0.001"
    assert set(s["mlflow_keys"]["labels"]) == {"$\\frac{x$", long_label}

    client = MlflowClient()
    parent = client.get_run(s["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == sorted(
        ["lr=0.001-s1", "lr=0.002-s1", "a/b[/]$x^$-s1", "😀_nul-s1"]
    )
    assert all(c.info.status == "FINISHED" for c in children)
    # the dashboard view groups the children by their variant tag: every name, made displayable, is there
    assert {c.data.tags["variant"] for c in children} == {"lr=0.001", "lr=0.002", "a/b[/]$x^$", "😀_nul"}
    label_key = s["mlflow_keys"]["labels"][long_label]
    assert f"test_f1__{label_key}" in children[0].data.metrics
    out = capsys.readouterr().out
    assert "a/b[/]$x^$" in out  # printed as it is, not read as markup


@pytest.mark.slow
def test_tasks_named_like_paths_keep_their_reports_inside_the_run(tmp_path):
    from mlflow.tracking import MlflowClient

    write_csv(tmp_path / "d.csv", make_rows(60))
    pipe = write_pipeline(
        tmp_path / "m.yaml",
        variants={"rnn": {"encoder": {"cell": "rnn"}}},
        tasks={"../up": {"data": {"source": "d.csv"}}, "x/y": {"data": {"source": "d.csv"}}},
    )
    assert cli("run", str(pipe), "--jobs", "1", "--summary-out", "s.json") == 0
    s = json.loads(Path("s.json").read_text())
    assert set(s["tasks"]) == {"../up", "x/y"}
    folders = s["mlflow_keys"]["tasks"]
    client = MlflowClient()
    arts = {a.path for a in client.list_artifacts(s["parent_run_id"], "comparison")}
    assert {f"comparison/{folders['../up']}", f"comparison/{folders['x/y']}"} <= arts
    assert not (tmp_path / "up").exists() and not list(
        tmp_path.parent.glob("up")
    )  # nothing written beside the run's folder
    for folder in folders.values():  # each task's report, under its mapped folder
        assert f"comparison/{folder}/report.md" in {
            a.path for a in client.list_artifacts(s["parent_run_id"], f"comparison/{folder}")
        }


def test_train_refuses_an_experiment_name_mlflow_cannot_create_before_any_work(tmp_path, capsys, monkeypatch):
    def trained(*args, **kwargs):
        raise AssertionError("a stage ran before the refusal")

    monkeypatch.setattr("textclf.pipeline.train_one.run_variant", trained)
    write_csv(tmp_path / "d.csv", make_rows(60))
    assert cli("train", "--set", "data.source=d.csv", "--experiment", "e" * 501) == 2
    text = said(capsys)
    assert "501 characters" in text and "--experiment" in text and "Traceback" not in text
    assert store_runs() == []


def test_tables_and_plots_of_a_finished_run_print_odd_names_literally(tmp_path):
    """The last steps of a run (comparison and tuning tables, the tuning plot) with names that are rich markup or TeX."""
    import io

    from rich.console import Console

    from textclf.analysis.tuning import plot_expected_max
    from textclf.analysis.tuning import render_table as tuning_table

    odd, other = "x[/]$^$", "[bold]y"
    entry = {
        "metric": "val_accuracy",
        "trials": 2,
        "pruned": 0,
        "best_val": 0.5,
        "expected_max_val": [0.4, 0.5],
        "train_seconds": 1.0,
        "unpruned_estimate_seconds": 1.0,
    }
    summary = {
        "variants": {odd: {"tuning": entry}, other: {"tuning": entry}},
        "tuning": {
            "ranking": {"k1": [odd, other], "kN": [other, odd], "n": 2, "same": False, "flipped": [[odd, other]]}
        },
    }
    buf = io.StringIO()
    Console(file=buf, width=200).print(tuning_table(summary))
    assert odd in buf.getvalue() and other in buf.getvalue()
    assert plot_expected_max(summary, tmp_path / "e.png").is_file()
