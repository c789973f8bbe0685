"""The prepare stage: file formats, hub and built-in sources, column mapping,
splitting, invalid data, and split fingerprints."""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pytest
from conftest import LABELS, make_rows, write_csv, write_jsonl, write_parquet

from textclf.core.errors import DataError
from textclf.data.config import DataConfig
from textclf.data.prepare import SPLITS, fingerprint, prepare
from textclf.data.summary import summarize


def cfg(**kw) -> DataConfig:
    return DataConfig(**kw)


def split_texts(data) -> dict[str, list[str]]:
    return {s: list(data.splits[s]["text"]) for s in SPLITS}


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fixture", ["csv_file", "tsv_file", "jsonl_file", "parquet_file"])
def test_every_format_prepares_a_stratified_datasetdict(request, fixture, rows):
    path = request.getfixturevalue(fixture)
    data = prepare(cfg(source=path.name, val_fraction=0.2, test_fraction=0.2))
    assert isinstance(data.splits, datasets.DatasetDict)
    assert set(data.splits) == set(SPLITS)
    assert data.label_names == sorted(LABELS)
    for s in SPLITS:
        ds = data.splits[s]
        assert ds.column_names == ["text", "label"]
        assert ds.features["text"].dtype == "string" and ds.features["label"].dtype == "int64"
    texts = split_texts(data)
    # Every row lands in exactly one split, with its own label.
    assert sorted(t for s in SPLITS for t in texts[s]) == sorted(r["text"] for r in rows)
    truth = {r["text"]: r["label"] for r in rows}
    for s in SPLITS:
        assert [data.label_names[i] for i in data.labels(s)] == [truth[t] for t in texts[s]]
    # 60 rows, 20 per class, 20% held out twice: stratified => 4 of each class in validation and test.
    assert len(data.splits["test"]) == len(data.splits["validation"]) == 12
    for s in ("validation", "test"):
        assert Counter(data.labels(s).tolist()) == {0: 4, 1: 4, 2: 4}


def test_formats_with_the_same_content_get_the_same_fingerprints(csv_file, jsonl_file, parquet_file, tsv_file):
    fps = [prepare(cfg(source=p.name)).fingerprints for p in (csv_file, jsonl_file, parquet_file, tsv_file)]
    assert all(fp == fps[0] for fp in fps)
    assert len(set(fps[0].values())) == 3


def test_split_is_reproducible_per_seed_and_changes_with_it(csv_file):
    a = split_texts(prepare(cfg(source=csv_file.name, split_seed=3)))
    b = split_texts(prepare(cfg(source=csv_file.name, split_seed=3)))
    c = split_texts(prepare(cfg(source=csv_file.name, split_seed=4)))
    assert a == b
    assert a["test"] != c["test"]


def test_separate_files_per_split(tmp_path):
    rows = make_rows(90)
    write_csv(tmp_path / "train.csv", rows[:60])
    write_jsonl(tmp_path / "val.jsonl", rows[60:75])
    write_parquet(tmp_path / "test.parquet", rows[75:])
    data = prepare(cfg(train="train.csv", validation="val.jsonl", test="test.parquet"))
    assert [len(data.splits[s]) for s in SPLITS] == [60, 15, 15]
    assert data.sources == {"train": "train.csv", "validation": "val.jsonl", "test": "test.parquet"}
    assert list(data.splits["test"]["text"]) == [r["text"] for r in rows[75:]]


def test_test_file_without_validation_file_carves_validation_from_train(tmp_path):
    rows = make_rows(90)
    write_csv(tmp_path / "train.csv", rows[:60])
    write_csv(tmp_path / "test.csv", rows[60:])
    data = prepare(cfg(train="train.csv", test="test.csv", val_fraction=0.25))
    assert [len(data.splits[s]) for s in SPLITS] == [45, 15, 30]


def test_zero_test_fraction_reuses_validation_and_says_so(csv_file):
    data = prepare(cfg(source=csv_file.name, test_fraction=0.0, val_fraction=0.2))
    assert data.report["test_is_validation"] is True
    assert split_texts(data)["test"] == split_texts(data)["validation"]
    assert summarize(data)["rows"] == 60


def test_max_examples_caps_every_split(csv_file):
    data = prepare(cfg(source=csv_file.name, max_examples=5))
    assert [len(data.splits[s]) for s in SPLITS] == [5, 5, 5]


# --------------------------------------------------------------------------- columns and labels


def test_column_mapping_and_int_labels(tmp_path):
    rows = [{"review": r["text"], "stars": LABELS.index(r["label"]) + 1} for r in make_rows(30)]
    write_csv(tmp_path / "r.csv", rows, columns=("stars", "review"))
    data = prepare(cfg(source="r.csv", text_column="review", label_column="stars"))
    assert data.label_names == ["1", "2", "3"]
    truth = {r["review"]: str(r["stars"]) for r in rows}
    for s in SPLITS:
        assert [data.label_names[i] for i in data.labels(s)] == [truth[t] for t in data.splits[s]["text"]]


def test_swapped_column_names_are_mapped_correctly(tmp_path):
    # The column called "label" holds the text and vice versa.
    rows = [{"label": r["text"], "text": r["label"]} for r in make_rows(30)]
    write_csv(tmp_path / "s.csv", rows, columns=("label", "text"))
    data = prepare(cfg(source="s.csv", text_column="label", label_column="text"))
    assert data.label_names == sorted(LABELS)
    assert all(t.endswith(tuple(f"movie{i}" for i in range(30))) for t in data.splits["train"]["text"])


def test_numeric_labels_read_as_float_stay_integers(tmp_path):
    # A parquet float column (as pandas writes an int column with gaps) must give labels "0", "1", not "0.0".
    rows = [{"text": r["text"], "label": float(LABELS.index(r["label"]))} for r in make_rows(30)]
    write_parquet(tmp_path / "f.parquet", rows)
    assert prepare(cfg(source="f.parquet")).label_names == ["0", "1", "2"]


def test_missing_column_lists_columns_present(tmp_path):
    write_csv(tmp_path / "r.csv", [{"review": "a b", "sentiment": "pos"}], columns=("review", "sentiment"))
    with pytest.raises(DataError) as exc:
        prepare(cfg(source="r.csv"))
    msg = str(exc.value)
    assert "r.csv" in msg and "'review'" in msg and "'sentiment'" in msg
    assert "data.text_column" in msg and "data.label_column" in msg
    with pytest.raises(DataError, match="'sentiment'"):
        prepare(cfg(source="r.csv", text_column="review"))
    # The suggestion points the text at a string column, the label at a free one.
    write_csv(
        tmp_path / "s.csv", [{"stars": 1, "review": "a b"}, {"stars": 2, "review": "c"}], columns=("stars", "review")
    )
    with pytest.raises(DataError, match="--set data.text_column=review"):
        prepare(cfg(source="s.csv"))
    with pytest.raises(DataError, match="--set data.label_column=stars"):
        prepare(cfg(source="s.csv", text_column="review"))


@pytest.mark.parametrize(
    "name, content", [("semi.csv", "text;label\na b;pos\nc d;neg\n"), ("comma.tsv", "text,label\na b,pos\nc d,neg\n")]
)
def test_wrong_delimiter_gets_a_hint(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match="another delimiter"):
        prepare(cfg(source=name))


def test_one_class_is_an_error(tmp_path):
    write_csv(tmp_path / "one.csv", make_rows(20, labels=("pos",)))
    with pytest.raises(DataError, match=r"only one class \('pos'\)"):
        prepare(cfg(source="one.csv"))


def test_labels_unseen_in_train_are_named(tmp_path):
    rows = make_rows(60, labels=("neg", "pos"))
    write_csv(tmp_path / "train.csv", rows[:40])
    write_csv(tmp_path / "val.csv", rows[40:50])
    write_csv(tmp_path / "test.csv", rows[50:] + [{"text": "some text", "label": "meh"}])
    with pytest.raises(DataError) as exc:
        prepare(cfg(train="train.csv", validation="val.csv", test="test.csv"))
    assert (
        "test.csv" in str(exc.value)
        and "'meh'" in str(exc.value)
        and "never occur in the training data" in str(exc.value)
    )


# --------------------------------------------------------------------------- invalid rows


def bad_rows_file(tmp_path):
    rows = make_rows(30)
    rows[2]["text"] = ""  # row 3: null (an empty CSV cell)
    rows[4]["text"] = "   "  # row 5: whitespace only
    rows[6]["text"] = "\t"  # row 7
    rows[9]["label"] = ""  # row 10: no label
    return write_csv(tmp_path / "bad.csv", rows), rows


def test_invalid_rows_are_an_error_naming_counts_and_rows(tmp_path):
    bad_rows_file(tmp_path)
    with pytest.raises(DataError) as exc:
        prepare(cfg(source="bad.csv"))
    msg = str(exc.value)
    assert "bad.csv" in msg
    assert "1 null text (rows 3)" in msg
    assert "2 empty text (rows 5, 7)" in msg
    assert "1 missing label (rows 10)" in msg
    assert "data.on_invalid=drop" in msg


def test_invalid_rows_dropped_on_request_and_reported(tmp_path):
    _, rows = bad_rows_file(tmp_path)
    data = prepare(cfg(source="bad.csv", on_invalid="drop"))
    assert data.report["dropped"]["bad.csv"] == {"rows": 4, "null_text": 1, "empty_text": 2, "missing_label": 1}
    kept = [t for s in SPLITS for t in data.splits[s]["text"]]
    assert len(kept) == 26
    assert sorted(kept) == sorted(rows[i]["text"] for i in range(30) if i not in (2, 4, 6, 9))
    assert summarize(data)["dropped"]["bad.csv"]["rows"] == 4


def test_nan_labels_in_jsonl_and_parquet(tmp_path):
    rows = make_rows(30)
    rows[3]["label"] = None
    write_jsonl(tmp_path / "n.jsonl", rows)
    with pytest.raises(DataError, match=r"1 missing label \(rows 4\)"):
        prepare(cfg(source="n.jsonl"))
    num = [{"text": r["text"], "label": float("nan") if i == 5 else float(i % 2)} for i, r in enumerate(make_rows(30))]
    write_parquet(tmp_path / "n.parquet", num)
    with pytest.raises(DataError, match=r"1 missing label \(rows 6\)"):
        prepare(cfg(source="n.parquet"))
    assert prepare(cfg(source="n.parquet", on_invalid="drop")).report["dropped"]["n.parquet"]["rows"] == 1


def test_every_row_invalid_is_an_error(tmp_path):
    (tmp_path / "blank.csv").write_text("text,label\n ,a\n  ,b\n")
    with pytest.raises(DataError, match="every row is invalid"):
        prepare(cfg(source="blank.csv", on_invalid="drop"))


# --------------------------------------------------------------------------- unreadable files


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    head = b"text,label\ngood film,pos\n"
    (tmp_path / "latin.csv").write_bytes(head + "caf\xe9 film,neg\n".encode("latin-1"))
    offset = len(head) + 3
    with pytest.raises(DataError) as exc:
        prepare(cfg(source="latin.csv"))
    assert "latin.csv" in str(exc.value)
    assert f"byte offset {offset}" in str(exc.value)
    assert "line 3" in str(exc.value)


@pytest.mark.parametrize(
    "setup, source, fragment",
    [
        (lambda p: (p / "h.csv").write_text("text,label\n"), "h.csv", "has a header (text,label) but no rows"),
        (lambda p: (p / "e.csv").write_text(""), "e.csv", "the file is empty"),
        (lambda p: (p / "e.jsonl").write_text("\n\n"), "e.jsonl", "no rows"),
        (lambda p: (p / "d.csv").mkdir(), "d.csv", "is a directory"),
        (lambda p: (p / "r.txt").write_text("text,label\na,b\n"), "r.txt", "unsupported file type '.txt'"),
        (lambda p: None, "missing.csv", "not found"),
        (
            lambda p: (p / "j.jsonl").write_text('{"text": "a", "label": 1}\n{oops\n'),
            "j.jsonl",
            "could not be parsed as JSON",
        ),
    ],
)
def test_unreadable_sources_are_clear_errors(tmp_path, setup, source, fragment):
    setup(tmp_path)
    with pytest.raises(DataError) as exc:
        prepare(cfg(source=source))
    assert fragment in str(exc.value)
    assert source in str(exc.value)


def test_no_source_at_all():
    with pytest.raises(DataError, match="No data given"):
        prepare(cfg())


# --------------------------------------------------------------------------- hub and built-in sources


def offline_at_load(monkeypatch) -> list[bool]:
    """Record whether each ``datasets.load_dataset`` call runs offline: offline, it fails at once instead of retrying."""
    seen: list[bool] = []
    real = datasets.load_dataset

    def load(*args, **kwargs):
        seen.append(bool(datasets.config.HF_HUB_OFFLINE))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load)
    return seen


def test_hub_offline_fails_fast_with_a_way_out(monkeypatch):
    import socket

    def no_network(address, *a, **kw):
        raise AssertionError(f"connected to {address} although the hub is offline")

    monkeypatch.setattr(socket, "create_connection", no_network)
    offline = offline_at_load(monkeypatch)
    with pytest.raises(DataError) as exc:
        prepare(cfg(source="hf:glue:sst2"))
    assert offline == [True]
    msg = str(exc.value)
    assert "unreachable" in msg
    assert "load_dataset('glue', 'sst2')" in msg
    assert "data.train=" in msg


def test_hub_unreachable_without_offline_flag_fails_fast(monkeypatch):
    """No HF_HUB_OFFLINE, no network: the probe notices and nothing retries for half a minute."""
    import socket

    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    probed = []

    def refuse(address, *a, **kw):
        probed.append(address)
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    offline = offline_at_load(monkeypatch)
    with pytest.raises(DataError, match="unreachable"):
        prepare(cfg(source="hf:imdb"))
    assert len(probed) == 1  # one probe, no retries
    assert offline == [True]  # the loader itself ran offline: its own retries never started
    # The offline switches are restored afterwards.
    assert datasets.config.HF_HUB_OFFLINE is False and constants.HF_HUB_OFFLINE is False


def test_hub_style_local_dataset_keeps_classlabel_names(tmp_path):
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    (tmp_path / "ds").mkdir()
    for split, n in (("train", 40), ("test", 10)):
        rows = make_rows(n, labels=("neg", "pos"))
        datasets.Dataset.from_dict(
            {"sentence": [r["text"] for r in rows], "label": [["neg", "pos"].index(r["label"]) for r in rows]},
            features=features,
        ).to_parquet(str(tmp_path / "ds" / f"{split}.parquet"))
    data = prepare(cfg(source="hf:ds", text_column="sentence"))
    assert data.label_names == ["neg", "pos"]
    assert [len(data.splits[s]) for s in SPLITS] == [36, 4, 10]
    assert data.sources["test"] == "hf:ds[test]"
    truth = {r["text"]: r["label"] for r in make_rows(10, labels=("neg", "pos"))}
    assert [data.label_names[i] for i in data.labels("test")] == [truth[t] for t in data.splits["test"]["text"]]


def test_builtin_source_is_generated_once_and_split(monkeypatch):
    import textclf.data.corpora

    calls = []

    def fake_generate(name, *, seed, **options):
        calls.append((name, seed, options))
        rows = make_rows(options.get("size", 30))
        return {"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]}

    monkeypatch.setattr(textclf.data.corpora, "generate", fake_generate)
    a = prepare(cfg(source="builtin:fake", options={"size": 50}, split_seed=2))
    b = prepare(cfg(source="builtin:fake", options={"size": 50}, split_seed=2))
    assert calls == [("fake", 2, {"size": 50})]  # the second run reads the stored Parquet file
    assert sum(len(a.splits[s]) for s in SPLITS) == 50
    assert a.fingerprints == b.fingerprints
    assert a.sources["train"] == "builtin:fake"


# --------------------------------------------------------------------------- fingerprints, leakage, summary


def test_fingerprint_changes_exactly_where_content_changes(tmp_path, rows):
    write_csv(tmp_path / "a.csv", rows)
    base = prepare(cfg(source="a.csv"))
    assert prepare(cfg(source="a.csv")).fingerprints == base.fingerprints
    test_text = base.splits["test"]["text"][0]
    edited = [dict(r, text=r["text"] + "!") if r["text"] == test_text else r for r in rows]
    write_csv(tmp_path / "b.csv", edited)
    changed = prepare(cfg(source="b.csv")).fingerprints
    assert changed["test"] != base.fingerprints["test"]
    assert changed["train"] == base.fingerprints["train"]
    assert changed["validation"] == base.fingerprints["validation"]
    # Renaming a class changes what every split means.
    write_csv(tmp_path / "c.csv", [dict(r, label=r["label"].upper()) for r in rows])
    renamed = prepare(cfg(source="c.csv")).fingerprints
    assert all(renamed[s] != base.fingerprints[s] for s in SPLITS)


def test_fingerprint_hashes_values_not_buffers():
    ds = datasets.Dataset.from_dict({"text": ["ab", "c", "d"], "label": [0, 1, 0]})
    same = datasets.Dataset.from_dict({"text": ["x", "ab", "c", "d"], "label": [1, 0, 1, 0]}).select([1, 2, 3])
    assert fingerprint(ds) == fingerprint(same)
    assert fingerprint(ds) != fingerprint(datasets.Dataset.from_dict({"text": ["a", "bc", "d"], "label": [0, 1, 0]}))
    assert fingerprint(ds) != fingerprint(datasets.Dataset.from_dict({"text": ["ab", "c", "d"], "label": [0, 1, 1]}))


def test_leakage_between_splits_is_reported(tmp_path):
    rows = make_rows(40, labels=("neg", "pos"))
    write_csv(tmp_path / "train.csv", rows[:30])
    write_csv(tmp_path / "val.csv", rows[30:] + rows[:3])
    data = prepare(cfg(train="train.csv", validation="val.csv", test_fraction=0.0))
    assert data.report["overlap_validation"] == 3


def test_summarize_counts_rows_and_labels(csv_file):
    data = prepare(cfg(source=csv_file.name))
    summary = summarize(data)
    assert summary["rows"] == 60
    for s in SPLITS:
        split = summary["splits"][s]
        assert split["rows"] == len(data.splits[s])
        assert split["labels"] == {n: int(np.sum(data.labels(s) == i)) for i, n in enumerate(data.label_names)}
        assert split["fingerprint"] == data.fingerprints[s]
        assert split["words"]["max"] == max(len(t.split()) for t in data.splits[s]["text"])
