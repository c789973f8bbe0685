"""Bounded work from small files, and the environment said plainly.

* a crafted ``tokenizer.json`` is refused before the tokenizers library parses it, and
  any tokenizer failure (a Rust panic included) is a ModelError, exit 2;
* a tuning trial whose sampled config is refused fails alone, recorded as FAILED;
* an unwritable cache, an odd ``MLFLOW_TRACKING_URI`` and out-of-range seeds are clear
  refusals naming the value and the fix, before any run is created.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import make_rows, write_csv

TINY = [
    "--set",
    "train.epochs=1",
    "--set",
    "embedding.dim=8",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "evaluate.latency_samples=2",
    "--set",
    "train.num_threads=1",
]


def _cli(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stdout + stderr on one line)."""
    from textclf.cli.main import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


def _refused(code: int, out: str, *expect: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    for s in expect:
        assert s.lower() in out.lower(), f"{s!r} not in: {out}"


# --------------------------------------------------------------------------- crafted tokenizers


def _folder(path: Path, kind: str = "word", lowercase: bool = True) -> Path:
    """A small valid model folder of tokenizer ``kind``, built in-process."""
    from textclf.models.classifier import TextClassifier
    from textclf.models.folder import save_neural
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import train_tokenizer

    texts = ["good fun movie", "bad dull film", "a great fun time", "a dull bad plot"] * 5
    tok = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=40, min_frequency=1, lowercase=lowercase), [texts])
    model = TextClassifier(vocab_size=tok.get_vocab_size(), embedding_dim=4, num_classes=2, hidden_size=4)
    config = {"kind": "neural", "tokenizer": {"max_length": 16}}
    return save_neural(path, model=model, tokenizer=tok, label_names=["neg", "pos"], config=config)


@pytest.mark.parametrize("kind", ["word", "bpe", "wordpiece", "unigram", "char"])
def test_every_tokenizer_textclf_writes_passes_the_allowlist(tmp_path, kind):
    from textclf.serving.classifier import Classifier

    for lowercase in (True, False):
        clf = Classifier.from_folder(_folder(tmp_path / f"{kind}-{lowercase}", kind, lowercase))
        assert clf.predict_proba(["good fun", "", "zzz unseen"]).shape == (3, 2)


def test_a_word_tokenizer_extended_with_pretrained_words_passes(tmp_path):
    from textclf.models.folder import read_folder
    from textclf.text.tokenize import extend_vocabulary

    d = _folder(tmp_path / "m")
    folder = read_folder(d)
    tok, added = extend_vocabulary(folder["tokenizer"], ["zebra", "yak"], 2)
    assert added == 2
    doc = json.loads(tok.to_str())
    from textclf.models.folder import check_tokenizer_json

    check_tokenizer_json(d / "tokenizer.json", doc)  # no error


def _crafted(good: Path, tmp_path: Path, name: str, edit) -> Path:
    d = tmp_path / name
    shutil.copytree(good, d)
    doc = json.loads((d / "tokenizer.json").read_text())
    edit(doc)
    (d / "tokenizer.json").write_text(json.dumps(doc))
    return d


def _set(*path_and_value):
    *path, value = path_and_value

    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


CRAFTED = [
    # a normalizer that multiplies every character (the 3.2 GB case, smaller)
    (
        "replace",
        _set(
            "normalizer",
            {
                "type": "Sequence",
                "normalizers": [
                    {"type": "NFKC"},
                    {"type": "Replace", "pattern": {"String": "o"}, "content": "good " * 2000},
                ],
            },
        ),
        "'Replace'",
    ),
    ("prepend", _set("normalizer", {"type": "Prepend", "prepend": "x" * 5000}), "'Prepend'"),
    # a catastrophic regex (Oniguruma panics on it) and a split on another regex
    (
        "regex",
        _set(
            "pre_tokenizer",
            {"type": "Split", "pattern": {"Regex": "(o|oo)+$"}, "behavior": "Isolated", "invert": False},
        ),
        "field pattern",
    ),
    (
        "seq-pre",
        _set("pre_tokenizer", {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}]}),
        "pre_tokenizer is 'Sequence'",
    ),
    # padding every text to a fixed length of 10^8 tokens
    (
        "padding",
        _set(
            "padding",
            {
                "strategy": {"Fixed": 10**8},
                "direction": "Right",
                "pad_to_multiple_of": None,
                "pad_id": 0,
                "pad_type_id": 0,
                "pad_token": "[PAD]",
            },
        ),
        "field padding",
    ),
    (
        "post",
        _set("post_processor", {"type": "TemplateProcessing", "single": [], "pair": [], "special_tokens": {}}),
        "post_processor",
    ),
    ("dropout", _set("model", "dropout", 0.5), "'dropout'"),  # a word model has no such field
    (
        "added",
        lambda doc: doc["added_tokens"].append({**doc["added_tokens"][1], "id": 2, "content": "good"}),
        "added_tokens",
    ),
    ("model-list", _set("model", ["WordLevel"]), "model is 'a list'"),
    ("vocab-str", _set("model", "vocab", {"good": "2"}), "integer ids"),
    ("top-level", _set("extra", 1), "'extra'"),
    ("not-object", lambda doc: doc.clear() or doc.update({"type": "list"}), "added_tokens"),
]


def test_crafted_tokenizer_components_are_refused_naming_the_component(tmp_path, capsys):
    from textclf.core.errors import ModelError
    from textclf.models.folder import read_folder

    good = _folder(tmp_path / "good")
    for name, edit, expect in CRAFTED:
        d = _crafted(good, tmp_path, name, edit)
        with pytest.raises(ModelError) as info:
            read_folder(d)
        message = str(info.value)
        assert "tokenizer.json: not a tokenizer textclf writes" in message and expect.lower() in message.lower(), (
            name,
            message,
        )
        assert "Re-export the model" in message
    # WordPiece with a bound far above what textclf writes: quadratic work per word
    wp = _folder(tmp_path / "wp", "wordpiece")
    d = _crafted(wp, tmp_path, "wp-chars", _set("model", "max_input_chars_per_word", 10**9))
    with pytest.raises(ModelError, match="max_input_chars_per_word is 1000000000; textclf writes 100"):
        read_folder(d)
    # through the CLI: exit 2, no traceback
    code, out = _cli(capsys, "predict", "--model", str(tmp_path / "replace"), "good fun")
    _refused(code, out, "tokenizer.json", "Replace")
    read_folder(good)


def test_a_tokenizer_panic_or_error_is_a_model_error_naming_the_text():
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    from textclf.core.errors import ModelError
    from textclf.serving.classifier import encode_texts
    from textclf.text.tokenize import _encode_batch

    # A tokenizer built in-process (no folder check): the encode call itself must not leak a panic.
    tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("(a|aa)+$"), behavior="isolated")
    with pytest.raises(ModelError, match=r"the tokenizer failed on text 2 of 2 \('aaaa.*retry-limit"):
        encode_texts(tok, ["fine", "a" * 5000 + "b"], 256)
    with pytest.raises(ModelError, match="text 1 of 1"):
        _encode_batch({"text": ["a" * 5000 + "b"]}, tok.to_str(), 256)


# --------------------------------------------------------------------------- seeds


def _runs(tmp: Path) -> list[tuple[str, str]]:
    import sqlite3

    db = tmp / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return list(con.execute("SELECT run_uuid, status FROM runs"))


def test_seeds_out_of_range_are_refused_before_any_run(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", make_rows(30))
    (tmp_path / "p.yaml").write_text("name: p\ndata: {source: d.csv}\nseeds: [3, 4294967296]\nvariants: {a: {}}\n")
    (tmp_path / "ok.yaml").write_text("name: ok\ndata: {source: d.csv}\nseeds: [1]\nvariants: {a: {}}\n")
    cases = [
        (["run", str(tmp_path / "ok.yaml"), "--seeds", "2,-7"], ["--seeds 2,-7", "-7", "[0, 4294967295]"]),
        (["run", str(tmp_path / "ok.yaml"), "--seeds", "1," + "9" * 25], ["9" * 25, "[0, 4294967295]"]),
        (["run", str(tmp_path / "p.yaml")], ["seeds", "4294967296", "[0, 4294967295]"]),
        (["run", str(tmp_path / "ok.yaml"), "--set", "train.seed=-1"], ["train.seed", "Got -1", "[0, 4294967295]"]),
        (["run", str(tmp_path / "ok.yaml"), "--set", "data.split_seed=4294967296"], ["data.split_seed", "4294967296"]),
        (["train", "--set", "data.source=d.csv", "--set", "data.split_seed=-3", *TINY], ["data.split_seed", "Got -3"]),
        (["train", "--set", "data.source=d.csv", "--set", f"train.seed={2**40}", *TINY], ["train.seed", str(2**40)]),
    ]
    for args, expect in cases:
        code, out = _cli(capsys, *args)
        _refused(code, out, *expect)
    assert _runs(tmp_path) == []
    # the ends of the range are seeds
    from textclf.training.config import TrainConfig

    assert TrainConfig(seed=0).seed == 0 and TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


# --------------------------------------------------------------------------- odd tracking URIs


def test_odd_tracking_uris_are_refused_naming_the_value_and_the_fix(tmp_path, capsys, monkeypatch):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.db").write_text("these are notes, not a database\n")
    long_name = "n" * 300
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    cases = [
        (f"file://{tmp_path}/store", ["file store", f"sqlite:///{tmp_path}/store/mlflow.db"]),
        ("runs-here", ["file store", "sqlite:///", "runs-here/mlflow.db"]),
        (
            "postgresql+psycopg2://me@db.invalid/mlflow",
            ["postgresql+psycopg2", "driver", "pip install psycopg2-binary"],
        ),
        ("mssql+pymssql://me@db.invalid/mlflow", ["pymssql", "pip install pymssql"]),
        ("nosuchscheme://host/x", ["nosuchscheme://host/x", "MLflow cannot use this store", "unset it"]),
        (f"sqlite:///{tmp_path}/folder", ["is a folder", f"sqlite:///{tmp_path}/folder/mlflow.db"]),
        ("sqlite:///notes.db", ["notes.db is not a SQLite database", "never writes over"]),
        ("sqlite:///notes.db/inner/mlflow.db", ["notes.db is a file", "cannot be created"]),
        (f"sqlite:///{long_name}.db", ["longer than the filesystem allows", "(303 characters)"]),
        ("sqlite:///:memory:", ["in-memory store", "sqlite:///mlruns/mlflow.db"]),
        ("sqlite://", ["in-memory store"]),
        ("sqlite:///file:x?mode=memory&cache=shared", ["in-memory store"]),
    ]
    for uri, expect in cases:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        code, out = _cli(capsys, "report")
        _refused(code, out, f"MLFLOW_TRACKING_URI={uri}", *expect)
    # the option is named when the value came from it
    code, out = _cli(capsys, "report", "--tracking-uri", "sqlite:///:memory:")
    _refused(code, out, "--tracking-uri sqlite:///:memory:", "in-memory")
    assert (tmp_path / "notes.db").read_text().startswith("these are notes")  # untouched
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "runs-here").exists()


def test_an_in_memory_store_is_refused_before_the_run_starts(tmp_path, capsys, monkeypatch):
    write_csv(tmp_path / "d.csv", make_rows(30))
    (tmp_path / "p.yaml").write_text("name: p\ndata: {source: d.csv}\nseeds: [1]\nvariants: {a: {}}\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///:memory:")
    code, out = _cli(capsys, "run", str(tmp_path / "p.yaml"), *TINY)
    _refused(code, out, "sqlite:///:memory:", "in-memory store")
    assert "parent run" not in out.lower() and not (tmp_path / "mlruns").exists()
    assert not list(tmp_path.glob("**/model.safetensors"))  # nothing trained


# --------------------------------------------------------------------------- tuning trials refused


def _tune_pipeline(tmp_path: Path, space: dict, trials: int = 4) -> Path:
    import yaml

    write_csv(tmp_path / "d.csv", make_rows(60))
    doc = {
        "name": "tp",
        "data": {"source": "d.csv"},
        "seeds": [1],
        "variants": {"lstm": {"encoder": {"cell": "lstm"}}},
        "params": {
            "train": {"epochs": 1, "batch_size": 16, "num_threads": 1},
            "encoder": {"hidden_size": 8},
            "embedding": {"dim": 8},
            "tokenizer": {"min_frequency": 1},
            "evaluate": {"latency_samples": 2},
        },
        "tune": {"trials": trials, "metric": "val_accuracy", "pruner": "none", "space": space},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "p.yaml"


def _trial_runs(tmp_path: Path) -> list[tuple[str, str, str | None]]:
    """(status, encoder.hidden_size param, textclf.error tag) of every trial run."""
    import sqlite3

    with sqlite3.connect(tmp_path / "mlruns" / "mlflow.db") as con:
        return list(
            con.execute(
                "SELECT r.status, p.value, e.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'textclf.role' "
                "AND t.value = 'trial' LEFT JOIN params p ON p.run_uuid = r.run_uuid AND p.key = 'encoder.hidden_size' "
                "LEFT JOIN tags e ON e.run_uuid = r.run_uuid AND e.key = 'textclf.error' ORDER BY r.start_time"
            )
        )


def test_a_refused_trial_fails_alone_and_the_search_goes_on(tmp_path, capsys, monkeypatch):
    # A model of hidden size 300,000 is refused by the memory check at the start of its training.
    monkeypatch.setenv("TEXTCLF_MEMORY_LIMIT", "4GB")
    pipe = _tune_pipeline(tmp_path, {"encoder.hidden_size": {"choices": [8, 300000]}})
    code, out = _cli(capsys, "run", str(pipe), "-q", "--jobs", "1")
    assert code == 0, out
    trials = _trial_runs(tmp_path)
    assert len(trials) == 4
    failed = [t for t in trials if t[0] == "FAILED"]
    assert failed and all(t[1] == "300000" and "memory" in (t[2] or "") for t in failed), trials
    assert all(t[0] == "FINISHED" and t[1] == "8" for t in trials if t not in failed), trials
    import sqlite3

    with sqlite3.connect(tmp_path / "mlruns" / "mlflow.db") as con:
        states = {s for (s,) in con.execute("SELECT status FROM runs")}
    assert "RUNNING" not in states


def test_a_sampled_combination_the_schema_refuses_fails_its_trial():
    from textclf.pipeline.config import resolve
    from textclf.pipeline.tune import trial_config

    base = resolve(overrides=["encoder.cell=lstm", "encoder.layers=1"])
    cfg, refused = trial_config(base, {"encoder.cell": "cnn", "encoder.layers": 2})
    assert cfg is base and "encoder.layers" in refused and "Narrow tune.space" in refused
    cfg, refused = trial_config(base, {"encoder.layers": 2})
    assert refused is None and cfg.encoder.layers == 2


def test_every_trial_refused_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEXTCLF_MEMORY_LIMIT", "4GB")
    pipe = _tune_pipeline(tmp_path, {"encoder.hidden_size": {"choices": [300000, 400000]}}, trials=2)
    code, out = _cli(capsys, "run", str(pipe), "-q", "--jobs", "1")
    _refused(code, out, "lstm", "all 2 of its trials failed", "memory", "Narrow tune.space")
    assert {t[0] for t in _trial_runs(tmp_path)} == {"FAILED"}


# --------------------------------------------------------------------------- an unwritable cache
# Tests run as root, which chmod does not stop: a cache folder "under a regular file"
# (ENOTDIR) and a lock folder replaced by a file (EEXIST) stand in for a read-only one.


def test_run_and_train_with_an_unwritable_cache_are_refused_before_any_run(tmp_path, capsys, monkeypatch):
    write_csv(tmp_path / "d.csv", make_rows(30))
    (tmp_path / "p.yaml").write_text("name: p\ndata: {source: d.csv}\nseeds: [1]\nvariants: {a: {}}\n")
    (tmp_path / "blocker").write_text("a file, not a folder\n")
    bad = tmp_path / "blocker" / "cache"
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(bad))
    for args in (["run", str(tmp_path / "p.yaml"), *TINY], ["train", "--set", "data.source=d.csv", *TINY]):
        code, out = _cli(capsys, *args)
        _refused(code, out, f"stage cache {bad}", "--cache-dir", "TEXTCLF_CACHE_DIR")
    code, out = _cli(capsys, "run", str(tmp_path / "p.yaml"), "--cache-dir", str(bad), *TINY)
    _refused(code, out, f"stage cache {bad}", "--cache-dir")
    assert _runs(tmp_path) == []


def test_a_cached_run_whose_lock_folder_cannot_be_written_names_the_cache(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", make_rows(30))
    (tmp_path / "p.yaml").write_text("name: p\ndata: {source: d.csv}\nseeds: [1]\nvariants: {a: {}}\n")
    cache = tmp_path / "c"
    code, out = _cli(capsys, "run", str(tmp_path / "p.yaml"), "--cache-dir", str(cache), *TINY)
    assert code == 0, out
    before = _runs(tmp_path)
    shutil.rmtree(cache / ".locks")
    (cache / ".locks").write_text("")  # every lock file now fails to open
    # nothing changed: the earlier run answers, and reading it needs no lock file
    code, out = _cli(capsys, "run", str(tmp_path / "p.yaml"), "--cache-dir", str(cache), *TINY)
    assert code == 0 and "nothing changed" in out, out
    # a new parent run reads the cached models under their locks: refused up front, naming the folder
    code, out = _cli(capsys, "run", str(tmp_path / "p.yaml"), "--cache-dir", str(cache), *TINY, "--new-run")
    _refused(code, out, f"stage cache {cache}", ".locks", "--cache-dir", "TEXTCLF_CACHE_DIR")
    assert _runs(tmp_path) == before  # nothing new, nothing left RUNNING or FAILED


def test_predict_from_a_run_needs_no_writable_cache(tmp_path, capsys, monkeypatch, caplog):
    import sqlite3

    write_csv(tmp_path / "d.csv", make_rows(30))
    code, out = _cli(capsys, "train", "--set", "data.source=d.csv", *TINY)
    assert code == 0, out
    with sqlite3.connect(tmp_path / "mlruns" / "mlflow.db") as con:
        (run_id,) = con.execute("SELECT run_uuid FROM runs WHERE status = 'FINISHED'").fetchone()
    (tmp_path / "blocker").write_text("")
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(tmp_path / "blocker" / "cache"))
    with caplog.at_level("WARNING"):
        code, out = _cli(capsys, "predict", "--model", f"runs:/{run_id}/model", "good fun movie", "--format", "jsonl")
    assert code == 0, out
    assert '"label"' in out
    note = out + " ".join(r.getMessage() for r in caplog.records)
    assert "cannot be written" in note and "temporary folder" in note, note
