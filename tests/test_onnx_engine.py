"""A folder exported with --onnx answers predict / embed on onnxruntime, without importing torch.

The ONNX graph stands for the weights only while onnx.json's hashes match the
folder's model.safetensors and tokenizer.json; otherwise ``auto`` falls back to
torch and ``onnx`` refuses, saying why.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from conftest import imported_after

from textclf.cli.main import main

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'textclf[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'textclf[onnx]')")

TEXTS = ["good fun movie", "bad dull film", "", "good " * 40, "zzz unknown words"]


def _exported(tmp_path, **hp):
    """A small random-weight folder (bidirectional, two layers: the hardest graph), exported with --onnx."""
    from textclf.models.classifier import TextClassifier
    from textclf.models.folder import save_neural
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import train_tokenizer

    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["good fun movie", "bad dull film", "a plot"]])
    args = {"hidden_size": 5, "layers": 2, "bidirectional": True, "pooling": "mean"} | hp
    model = TextClassifier(vocab_size=tok.get_vocab_size(), embedding_dim=4, num_classes=3, **args)
    src = save_neural(
        tmp_path / "m",
        model=model,
        tokenizer=tok,
        label_names=["neg", "mid", "pos"],
        config={"kind": "neural", "tokenizer": {"max_length": 12}},
    )
    assert main(["export", "-q", "--model", str(src), "--output", str(tmp_path / "ex"), "--onnx"]) == 0
    return src, tmp_path / "ex"


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_onnx_engine_gives_torchs_probabilities_and_embeddings(tmp_path, cell):
    import textclf

    _, ex = _exported(tmp_path, cell=cell)
    onnx, torch_ = textclf.load_model(str(ex)), textclf.load_model(str(ex), engine="torch")
    assert onnx.engine == "onnx" and torch_.engine == "torch"
    np.testing.assert_allclose(onnx.predict_proba(TEXTS), torch_.predict_proba(TEXTS), atol=1e-5)
    assert onnx.predict(TEXTS) == torch_.predict(TEXTS)
    e_onnx, e_torch = textclf.load_encoder(str(ex)), textclf.load_encoder(str(ex), engine="torch")
    assert e_onnx.dim == e_torch.dim == 10  # 5 hidden units x 2 directions
    np.testing.assert_allclose(e_onnx.embed(TEXTS), e_torch.embed(TEXTS), atol=1e-5)
    assert onnx.predict_proba([]).shape == (0, 3)


def test_predict_from_an_exported_folder_never_imports_torch(tmp_path):
    _, ex = _exported(tmp_path)
    statements = (
        "from textclf.cli.main import main\n"
        f"assert main(['predict', '--model', {str(ex)!r}, 'good fun movie', '--format', 'jsonl']) == 0"
    )
    imported, printed = imported_after(statements, ("torch",))
    assert imported == []
    assert json.loads(printed.splitlines()[0])["label"] in ("neg", "mid", "pos")


def test_a_graph_that_no_longer_matches_the_weights_is_not_used(tmp_path, capsys):
    import textclf
    from textclf.models.classifier import TextClassifier
    from textclf.models.folder import read_folder, save_neural

    src, ex = _exported(tmp_path)
    # Other weights of the same shapes written into the exported folder (a retrained model copied over it).
    folder = read_folder(src)
    other = TextClassifier(**folder["config"]["model"])
    save_neural(
        tmp_path / "other", model=other, tokenizer=folder["tokenizer"], label_names=folder["labels"],
        config={"kind": "neural", "tokenizer": {"max_length": 12}},
    )  # fmt: skip
    (ex / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    clf = textclf.load_model(str(ex))
    assert clf.engine == "torch"  # auto: the stale graph is ignored, the weights answer
    want = textclf.load_model(str(tmp_path / "other"), engine="torch").predict_proba(TEXTS)
    np.testing.assert_array_equal(clf.predict_proba(TEXTS), want)
    assert main(["predict", "--model", str(ex), "--engine", "onnx", "good"]) == 2
    err = capsys.readouterr().err
    assert "exported from another model.safetensors" in err and "re-export" in err


def test_engine_onnx_without_a_graph_is_a_clear_error(tmp_path, capsys):
    src, _ = _exported(tmp_path)
    assert main(["predict", "--model", str(src), "--engine", "onnx", "good"]) == 2
    err = capsys.readouterr().err
    assert "holds no model.onnx" in err and "textclf export --onnx" in err
    assert main(["predict", "--model", str(src), "--engine", "gpu", "good"]) == 2
    assert "engine must be one of auto, torch, onnx" in capsys.readouterr().err.replace("\n", " ")


def test_a_folder_read_without_weights_still_checks_them_before_torch_runs(tmp_path):
    """weights=False defers the checks that need torch; building the model runs them first."""
    from textclf.core.errors import ModelError
    from textclf.models.folder import build_model, read_folder

    src, _ = _exported(tmp_path)
    cfg = json.loads((src / "config.json").read_text())
    cfg["model"]["hidden_size"] = 7  # the weights hold 5 units
    (src / "config.json").write_text(json.dumps(cfg))
    folder = read_folder(src, weights=False)
    assert "state" not in folder
    with pytest.raises(ModelError, match="model.safetensors"):
        build_model(folder)
    with pytest.raises(ModelError, match="model.safetensors"):
        read_folder(src)


def test_the_torch_free_hyper_parameter_list_is_the_classifiers():
    from textclf.models.checks import HPARAMS
    from textclf.models.classifier import TextClassifier

    assert HPARAMS == tuple(p for p in inspect.signature(TextClassifier.__init__).parameters if p != "self")
