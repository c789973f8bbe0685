"""Reliability round three: resources. What cannot fit is refused before any work; nothing grows with what it need not.

One test per failure a reliability probe met (numbered as in its report):
3. a model too large for the memory (training it, or loading a folder that says so);
5. very many classes (a class-count check, and no N × C or C × C arrays);
6. one huge text (cut before it is tokenized);
7. an absurd ``train.epochs`` (bounded; warm-up no longer stretches with it);
12. crafted model folders (validated completely at load, naming file and field).
Each drives the real CLI (its entry point, in this process) where the promise is
about the CLI (exit code 2, the message, no traceback, nothing started), and the
library where it is about a function.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import CliResult, make_rows, write_csv

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


@pytest.fixture(autouse=True)
def real_memory(monkeypatch):
    """The refusals are checked against the machine's real memory, not a limit from the environment."""
    monkeypatch.delenv("TEXTCLF_MEMORY_LIMIT", raising=False)


def _runs(tmp: Path) -> list[tuple[str, str]]:
    db = tmp / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return list(con.execute("SELECT run_uuid, status FROM runs"))


def _refused(r: CliResult, *expect: str) -> str:
    out = " ".join(r.output.split())
    assert r.code == 2, out
    assert "Traceback" not in out
    for s in expect:
        assert s.lower() in out.lower(), f"{s!r} not in: {out}"
    return out


# --------------------------------------------------------------------------- 3. model size


def test_3_a_model_too_large_is_refused_before_anything_runs(tmp_path, monkeypatch, cli):
    write_csv(tmp_path / "d.csv", make_rows(60))
    # train: hidden_size 10**6 is ~4·10**12 LSTM parameters; refused before any stage or MLflow run
    r = cli("train", "--set", "data.source=d.csv", *TINY, "--set", "encoder.hidden_size=1000000")
    _refused(r, "needs about", "is available", "encoder.hidden_size", "parameters")
    assert not [
        p for p in (tmp_path / ".textclf").glob("*") if p.name not in (".file-hashes", ".code-behaviour.json")
    ] and not _runs(tmp_path)  # no stage ran

    # run: every variant is checked before the first one trains
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text(
        textwrap.dedent("""
        name: p
        data: {source: d.csv}
        params: {train: {epochs: 1, num_threads: 1}, embedding: {dim: 8}, evaluate: {latency_samples: 2}}
        variants:
          small: {encoder: {hidden_size: 8}}
          huge: {encoder: {hidden_size: 1000000, layers: 2}}
    """)
    )
    out = _refused(cli("run", "p"), "'huge'", "encoder.hidden_size or encoder.layers")
    assert "'small'" not in out
    assert not (tmp_path / ".textclf" / "train").exists() and not _runs(tmp_path)

    # the estimate counts parameters exactly (meta device), for every family
    from textclf.models.classifier import TextClassifier
    from textclf.models.size import parameter_counts, training_estimate

    for cell, bi, layers in (("rnn", True, 2), ("gru", False, 3), ("lstm", True, 1), ("cnn", False, 1)):
        hp = dict(
            vocab_size=50,
            embedding_dim=6,
            num_classes=3,
            cell=cell,
            hidden_size=5,
            layers=layers,
            bidirectional=bi,
            frozen_rows=7,
        )
        counts = parameter_counts(hp)
        real = TextClassifier(**hp)
        assert sum(counts["trainable"].values()) == sum(p.numel() for p in real.parameters())
        assert sum(counts["frozen"].values()) == real.embedding.frozen.numel() == 7 * 6
    # the probe's hidden_size=30000: ~3.6·10**9 parameters, estimated without allocating them
    e = training_estimate(
        dict(vocab_size=20000, embedding_dim=100, num_classes=2, hidden_size=30000), batch_size=64, max_length=256
    )
    assert e.parameters == 4 * 30000 * (100 + 30000 + 2) + 20000 * 100 + 2 * 30000 + 2 and e.total > 100 * 2**30

    # a model already in the cache builds nothing: its check is skipped (a cached re-run imports no torch),
    # unless --force trains it again
    from textclf.core.cache import StageCache
    from textclf.core.errors import ConfigError
    from textclf.pipeline.config import load_config
    from textclf.pipeline.train_one import train_one
    from textclf.pipeline.variant import is_trained

    cache = StageCache(tmp_path / ".textclf")
    cfg = load_config(overrides=["data.source=d.csv", *TINY[1::2]])
    assert not is_trained(cfg, cache)
    train_one(cfg, cache=cache, tracking_uri=None, quiet=True)
    assert is_trained(cfg, cache)
    assert not is_trained(load_config(overrides=["data.source=d.csv", *TINY[1::2], "encoder.hidden_size=9"]), cache)
    tfidf = load_config(overrides=["data.source=d.csv", *TINY[1::2], "kind=tfidf"])
    assert not is_trained(tfidf, cache)
    train_one(tfidf, cache=cache, tracking_uri=None, quiet=True)
    assert is_trained(tfidf, cache)
    assert not is_trained(
        load_config(overrides=["data.source=d.csv", *TINY[1::2], "kind=tfidf", "tfidf.max_features=77"]), cache
    )
    monkeypatch.setenv("TEXTCLF_MEMORY_LIMIT", "1KB")
    assert train_one(cfg, cache=cache, tracking_uri=None, quiet=True)["cached"]
    with pytest.raises(ConfigError, match=r"needs about .* is available \(TEXTCLF_MEMORY_LIMIT=1KB\)"):
        train_one(cfg, cache=cache, tracking_uri=None, quiet=True, force=True)

    # loading a model folder: checked against the memory available before its weights are read
    from textclf.core.errors import ModelError
    from textclf.models.folder import read_folder

    folder = _folder(tmp_path / "m")
    monkeypatch.setenv("TEXTCLF_MEMORY_LIMIT", "1KB")
    with pytest.raises(ModelError, match=r"config.json needs about .* 1.0 KiB is available .*model.hidden_size"):
        read_folder(folder)
    monkeypatch.setenv("TEXTCLF_MEMORY_LIMIT", "1GB")
    read_folder(folder)


# --------------------------------------------------------------------------- 5. classes


def test_5_class_count_is_checked_and_nothing_grows_with_classes_squared(tmp_path, monkeypatch, cli):
    # a label column with a label per row or so (an id column): refused after prepare, before training
    rows = [{"text": f"word{i % 7} text {i}", "label": f"id{i % 150}"} for i in range(200)]
    write_csv(tmp_path / "ids.csv", rows)
    _refused(
        cli("train", "--set", "data.source=ids.csv", *TINY), "150 distinct labels", "data.label_column", "training rows"
    )
    assert not (tmp_path / ".textclf" / "train").exists()
    assert all(status != "RUNNING" for _, status in _runs(tmp_path))

    # scoring 5,000 classes needs O(N + C) memory: no C × C confusion matrix, no N × C matrix
    import tracemalloc

    from textclf.core.metrics import (
        TopProba,
        classification_metrics,
        epoch_metrics,
        flatten_metrics,
    )

    n, c = 2000, 5000
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, c, n), rng.integers(0, c, n)
    top = TopProba.ordered(np.stack([pred, (pred + 1) % c], 1), np.tile([0.6, 0.3], (n, 1)), np.full(n, 0.1), c)
    tracemalloc.start()
    epoch_metrics(y, pred, c)
    m = classification_metrics(y, top, [f"c{i}" for i in range(c)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert m["confusion_matrix"] is None and m["accuracy"] == pytest.approx(np.mean(y == pred))
    assert m["log_loss"] == pytest.approx(-np.log(0.1)) and m["roc_auc"] is None
    flat = flatten_metrics(m)
    assert "test_accuracy" in flat and not any("__" in k for k in flat)  # no 20,000 per-class MLflow metrics

    # the evaluate stage keeps the top classes, not the (N, C) matrix, once that matrix is large
    from textclf.core.cache import StageCache
    from textclf.pipeline import model_stages
    from textclf.pipeline.config import load_config
    from textclf.pipeline.train_one import train_one

    monkeypatch.setattr(model_stages, "DENSE_PROBA_ELEMENTS", 0)
    write_csv(tmp_path / "d.csv", make_rows(60))
    cfg = load_config(overrides=["data.source=d.csv", *TINY[1::2]])
    result = train_one(cfg, cache=StageCache(tmp_path / ".textclf"), tracking_uri=None, quiet=True)
    (ev,) = (tmp_path / ".textclf" / "evaluate").glob("[!.]*")
    assert (ev / "pred_test.npy").is_file() and (ev / "top_test.npz").is_file() and not (ev / "proba_test.npy").exists()
    assert result["test_log_loss"] > 0 and "test_roc_auc" not in result
    assert result["test_accuracy"] == pytest.approx(
        np.mean(np.load(ev / "pred_test.npy") == np.load(ev / "y_test.npy"))
    )


# --------------------------------------------------------------------------- 6. one huge text

_HUGE_TEXT = textwrap.dedent(
    """
    import resource
    from textclf.serving.classifier import encode_texts
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import _encode_batch, train_tokenizer

    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["lorem ipsum dolor sit amet"]])
    big = "lorem ipsum dolor sit amet " * (5 * 2**20 // 27)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = _encode_batch({"text": [big, "lorem ipsum"]}, tok.to_str(), 256)
    split = encode_texts(tok, [big], 256)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(grew // 1024, out["full_length"][1], len(out["input_ids"][0]), int(split.lengths[0]))
    """
)


def test_6_a_huge_text_is_cut_before_it_is_tokenized():
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import _encode_batch, train_tokenizer

    # a 5 MB text, tokenized for its first 256 tokens, in training and at inference
    r = subprocess.run([sys.executable, "-c", _HUGE_TEXT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    grew_mib, short, kept, served = map(int, r.stdout.split())
    assert grew_mib < 64, f"tokenizing one 5 MB text grew the process by {grew_mib} MiB"
    assert (short, kept, served) == (2, 256, 256)

    # a text whose first tokens are one long run: cut before max_length tokens, yet counted as truncated
    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["a b c"]])
    out = _encode_batch({"text": ["x" * 10_000 + " a b c", "a b"]}, tok.to_str(), 8)
    assert out["full_length"][0] > 8 and out["full_length"][1] == 2


# --------------------------------------------------------------------------- 7. epochs


def test_7_epochs_are_bounded_and_warm_up_does_not_grow_with_them(tmp_path, cli):
    write_csv(tmp_path / "d.csv", make_rows(60))
    _refused(
        cli("train", "--set", "data.source=d.csv", *TINY, "--set", "train.epochs=1e9", "--set", "train.patience=1"),
        "train.epochs",
        "10000",
    )
    from textclf.training.config import TrainConfig
    from textclf.training.optim import warmup_steps

    # warm-up: at most 2 epochs' worth however long the run; what it was for the defaults and short runs
    assert warmup_steps(TrainConfig(epochs=10000), steps_per_epoch=100) == 200
    for epochs in (1, 3, 10, 25, 40):
        for spe in (1, 7, 113):
            assert warmup_steps(TrainConfig(epochs=epochs), spe) == round(0.05 * (epochs * spe))


# --------------------------------------------------------------------------- 12. crafted model folders


def _folder(path: Path) -> Path:
    """A small, valid model folder, built in-process."""
    from textclf.models.classifier import TextClassifier
    from textclf.models.folder import save_neural
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import train_tokenizer

    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["good fun movie", "bad dull film"]])
    model = TextClassifier(vocab_size=tok.get_vocab_size(), embedding_dim=4, num_classes=2, hidden_size=4)
    config = {"kind": "neural", "tokenizer": {"max_length": 16}}
    return save_neural(path, model=model, tokenizer=tok, label_names=["neg", "pos"], config=config)


def test_12_crafted_model_folders_are_refused_at_load_naming_file_and_field(tmp_path, cli):
    import shutil

    from textclf.core.errors import ModelError
    from textclf.models.folder import read_folder

    good = _folder(tmp_path / "good")
    n_vocab = json.loads((good / "config.json").read_text())["model"]["vocab_size"]

    def crafted(name: str, file: str, edit) -> Path:
        d = tmp_path / name
        shutil.copytree(good, d)
        doc = json.loads((d / file).read_text())
        (d / file).write_text(json.dumps(edit(doc)))
        return d

    def model(**kw):
        return lambda doc: {**doc, "model": {**doc["model"], **kw}}

    def tokenizer_id(doc):
        doc["model"]["vocab"]["fun"] = 99_999  # a word mapped past the embedding
        return doc

    cases = [
        (crafted("list", "config.json", lambda doc: [doc]), r"config.json: expected a JSON object .* got a list"),
        (
            crafted("str", "config.json", lambda doc: {**doc, "model": "lstm"}),
            r"config.json: field model must be an object",
        ),
        (
            crafted("classes", "config.json", model(num_classes=10**7)),
            r"labels.json: lists 2 classes but the model head has 10,000,000 outputs \(model.num_classes in config.json\)",
        ),
        (
            crafted("hidden", "config.json", model(hidden_size=10**6)),
            r"model.safetensors: .*config.json \(.*model.hidden_size=1000000",
        ),
        (
            crafted("dim", "config.json", model(embedding_dim=10**6)),
            r"model.safetensors: .*config.json \(.*model.embedding_dim=1000000",
        ),
        (
            crafted("negative", "config.json", model(hidden_size=-3)),
            r"config.json: invalid model hyper-parameters .*model.hidden_size must be an integer .* got -3",
        ),
        (
            crafted("cnn", "config.json", model(cell="cnn", layers=2)),
            r"config.json: .*model.layers must be 1 for model.cell='cnn'",
        ),
        (crafted("dup", "labels.json", lambda doc: ["neg", "neg"]), r"labels.json: class 'neg' is listed twice"),
        (
            crafted("tokid", "tokenizer.json", tokenizer_id),
            rf"tokenizer.json: token 'fun' has id 99,999, beyond the {n_vocab} rows",
        ),
        (
            crafted("vocab", "config.json", model(vocab_size=n_vocab + 3)),
            rf"tensors do not fit the architecture in config.json: embedding.weight has shape \({n_vocab}, 4\), .*makes it \({n_vocab + 3}, 4\)",
        ),
    ]
    for folder, message in cases:
        with pytest.raises(ModelError, match="(?s)" + message):
            read_folder(folder)

    # a tokenizer of another size: both numbers, and the file that holds each
    def extra_word(doc):
        doc["model"]["vocab"]["zzz"] = n_vocab
        return doc

    with pytest.raises(
        ModelError,
        match=rf"vocabulary of {n_vocab + 1} tokens .*config.json says model.vocab_size = {n_vocab}, and model.safetensors holds {n_vocab} embedding rows",
    ):
        read_folder(crafted("other-tok", "tokenizer.json", extra_word))

    # through the CLI: exit 2, the file named, no traceback
    _refused(cli("predict", "--model", str(tmp_path / "list"), "good fun"), "config.json", "got a list")
    _refused(cli("predict", "--model", str(tmp_path / "dup"), "good fun"), "labels.json", "listed twice")
    read_folder(good)  # the untouched folder still loads
