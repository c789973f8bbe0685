"""Trained models as products: references, loading, predict / embed / export, transfer, tampering.

One tiny pipeline (LSTM + BiLSTM, hidden 8, 2 epochs, 160 rows) is run once
for the module through the real CLI, registered as ``tiny`` (alias
``champion``) and run a second time so a *cached* child run exists; every
test then reads that store.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from textclf.core.errors import ConfigError, ModelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import write_corpus  # noqa: E402  (the tiny two-class corpus generator)

pytestmark = pytest.mark.slow

TEXTS = [
    "the film was great",
    "the plot was awful",
    "zzz unseen words",
    "",
    "a lovely a lovely cast really superb story",
]
COMMON = {
    "train": {"epochs": 2, "batch_size": 16, "num_threads": 1},
    "encoder": {"hidden_size": 8, "cell": "lstm"},
    "embedding": {"dim": 8},
    "tokenizer": {"min_frequency": 1},
    "evaluate": {"latency_samples": 2},
}


def _isolate(mp: pytest.MonkeyPatch, root: Path) -> None:
    """The same isolation as conftest's autouse fixture, for module-scoped work."""
    import datasets
    from huggingface_hub import constants

    mp.chdir(root)
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    mp.setenv("TEXTCLF_CACHE_DIR", str(root / ".textclf"))
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("HF_DATASETS_CACHE", str(root / "hf-datasets"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TOKENIZERS_PARALLELISM", "false")
    mp.setattr(datasets.config, "HF_DATASETS_CACHE", root / "hf-datasets")
    mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    mp.setattr(constants, "HF_HUB_OFFLINE", True)
    import mlflow

    mlflow.set_tracking_uri(uri)


def cli(*args: str) -> int:
    """Run the real ``textclf`` entry point in this process."""
    import mlflow

    from textclf.cli.main import main

    uri = os.environ["MLFLOW_TRACKING_URI"]
    code = main(list(args))
    mlflow.set_tracking_uri(uri)
    return code


def write_pipeline(path: Path, data: Path, variants: dict, name: str = "tiny", **extra) -> Path:
    spec = {"name": name, "data": {"source": str(data)}, "params": COMMON, "seeds": [1], "variants": variants, **extra}
    path.write_text(yaml.safe_dump(spec))
    return path


@dataclass
class World:
    root: Path
    uri: str
    data: Path
    children: dict  # variant -> child run id (first run, trained)
    cached_child: str  # a child run of the second run (cached, no model of its own)
    folders: dict  # variant -> model folder in the stage cache
    registered: dict
    parent: str  # the first run's parent run (logs no model)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("reuse")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root)
        data = write_corpus(root / "reviews.csv")
        pipe = write_pipeline(root / "tiny.yaml", data, {"lstm": {}, "bilstm": {"encoder": {"bidirectional": True}}})
        assert cli("run", str(pipe), "-q", "--register", "tiny", "--summary-out", "s1.json") == 0
        s1 = json.loads((root / "s1.json").read_text())
        assert cli("run", str(pipe), "-q", "--variant", "lstm", "--summary-out", "s2.json") == 0
        s2 = json.loads((root / "s2.json").read_text())
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        children = {v: row["run_ids"][0] for v, row in s1["variants"].items()}
        cached = s2["variants"]["lstm"]["run_ids"][0]
        assert client.get_run(cached).data.tags["textclf.cached"] == "true"
        folders = {}
        for v, rid in children.items():
            key = client.get_run(rid).data.tags["textclf.stage_key"]
            folders[v] = root / ".textclf" / "train" / key / "model"
        yield World(
            root,
            os.environ["MLFLOW_TRACKING_URI"],
            data,
            children,
            cached,
            folders,
            s1["registered"],
            s1["parent_run_id"],
        )


@pytest.fixture
def store(world, monkeypatch):
    """Point this test at the module's MLflow store and cache (conftest isolated it in tmp_path)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.uri)
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(world.root / ".textclf"))
    mlflow.set_tracking_uri(world.uri)
    return world


# --------------------------------------------------------------------------- references


def test_every_reference_kind_gives_bitwise_identical_probabilities(store, monkeypatch):
    import textclf
    from textclf.serving.classifier import Classifier

    w = store
    champion = w.registered["variant"]
    want = Classifier.from_folder(w.folders[champion]).predict_proba(TEXTS)
    lstm = Classifier.from_folder(w.folders["lstm"]).predict_proba(TEXTS)
    from mlflow.tracking import MlflowClient

    model_uri = MlflowClient().get_run(w.children["lstm"]).data.tags["textclf.model_uri"]
    refs = {
        str(w.folders["lstm"]): lstm,
        f"runs:/{w.children['lstm']}/model": lstm,
        f"runs:/{w.children['lstm']}": lstm,
        f"runs:/{w.cached_child}": lstm,  # cached child: follows model_uri to the run that trained it
        f"runs:/{w.cached_child}/model": lstm,
        model_uri: lstm,  # models:/m-ID, the logged model itself
        "models:/tiny@champion": want,
        "models:/tiny/1": want,
    }
    for ref, expected in refs.items():
        clf = textclf.load_model(ref)
        got = clf.predict_proba(TEXTS)
        assert got.shape == (len(TEXTS), 2)
        assert np.array_equal(got, expected), ref
        assert clf.predict(TEXTS) == [clf.labels[i] for i in expected.argmax(1)]
    # explicit tracking URI works without the environment variable
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    import mlflow

    mlflow.set_tracking_uri("sqlite:///nowhere/mlflow.db")
    clf = textclf.load_model("models:/tiny/1", tracking_uri=w.uri)
    assert np.array_equal(clf.predict_proba(TEXTS), want)
    assert clf.ref.registered == {"name": "tiny", "version": "1", "alias": None}


def test_bad_references_name_the_ref_and_the_fix(store):
    import textclf

    cases = {
        "runs:/0123456789abcdef/model": "not found",
        "models:/nope@champion": "nope",
        "models:/tiny@nope": "alias",
        "models:/tiny/99": "99",
        "models:/tiny": "models:/tiny/1",  # says which version / alias to add
        "no/such/folder": "no such folder",
        "s3://bucket/model": "unsupported scheme",
    }
    for ref, needle in cases.items():
        with pytest.raises(ModelError) as info:
            textclf.load_model(ref)
        assert ref.split("/")[0] in str(info.value) and needle in str(info.value), (ref, str(info.value))
    with pytest.raises(ModelError, match="use the id of one of its child runs"):
        textclf.load_model(f"runs:/{store.parent}")
    with pytest.raises(ModelError, match="no MLflow store"):
        textclf.load_model("runs:/abc", tracking_uri="sqlite:///does/not/exist.db")


def test_local_mlflow_model_folder_and_unsafe_artifact_path(store, tmp_path):
    import mlflow

    import textclf

    local = Path(mlflow.artifacts.download_artifacts("models:/tiny/1", dst_path=str(tmp_path / "dl")))
    clf = textclf.load_model(str(local))
    assert clf.labels == ["neg", "pos"]
    mlmodel = local / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"]["python_function"]["artifacts"]["model_dir"]["path"] = "../../etc"
    mlmodel.write_text(yaml.safe_dump(doc))
    with pytest.raises(ModelError, match="unsafe artifact path"):
        textclf.load_model(str(local))


# --------------------------------------------------------------------------- embeddings


def test_encoder_embeds_with_hidden_times_directions(store):
    import textclf

    for variant, dim in (("lstm", 8), ("bilstm", 16)):
        enc = textclf.load_encoder(f"runs:/{store.children[variant]}")
        a = enc.embed(TEXTS)
        assert a.shape == (len(TEXTS), dim) and a.dtype == np.float32 and enc.dim == dim
        assert np.array_equal(a, enc.embed(TEXTS))  # deterministic
        # one text alone or inside a batch: same vector up to float rounding
        assert np.allclose(enc.embed(TEXTS[:1])[0], a[0], atol=1e-6)
    assert textclf.load_encoder(str(store.folders["lstm"])).embed([]).shape == (0, 8)


# --------------------------------------------------------------------------- CLI verbs


def test_predict_cli_texts_files_and_outputs(store, tmp_path, capsys):
    import pandas as pd

    import textclf

    ref = f"runs:/{store.children['lstm']}"
    want = textclf.load_model(ref).predict_proba(TEXTS[:2])
    capsys.readouterr()
    assert cli("predict", "--model", ref, *TEXTS[:2]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == TEXTS[:2]
    assert np.array_equal(np.array([[r["proba_neg"], r["proba_pos"]] for r in rows], dtype=np.float32), want)
    assert [r["label"] for r in rows] == [["neg", "pos"][i] for i in want.argmax(1)]

    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(TEXTS)))
    pd.DataFrame({"text": TEXTS, "label": ["x"] * len(TEXTS)}).to_csv(tmp_path / "in.csv", index=False)
    full = textclf.load_model(ref).predict_proba(TEXTS)
    assert (
        cli("predict", "-q", "--model", ref, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "a.csv"))
        == 0
    )
    assert (
        cli(
            "predict",
            "-q",
            "--model",
            ref,
            "--input",
            str(tmp_path / "in.jsonl"),
            "--text-column",
            "body",
            "-o",
            str(tmp_path / "b.jsonl"),
        )
        == 0
    )
    assert cli("predict", "-q", "--model", ref, "--input", str(tmp_path / "in.csv"), "-o", str(tmp_path / "c.csv")) == 0
    a = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    b = pd.read_json(tmp_path / "b.jsonl", lines=True, precise_float=True)
    c = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    assert list(a.columns) == ["text", "label", "proba_neg", "proba_pos"]
    assert list(b.columns) == ["id", "body", "label", "proba_neg", "proba_pos"] and b["id"].tolist() == list(
        range(len(TEXTS))
    )
    assert list(c.columns) == ["text", "input_label", "label", "proba_neg", "proba_pos"]  # the input's label kept aside
    for df in (a, b, c):
        assert np.array_equal(df[["proba_neg", "proba_pos"]].to_numpy(np.float32), full)

    # expected failures: exit 2 with a message naming the problem
    assert cli("predict", "--model", ref) == 2
    assert cli("predict", "--model", ref, "x", "--input", str(tmp_path / "in.txt")) == 2
    assert cli("predict", "--model", ref, "--input", str(tmp_path / "in.jsonl")) == 2  # no 'text' column
    assert cli("predict", "--model", ref, "x", "-o", str(tmp_path / "out.xlsx")) == 2
    assert cli("predict", "--model", "missing-folder", "x") == 2
    err = capsys.readouterr().err
    assert "--text-column" in err and "xlsx" in err and "missing-folder" in err


def test_embed_and_export_cli(store, tmp_path, capsys):
    import pyarrow.parquet as pq

    import textclf
    from textclf.models.folder import read_folder

    ref = f"runs:/{store.children['bilstm']}"
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    assert (
        cli("embed", "-q", "--model", ref, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "e.npy"))
        == 0
    )
    assert (
        cli("embed", "-q", "--model", ref, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "e.parquet"))
        == 0
    )
    want = textclf.load_encoder(ref).embed(TEXTS)
    got = np.load(tmp_path / "e.npy", allow_pickle=False)
    assert got.shape == (len(TEXTS), 16) and np.array_equal(got, want)
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.column_names == ["text", "embedding"]
    assert np.array_equal(np.array(table.column("embedding").to_pylist(), dtype=np.float32), want)
    assert cli("embed", "--model", ref, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "e.csv")) == 2

    out = tmp_path / "exported"
    assert cli("export", "-q", "--model", "models:/tiny@champion", "--output", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "labels.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    read_folder(out)
    assert np.array_equal(
        textclf.load_model(str(out)).predict_proba(TEXTS),
        textclf.load_model("models:/tiny@champion").predict_proba(TEXTS),
    )
    assert cli("export", "--model", ref, "--output", str(out)) == 2  # exists: needs --force
    assert "--force" in capsys.readouterr().err
    assert (
        cli("export", "--model", str(store.root / "reviews.csv"), "--output", str(tmp_path / "x")) == 2
    )  # not a folder
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    assert cli("export", "-q", "--model", ref, "--output", str(out), "--onnx", "--force") == 0
    info = json.loads((out / "onnx.json").read_text())
    assert (out / "model.onnx").is_file() and info["verified"]["checked"] and info["labels"] == ["neg", "pos"]


@pytest.mark.parametrize(
    "arch",
    [
        {"cell": "rnn"},
        {"cell": "gru"},
        {"cell": "lstm"},
        {"cell": "lstm", "layers": 2},
        {"cell": "lstm", "bidirectional": True},
        {"cell": "gru", "layers": 2, "bidirectional": True, "pooling": "attention"},
    ],
    ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()),
)
def test_onnx_export_matches_torch(arch, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import torch

    from textclf.models import folder as artifacts
    from textclf.models.classifier import TextClassifier
    from textclf.serving.classifier import encode_texts

    tok = _tokenizer(["good bad film plot great awful story"])
    torch.manual_seed(0)
    model = TextClassifier(vocab_size=tok.get_vocab_size(), embedding_dim=6, num_classes=3, hidden_size=5, **arch)
    artifacts.save_neural(
        tmp_path / "m",
        model=model.eval(),
        tokenizer=tok,
        label_names=["a", "b", "c"],
        config={"tokenizer": {"max_length": 32}},
    )
    folder = artifacts.read_folder(tmp_path / "m")
    from textclf.models.onnx import export_onnx

    info = export_onnx(folder, tmp_path / "model.onnx")
    assert info["verified"]["checked"] and info["verified"]["max_abs_diff"] < 1e-4
    # real texts of different lengths in one padded batch, as a consumer of the ONNX file would feed them
    split = encode_texts(tok, ["good film", "bad bad plot story awful great", "zzz"], 32)
    lengths = split.lengths.astype(np.int64)
    tokens = np.zeros((len(split), lengths.max() + 2), dtype=np.int64)  # extra padding columns are harmless
    for i in range(len(split)):
        tokens[i, : lengths[i]] = split.ids[split.offsets[i] : split.offsets[i + 1]]
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"tokens": tokens, "lengths": lengths})[0]
    from textclf.models.predict import predict_proba

    want = predict_proba(artifacts.build_model(folder), split)
    got = np.exp(logits - logits.max(1, keepdims=True))
    got /= got.sum(1, keepdims=True)
    assert np.allclose(got, want, atol=1e-5)


def _tokenizer(corpus: list[str], vocab_size: int = 100):
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import train_tokenizer

    return train_tokenizer(TokenizerConfig(kind="word", vocab_size=vocab_size, min_frequency=1), iter([corpus]))


# --------------------------------------------------------------------------- tampered artifacts


@pytest.fixture
def folder_copy(store, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(store.folders["lstm"], dst)
    return dst


class _Boom:
    """A pickle payload whose loading would create a file (the side effect we must never see)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_tampered_folders_are_refused_with_clear_errors(folder_copy, tmp_path):
    import torch
    from safetensors.torch import save_file

    import textclf
    from textclf.models.classifier import TextClassifier
    from textclf.models.folder import read_folder

    original = {p.name: p.read_bytes() for p in folder_copy.iterdir()}
    cfg = json.loads(original["config.json"])
    hp = cfg["model"]

    def restore():
        for name, data in original.items():
            (folder_copy / name).write_bytes(data)

    def refused(pattern: str) -> None:
        with pytest.raises(ModelError, match=pattern):
            textclf.load_model(str(folder_copy))
        restore()

    for name in ("config.json", "labels.json", "tokenizer.json", "model.safetensors"):
        (folder_copy / name).unlink()
        refused(f"{name}: missing|{name}")

    # weights of another hidden size under the same config
    other = TextClassifier(**{**hp, "hidden_size": hp["hidden_size"] + 2})
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(folder_copy / "model.safetensors"))
    refused("do not fit the architecture")

    # labels that disagree with the head
    (folder_copy / "labels.json").write_text(json.dumps(["neg", "pos", "extra"]))
    refused("lists 3 classes but the model head")

    # a tokenizer whose vocabulary disagrees with the embedding
    _tokenizer(["only a handful of words here"]).save(str(folder_copy / "tokenizer.json"))
    refused("does not match the embedding")

    # corrupt JSON
    (folder_copy / "config.json").write_text("{not json")
    refused("not valid JSON")

    # a pickle (plain and torch.save's zip) renamed to model.safetensors: refused, never unpickled
    marker = tmp_path / "pwned"
    for dump in (
        lambda f: pickle.dump({"embedding.weight": _Boom(marker)}, f),
        lambda f: torch.save({"x": _Boom(marker)}, f),
    ):
        with open(folder_copy / "model.safetensors", "wb") as fh:
            dump(fh)
        with pytest.raises(ModelError, match="not a valid safetensors file"):
            read_folder(folder_copy)
        refused("safetensors")
    assert not marker.exists()
    textclf.load_model(str(folder_copy))  # restored: loads again


# --------------------------------------------------------------------------- transfer


def test_transfer_pipeline_scratch_frozen_finetuned(store, tmp_path):
    """A new 3-class task started from the 2-class LSTM: scratch vs frozen vs fine-tuned in one pipeline."""
    import torch
    from conftest import make_rows, write_csv
    from mlflow.tracking import MlflowClient

    import textclf
    from textclf.pipeline.config import Config
    from textclf.pipeline.model_stages import TrainSpec, build_model
    from textclf.pipeline.transfer import source_for

    src_run = store.children["lstm"]
    src_ref = f"runs:/{src_run}"
    data = write_csv(tmp_path / "three.csv", make_rows(150))
    pipe = write_pipeline(
        tmp_path / "transfer.yaml",
        data,
        name="transfer",
        baseline="scratch",
        variants={
            "scratch": {},
            "frozen": {"encoder": {"init_from": src_ref, "freeze": True}},
            "finetuned": {"encoder": {"init_from": src_ref, "freeze": False}},
        },
    )
    assert cli("run", str(pipe), "-q", "--summary-out", str(tmp_path / "s.json")) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary["variants"]) == {"scratch", "frozen", "finetuned"}
    client = MlflowClient()
    runs = {v: client.get_run(row["run_ids"][0]) for v, row in summary["variants"].items()}

    source = textclf.load_model(src_ref)
    src_state = source.model.state_dict()
    models = {v: textclf.load_model(f"runs:/{r.info.run_id}") for v, r in runs.items()}
    for v in ("frozen", "finetuned"):
        tags = runs[v].data.tags
        assert tags["textclf.init_from"] == src_ref and tags["textclf.init_from_run"] == src_run
        assert tags["textclf.init_from_model"].startswith("models:/m-")
        clf = models[v]
        assert clf.labels == ["neg", "neu", "pos"]  # a new label set with a new head
        assert clf.tokenizer.to_str() == source.tokenizer.to_str()  # the source's tokenizer, reused
        assert json.loads((clf.path / "config.json").read_text())["init_from"]["run_id"] == src_run
    assert "textclf.init_from" not in runs["scratch"].data.tags
    assert models["scratch"].tokenizer.to_str() != source.tokenizer.to_str()  # trained on the new data

    body = [k for k in src_state if k.startswith(("embedding.", "encoder."))]
    frozen, tuned = models["frozen"].model.state_dict(), models["finetuned"].model.state_dict()
    assert all(torch.equal(frozen[k], src_state[k]) for k in body)  # frozen: untouched
    assert not all(torch.equal(tuned[k], src_state[k]) for k in body)  # fine-tuned: moved
    # the head trained in both (compare with its seeded initial value)
    cfg = Config.model_validate(json.loads((models["frozen"].path / "config.json").read_text())["config"])
    spec = TrainSpec(
        tokenizer=cfg.tokenizer, embedding=cfg.embedding, encoder=cfg.encoder, train=cfg.train, eval_batch_size=256
    )
    start = build_model(spec, source.tokenizer.get_vocab_size(), 3, source=source_for(cfg)).state_dict()
    assert not torch.equal(frozen["head.weight"], start["head.weight"])
    assert runs["frozen"].data.metrics["params"] == 3 * 8 + 3  # only the head is trainable
    # stage keys carry the source's identity: three different trainings
    assert len({r.data.tags["textclf.stage_key"] for r in runs.values()}) == 3


def test_transfer_config_conflicts_are_config_errors(store, tmp_path):
    from textclf.core.cache import StageCache
    from textclf.pipeline.config import resolve
    from textclf.pipeline.variant import run_variant

    ref = str(store.folders["lstm"])
    base = {**COMMON, "data": {"source": str(store.data)}, "encoder": {**COMMON["encoder"], "init_from": ref}}

    def fails(overrides: list[str], *needles: str) -> None:
        with pytest.raises(ConfigError) as info:
            run_variant(resolve(base, overrides=overrides), StageCache(tmp_path / "c"))
        for n in needles:
            assert n in str(info.value), str(info.value)

    fails(["tokenizer.min_frequency=2"], "tokenizer.min_frequency", "set tokenizer.min_frequency=1")
    fails(["tokenizer.kind=bpe", "encoder.hidden_size=16"], "tokenizer.kind", "encoder.hidden_size", "2 problems")
    fails(["encoder.bidirectional=true"], "encoder.bidirectional")
    fails(["encoder.init_from=null", "encoder.freeze=true"], "encoder.freeze=true needs encoder.init_from")
    fails(["encoder.init_from=nowhere"], "encoder.init_from", "nowhere")
    assert not (tmp_path / "c" / "train").exists()  # rejected before any work
