"""Data that is legal but probably wrong gets a word before training, and the report stays sane.

Label strings are labels ("None" is a class); `data inspect` and training warn once, with the
fix, about case-variant labels, one-example classes, tiny evaluation splits, labels the training
split lacks, heavy imbalance, a collapsed vocabulary and id-like slice columns; a comparison
caps its slices and cuts its intervals to the possible range.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from conftest import make_rows, write_csv, write_jsonl, write_parquet

from textclf.cli.main import main
from textclf.data.config import DataConfig
from textclf.data.prepare import prepare


def cfg(**kw) -> DataConfig:
    return DataConfig(**kw)


def data_warnings(data, **kw):
    # Imported here: without the module each test still fails on its own account.
    from textclf.data.checks import data_warnings

    return data_warnings(data, **kw)


def codes(data, **kw) -> dict[str, str]:
    return {w.code: w.message for w in data_warnings(data, **kw)}


def inspect_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["data", "inspect", *args, "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- label strings are labels


@pytest.mark.parametrize("name", ["None", "none", "NULL", "nan", "NA", "N/A"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_class_spelled_like_a_missing_value_is_a_class(tmp_path, name, fmt):
    rows = make_rows(60, labels=("pos", name))
    path = tmp_path / f"d.{fmt}"
    {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}[fmt](path, rows)
    data = prepare(cfg(source=str(path)))
    assert sorted(data.label_names) == sorted(["pos", name])
    assert sum(len(data.splits[s]) for s in ("train", "validation", "test")) == 60  # nothing dropped
    # ... and it is named, in case those rows really had no label
    msg = codes(data)["missing_marker_label"]
    assert repr(name) in msg and "data.on_invalid=drop" in msg


def test_missing_labels_are_still_missing(tmp_path):
    rows = make_rows(60, labels=("pos", "None"))
    rows[4]["label"] = None  # an empty CSV cell
    rows[7]["label"] = "  "
    write_csv(tmp_path / "d.csv", rows)
    data = prepare(cfg(source="d.csv", on_invalid="drop"))
    assert data.report["dropped"]["d.csv"] == {"rows": 2, "missing_label": 2}
    assert "None" in data.label_names


# --------------------------------------------------------------------------- the warnings


def test_labels_differing_only_in_case_or_spacing(tmp_path):
    rows = make_rows(90, labels=("pos", "neg", "Pos"))
    for r in rows[::9]:
        r["label"] = "NEG"
    rows[1]["label"] = "p\u200bos"  # a zero-width space, invisible in most editors
    write_csv(tmp_path / "d.csv", rows)
    msgs = [w.message for w in data_warnings(prepare(cfg(source="d.csv"))) if w.code == "label_spelling"]
    assert len(msgs) == 2
    assert any("'Pos'" in m and "'pos'" in m and "'p\\u200bos'" in m for m in msgs)
    assert any("'NEG'" in m and "'neg'" in m and "write them one way" in m for m in msgs)


def test_no_warning_for_clean_balanced_data(tmp_path):
    write_csv(tmp_path / "d.csv", make_rows(1200))
    assert data_warnings(prepare(cfg(source="d.csv"))) == []


def test_single_example_class_and_a_label_only_in_test(tmp_path):
    """One 'ghost' row in a file split automatically lands in train (one example) or outside it (never predictable)."""
    rows = make_rows(600, labels=("pos", "neg")) + [{"text": "only once in the whole file", "label": "ghost"}]
    write_csv(tmp_path / "all.csv", rows)
    places = set()
    for seed in range(12):  # 40% of the rows are held out: the row lands on both sides within a few seeds
        data = prepare(cfg(source="all.csv", split_seed=seed, val_fraction=0.2, test_fraction=0.2))
        ghost = data.label_names.index("ghost")
        in_train = int((data.labels("train") == ghost).sum())
        places.add(in_train)
        found = codes(data)
        if in_train:
            assert "class 'ghost' has a single training example" in found["single_example_class"]
            assert "label_missing_from_train" not in found
        else:
            msg = found["label_missing_from_train"]
            assert "class 'ghost' occurs in the" in msg and "never predict" in msg
            assert "single_example_class" not in found
    assert places == {0, 1}, "the seeds above put the row both in and out of train"


def test_small_evaluation_splits(tmp_path):
    write_csv(tmp_path / "d.csv", make_rows(300))
    found = codes(prepare(cfg(source="d.csv")))  # 30 validation and 30 test rows
    assert (
        "the validation split has 30 rows" in found["small_split"]
        or "the test split has 30 rows" in found["small_split"]
    )
    msgs = [w.message for w in data_warnings(prepare(cfg(source="d.csv"))) if w.code == "small_split"]
    assert len(msgs) == 2 and "--set data.val_fraction=0.34" in msgs[0] and "--set data.test_fraction=0.34" in msgs[1]
    # a file of its own: grow the file
    write_csv(tmp_path / "tr.csv", make_rows(900))
    write_csv(tmp_path / "va.csv", make_rows(200))
    write_csv(tmp_path / "te.csv", make_rows(12))
    msgs = [
        w.message
        for w in data_warnings(prepare(cfg(train="tr.csv", validation="va.csv", test="te.csv")))
        if w.code == "small_split"
    ]
    assert msgs == [msgs[0]] and "test split has 12 rows" in msgs[0] and "add rows to te.csv" in msgs[0]


@pytest.mark.parametrize("share", [0.95, 0.85])
def test_heavy_imbalance_names_the_fix(tmp_path, share):
    n = 1000
    rows = make_rows(n, labels=("pos",))
    for i in range(int(n * (1 - share))):
        rows[i * int(1 / (1 - share)) % n]["label"] = "neg"
    write_csv(tmp_path / "d.csv", rows)
    data = prepare(cfg(source="d.csv"))
    msg = codes(data)["class_imbalance"]
    assert "'neg'" in msg and f"scores {share:.1%} accuracy" in msg
    assert "--set train.early_stopping_metric=macro_f1" in msg and "--set train.class_weights=balanced" in msg
    # only what is still missing is suggested; with both set there is nothing to say
    assert "early_stopping_metric" not in codes(data, selection_metric="macro_f1")["class_imbalance"]
    assert "class_imbalance" not in codes(data, selection_metric="macro_f1", class_weights="balanced")


def test_moderate_imbalance_is_not_heavy(tmp_path):
    rows = make_rows(900, labels=("a", "a", "b"))  # 2:1
    write_csv(tmp_path / "d.csv", rows)
    assert "class_imbalance" not in codes(prepare(cfg(source="d.csv")))


def test_id_like_slice_column(tmp_path):
    rows = make_rows(1200)
    for i, r in enumerate(rows):
        r["id"] = f"r{i}"
        r["domain"] = ("film", "book")[i % 2]
    write_csv(tmp_path / "d.csv", rows, columns=("text", "label", "id", "domain"))
    found = [
        w
        for w in data_warnings(prepare(cfg(source="d.csv", slice_columns=["id", "domain"])))
        if w.code == "slice_column_values"
    ]
    assert len(found) == 1 and "'id' has 120 distinct values" in found[0].message and "identifier" in found[0].message


def test_vocabulary_collapse_is_named_with_its_setting():
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import vocabulary_warnings

    stats = {"kind": "word", "trained_vocab_size": 6, "splits": {"train": {"unk_rate": 0.83}}}
    msg = vocabulary_warnings(stats, TokenizerConfig(min_frequency=50))[0].message
    assert "4 tokens" in msg and "83%" in msg and "--set tokenizer.min_frequency=2" in msg
    capped = {**stats, "trained_vocab_size": 10}
    msg = vocabulary_warnings(capped, TokenizerConfig(min_frequency=1, vocab_size=10))[0].message
    assert "--set tokenizer.vocab_size=40" in msg
    assert vocabulary_warnings({**stats, "splits": {"train": {"unk_rate": 0.2}}}, TokenizerConfig()) == []


def test_data_inspect_warns_with_the_fix(tmp_path, capsys):
    rows = make_rows(400, labels=("pos",))
    for r in rows[::20]:
        r["label"] = "neg"
    write_csv(tmp_path / "d.csv", rows)
    out = inspect_json(capsys, "d.csv", "--set", "tokenizer.min_frequency=1000")
    got = {w["code"]: w["message"] for w in out["warnings"]}
    assert {"class_imbalance", "small_split", "vocabulary_collapsed"} <= set(got)
    assert "tokenizer.min_frequency" in got["vocabulary_collapsed"]
    capsys.readouterr()
    assert main(["data", "inspect", "d.csv", "-q"]) == 0
    text = capsys.readouterr().out
    assert "warning: the classes are heavily imbalanced" in text and "--set train.class_weights=balanced" in text


class _Heard(logging.Handler):
    """Collects textclf's log messages (on the package logger: the CLI re-configures the root logger's handlers)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_training_warns_once_before_training_per_dataset(tmp_path, monkeypatch, capsys):
    """A pipeline of two variants on one dataset: each warning once, before the first training, and kept with the run."""
    import yaml

    from textclf.pipeline import data_stages
    from textclf.pipeline import variant as variant_mod

    rows = make_rows(400, labels=("pos",))
    for r in rows[::20]:
        r["label"] = "neg"
    write_csv(tmp_path / "d.csv", rows)
    spec = {
        "name": "imb",
        "data": {"source": "d.csv"},
        "seeds": [1],
        "baseline": "a",
        "params": {"kind": "tfidf"},
        "variants": {"a": {"tfidf": {"ngram_max": 1}}, "b": {"tfidf": {"ngram_max": 2}}},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(data_stages, "_SAID", set(), raising=False)  # said before in this process: forget it
    heard = _Heard()
    seen_at_first_training: list[list[str]] = []
    real = variant_mod.tfidf_stage

    def tfidf_stage(*a, **kw):
        seen_at_first_training.append(list(heard.messages))
        return real(*a, **kw)

    monkeypatch.setattr(variant_mod, "tfidf_stage", tfidf_stage)
    logger = logging.getLogger("textclf")
    logger.addHandler(heard)
    try:
        assert (
            main(["run", "p.yaml", "-q", "--jobs", "1", "--summary-out", "s.json"]) == 0
        )  # in this process: each variant passes warn_data
        capsys.readouterr()
        assert main(["run", "p.yaml", "-q"]) == 0  # nothing changed: the recorded answer, and its warnings again
        again = capsys.readouterr().out
    finally:
        logger.removeHandler(heard)
        import mlflow

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    said = [m for m in heard.messages if "heavily imbalanced" in m]
    assert len(said) == 1, said
    assert "'neg' has 16 of 320 training rows" in said[0] and "--set train.early_stopping_metric=macro_f1" in said[0]
    assert len(seen_at_first_training) == 2
    assert any("heavily imbalanced" in m for m in seen_at_first_training[0])
    recorded = json.loads((tmp_path / "s.json").read_text())["data"]["warnings"]
    assert said[0] in recorded
    assert "warning: the classes are heavily imbalanced" in again and "nothing changed" not in said[0]


# --------------------------------------------------------------------------- report sanity


def _records(n: int, seeds: int, rng):
    from textclf.analysis.compare import RunRecord

    y = rng.integers(0, 2, n)
    recs = []
    for name, skill in (("a", 0.5), ("b", 0.6)):
        for s in range(seeds):
            right = rng.random(n) < skill + 0.3 * rng.standard_normal()  # seeds differ wildly
            pred = np.where(right, y, 1 - y)
            recs.append(RunRecord(variant=name, seed=s, proba=np.eye(2)[pred], y_true=y, kind="neural", metrics={}))
    return recs


def test_intervals_stay_in_the_possible_range_and_say_uninformative():
    from textclf.analysis.compare import compare
    from textclf.analysis.report import _delta_cell

    rng = np.random.default_rng(3)
    hit = 0
    for _ in range(20):
        s = compare(_records(8, 2, rng), "a", label_names=["x", "y"], n_boot=50)
        for key in ("delta_accuracy", "delta_macro_f1"):
            d = s["variants"]["b"][key]
            assert -1.0 <= d["ci_low"] <= d["mean"] <= d["ci_high"] <= 1.0
            hit += d["uninformative"]
            if d["uninformative"]:
                assert "uninformative" in _delta_cell(d)
    assert hit  # two seeds on eight examples: the t interval runs past ±100 points
    big = compare(_records(3000, 5, np.random.default_rng(0)), "a", label_names=["x", "y"], n_boot=50)
    assert big["variants"]["b"]["delta_accuracy"]["uninformative"] is False


def test_clip_interval_keeps_coverage():
    """Cutting to [-1, 1] never drops a true difference the interval covered (simulated)."""
    from textclf.analysis.stats import clip_interval

    rng = np.random.default_rng(0)
    for _ in range(2000):
        true = rng.uniform(-1, 1)
        low, high = sorted(true + rng.normal(0, 1.5, 2))
        c_low, c_high, flag = clip_interval(low, high)
        assert (low <= true <= high) == (c_low <= true <= c_high)
        assert flag == (low < -1 or high > 1 or c_high - c_low >= 1.0)


def test_slices_of_an_id_column_are_capped_with_a_note(tmp_path):
    from textclf.analysis.compare import compare
    from textclf.analysis.report import write_report

    rng = np.random.default_rng(1)
    recs = _records(900, 2, rng)
    ids = [f"id{i}" for i in range(893)] + ["id0"] * 7  # one value with 8 rows, the rest one each
    groups = [f"g{i % 25}" for i in range(900)]  # 25 groups of 36
    s = compare(recs, "a", label_names=["x", "y"], n_boot=20, slice_columns={"id": ids, "group": groups})
    rows = s["variants"]["b"]["slices"]["id"]
    assert len(rows) == 2 and rows[0]["value"] == "id0" and rows[0]["n"] == 8
    assert rows[1]["value"] == "other (892 values)" and rows[1]["n"] == 892
    assert "identifier" in s["slices"]["id"]
    grouped = s["variants"]["b"]["slices"]["group"]
    assert len(grouped) == 20 and sum(r["n"] for r in grouped) == 900
    assert grouped[-1]["value"] == "other (6 values)"
    s["data"] = {"warnings": ["the classes are heavily imbalanced: ..."]}
    report = write_report(s, recs, tmp_path / "r", title="t")["report"].read_text()
    assert "893 distinct values in 900 test texts" in report
    assert "## Data warnings\n\n- the classes are heavily imbalanced" in report
