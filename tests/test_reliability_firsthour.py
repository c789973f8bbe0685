"""A new user's first hour: own files over a pipeline's source, finding the model to use, start-up, model files, shipped pipelines.

Each test stands for one friction a new user hit on Rotten Tomatoes, and
fails on the code before its fix.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
import yaml
from conftest import REPO, imported_after, make_rows, write_csv

from textclf.cli.main import main
from textclf.core.errors import ConfigError


def _tiny_folder(path: Path, max_length: int = 16) -> Path:
    """A small, valid model folder, built in-process (no training)."""
    from textclf.models.classifier import TextClassifier
    from textclf.models.folder import save_neural
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import train_tokenizer

    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["good fun movie", "bad dull film"]])
    model = TextClassifier(vocab_size=tok.get_vocab_size(), embedding_dim=4, num_classes=2, hidden_size=4)
    config = {"kind": "neural", "tokenizer": {"max_length": max_length}}
    return save_neural(path, model=model, tokenizer=tok, label_names=["neg", "pos"], config=config)


# --------------------------------------------------------------------------- own files over a pipeline's data.source


def _pipeline_with_source(tmp_path: Path) -> Path:
    path = tmp_path / "withsource.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "withsource",
                "data": {"source": "builtin:reviews", "options": {"size": 300}},
                "seeds": [1],
                "variants": {"rnn": {"encoder": {"cell": "rnn"}}, "gru": {"encoder": {"cell": "gru"}}},
            }
        )
    )
    return path


def test_set_data_train_replaces_a_pipelines_source_with_one_log_line(tmp_path, caplog):
    from textclf.pipeline.spec import load_pipeline

    pipe = _pipeline_with_source(tmp_path)
    with caplog.at_level(logging.INFO, logger="textclf.pipeline.config"):
        loaded = load_pipeline(pipe, overrides=["data.train=mine.csv", "data.validation=mine-val.csv"])
    for variant in loaded.variants.values():
        data = variant.config.data
        assert (data.source, data.train, data.validation) == (None, "mine.csv", "mine-val.csv")
        assert data.options == {}  # the builtin corpus's options went with it
    notes = [r.getMessage() for r in caplog.records if "replaces" in r.getMessage()]
    assert len(notes) == 1, notes  # once, not once per variant
    assert "data.source='builtin:reviews'" in notes[0] and "--set" in notes[0]
    # The other way round: a --set data.source over a pipeline's own files.
    rt = load_pipeline(REPO / "pipelines" / "rt-slices.yaml", overrides=["data.source=other.csv"])
    data = next(iter(rt.variants.values())).config.data
    assert (data.source, data.train, data.validation) == ("other.csv", None, None)


def test_readme_own_files_example_passes_config_show(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", make_rows(30))
    write_csv(tmp_path / "val.csv", make_rows(9))
    code = main(["config", "show", "compare", "--set", "data.train=train.csv", "--set", "data.validation=val.csv"])
    assert code == 0, capsys.readouterr()
    assert "builtin:reviews" not in capsys.readouterr().out


def test_both_ways_in_one_layer_stay_an_error_that_says_the_fix(tmp_path, capsys):
    from textclf.pipeline.config import load_config

    with pytest.raises(ConfigError) as exc:
        load_config(overrides=["data.source=a.csv", "data.train=b.csv"])
    assert "'a.csv'" in str(exc.value) and "'b.csv'" in str(exc.value) and "--set data.source=null" in str(exc.value)
    both = tmp_path / "both.yaml"
    both.write_text(
        yaml.safe_dump({"name": "both", "data": {"source": "a.csv", "train": "b.csv"}, "variants": {"rnn": {}}})
    )
    assert main(["config", "show", str(both)]) == 2
    err = capsys.readouterr().err
    assert "not both" in err and "Traceback" not in err


# --------------------------------------------------------------------------- the model to use, printed by run and report


def test_run_and_report_print_each_variants_model_reference(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    write_csv(tmp_path / "train.csv", make_rows(60))
    pipe = tmp_path / "two.yaml"
    pipe.write_text(
        yaml.safe_dump(
            {
                "name": "two",
                "seeds": [1],
                "baseline": "rnn",
                "data": {"source": "train.csv"},
                "params": {
                    "train": {"epochs": 1},
                    "embedding": {"dim": 8},
                    "encoder": {"hidden_size": 8},
                    "evaluate": {"latency_samples": 0},
                },
                "variants": {"rnn": {"encoder": {"cell": "rnn"}}, "tfidf": {"kind": "tfidf"}},
            }
        )
    )
    summary_path = tmp_path / "summary.json"
    assert main(["run", str(pipe), "--jobs", "1", "--summary-out", str(summary_path)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    parent, best = summary["parent_run_id"], summary["best_variant"]
    client = MlflowClient()
    assert f"textclf predict --model {parent}:best --input FILE" in printed
    for name, entry in summary["variants"].items():
        (child,) = entry["run_ids"]
        uri = client.get_run(child).data.tags["textclf.model_uri"]
        line = next(x for x in printed.splitlines() if x.strip().startswith(name + " "))
        assert f"{parent}:{name}" in line and uri in line and child in line
        assert ("*" in line.split(f"{parent}:")[0]) == (name == best)
    assert main(["report", parent]) == 0
    assert f"{parent}:best" in capsys.readouterr().out
    # The printed URI is a reference predict accepts.
    best_uri = client.get_run(summary["variants"][best]["run_ids"][0]).data.tags["textclf.model_uri"]
    assert main(["predict", "--model", best_uri, "--format", "jsonl", "good fun"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["label"] in ("neg", "neu", "pos")


# --------------------------------------------------------------------------- start-up of predict / embed


def test_predict_from_a_folder_imports_neither_mlflow_nor_torch_dynamo(tmp_path):
    # A fresh interpreter: which modules a command imports is the state of one process.
    folder = _tiny_folder(tmp_path / "m")
    (tmp_path / "texts.txt").write_text("good fun\nbad film\n")
    statements = (
        "from textclf.cli.main import main\n"
        f"assert main(['predict', '--model', {str(folder)!r}, '--format', 'jsonl', 'good fun']) == 0\n"
        f"assert main(['embed', '--model', {str(folder)!r}, '--input', 'texts.txt', '--output', 'e.npy', '-q']) == 0"
    )
    heavy = ("mlflow", "torch._dynamo", "datasets", "sklearn", "matplotlib")
    assert imported_after(statements, heavy, cwd=tmp_path)[0] == []


def test_meta_model_validation_keeps_real_models_seeded_draws():
    import torch

    from textclf.models.classifier import TextClassifier
    from textclf.models.size import meta_model

    hp = {"vocab_size": 50, "embedding_dim": 6, "num_classes": 3, "hidden_size": 5}
    assert all(p.is_meta for p in meta_model(hp).parameters())
    torch.manual_seed(3)
    a = TextClassifier(**hp).state_dict()
    torch.manual_seed(3)
    emb = torch.empty(50, 6)
    torch.nn.init.normal_(emb)  # the draws nn.Embedding makes, then N(0, 0.1) over them, padding row zeroed
    torch.nn.init.normal_(emb, std=0.1)
    emb[0] = 0
    assert torch.equal(a["embedding.weight"], emb)


# --------------------------------------------------------------------------- model files: where, modes, ONNX sidecar


def test_train_without_output_says_the_cache_may_delete_the_folder(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", make_rows(60))
    args = [
        "train",
        "--set",
        "data.source=d.csv",
        "--set",
        "train.epochs=1",
        "--set",
        "embedding.dim=8",
        "--set",
        "encoder.hidden_size=8",
        "--set",
        "evaluate.latency_samples=0",
        "--metrics-out",
        "m.json",
    ]
    assert main(args) == 0
    printed = " ".join(capsys.readouterr().out.split())
    run_id = json.loads((tmp_path / "m.json").read_text())["run_id"]
    assert f"model: runs:/{run_id}" in printed and "cache prune" in printed and "--output" in printed
    assert main([*args, "--no-track"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "cache prune" in printed and "--output DIR" in printed
    assert main([*args, "--no-track", "--output", "kept"]) == 0
    assert "cache prune" not in capsys.readouterr().out


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_model_files_get_the_mode_new_files_get(tmp_path, umask):
    from textclf.models.folder import copy_model

    old = os.umask(umask)
    try:
        folder = _tiny_folder(tmp_path / "m")
        want = 0o666 & ~umask
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()}
        assert modes == dict.fromkeys(modes, want), modes
        os.chmod(folder / "model.safetensors", 0o600)  # a folder written before the fix
        copied = copy_model(folder, tmp_path / "exported", force=False)
        assert {stat.S_IMODE(f.stat().st_mode) for f in copied.iterdir()} == {want}
    finally:
        os.umask(old)


def test_onnx_sidecar_documents_the_text_cut_and_following_it_reproduces_textclf(tmp_path):
    pytest.importorskip("onnx")
    from textclf.models.folder import read_folder
    from textclf.models.onnx import export_onnx
    from textclf.serving.classifier import encode_texts

    folder = read_folder(_tiny_folder(tmp_path / "m", max_length=8))
    info = export_onnx(folder, tmp_path / "model.onnx", verify=False)
    pre = info["preprocess"]
    limit = pre["char_limit"]
    assert info["max_length"] == 8 and str(limit) in pre["steps"][0] and "8" in pre["steps"][2]
    # A text past the cut whose end would tokenize differently: the documented steps give textclf's ids.
    text = "good " * (limit // 5) + "x" * 7 + "movie fun bad"
    assert len(text) > limit
    tok = folder["tokenizer"]
    documented = (tok.encode(text[:limit]).ids[: info["max_length"]]) or [1]
    split = encode_texts(tok, [text], info["max_length"])
    assert split.ids.tolist() == documented


# --------------------------------------------------------------------------- shipped pipelines


def test_rt_slices_pipeline_is_shipped_and_does_what_the_readme_says(tmp_path):
    from textclf.pipeline.spec import find_pipeline, load_pipeline

    # The README runs it as `textclf run rt-slices.yaml` from a data folder, not the repository.
    assert find_pipeline("rt-slices.yaml") == REPO / "pipelines" / "rt-slices.yaml"
    pipe = load_pipeline("rt-slices.yaml", params_file=REPO / "params.yaml")
    assert list(pipe.variants) == ["lstm", "bilstm"] and pipe.spec.baseline == "lstm" and pipe.seeds == [1, 2, 3]
    data = pipe.variants["lstm"].config.data
    assert (data.source, data.train, data.validation) == (None, "rt_train.csv", "rt_val.csv")
    assert (
        pipe.variants["bilstm"].config.encoder.bidirectional and not pipe.variants["lstm"].config.encoder.bidirectional
    )
    with pytest.raises(ConfigError, match="not found"):
        find_pipeline("sub/rt-slices.yaml")  # a path is a path: only a bare file name falls back to the shipped ones


def test_every_pipeline_the_readme_names_is_shipped():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"textclf (?:run|train) ([\w-]+(?:\.ya?ml)?)", readme)) - {"PIPELINE"}
    shipped = {p.stem for p in (REPO / "pipelines").glob("*.y*ml")}
    missing = sorted(n for n in named if Path(n).stem not in shipped and not n.startswith("-"))
    assert not missing, f"README names pipelines that are not in pipelines/: {missing}"


def test_a_validation_file_beside_a_source_is_refused_not_ignored(tmp_path, capsys):
    # prepare splits data.source itself: a data.validation next to it used to be dropped without a word.
    code = main(["config", "show", "compare", "--set", "data.validation=val.csv"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err
    assert (
        "data.validation='val.csv'" in err and "data.source='builtin:reviews'" in err and "--set data.train=FILE" in err
    )
