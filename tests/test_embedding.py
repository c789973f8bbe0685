"""The embed stage and the pretrained-vocabulary extension: vector files,
alignment, coverage, frozen extension rows, and a model that carries them."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from test_tokenize import prepared

import textclf.text.embedding as E
import textclf.text.tokenize as T
from textclf.core.errors import ConfigError
from textclf.models.classifier import TextClassifier
from textclf.text.config import TokenizerConfig


def write_vectors(path, vectors: dict[str, list[float]], header: bool = False):
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [w + " " + " ".join(f"{x:g}" for x in v) for w, v in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


VECS = {
    "the": [1, 0, 0],
    "Good": [0, 1, 0],
    "movie": [0, 0, 1],
    "superb": [2, 2, 2],
    "e.g.": [3, 3, 3],
    "dreadful": [4, 4, 4],
}


@pytest.mark.parametrize("header", [False, True], ids=["glove", "word2vec"])
def test_text_vectors_load_in_both_formats(tmp_path, header):
    v = E.load_text_vectors(write_vectors(tmp_path / "v.txt", VECS, header=header))
    assert v.words == list(VECS) and v.dim == 3
    np.testing.assert_array_equal(v.matrix[3], [2, 2, 2])
    assert E.pretrained_words(str(tmp_path / "v.txt")) == list(VECS)


@pytest.mark.parametrize(
    "content, expect",
    [
        ("a 1 2 3\nb 1 2\n", "line 2 has 2 values, expected 3"),
        ("a 1 2\nb x y\n", "line 2: non-numeric"),
        ("\n\n", "no vectors"),
    ],
)
def test_malformed_vector_files_name_the_line(tmp_path, content, expect):
    (tmp_path / "v.txt").write_text(content)
    with pytest.raises(ConfigError, match=expect):
        E.load_text_vectors(tmp_path / "v.txt")


def test_alignment_exact_then_lowercase_with_coverage(caplog):
    vectors = E.Vectors(words=["Good", "good", "Movie"], matrix=np.array([[1, 1], [2, 2], [3, 3]], dtype=np.float32))
    vocab = {"[PAD]": 0, "[UNK]": 1, "Good": 2, "movie": 3, "zzz": 4}
    counts = np.array([0, 5, 6, 3, 1])
    with caplog.at_level(logging.WARNING):
        m, cov = E.align(vocab, vectors, dim=2, seed=0, token_counts=counts)
    np.testing.assert_array_equal(m[2], [1, 1])  # exact match wins over the lower-case one
    np.testing.assert_array_equal(m[3], [3, 3])  # "movie" found as "Movie" lower-cased
    assert (m[0] == 0).all() and not (m[4] == 0).all()  # padding zero; unmatched keeps a random row
    assert cov["vocab_coverage"] == pytest.approx(2 / 3, abs=1e-4) and cov["vocab_covered"] == 2
    assert cov["token_coverage"] == pytest.approx(9 / 10)  # [UNK]'s count is not held against coverage
    assert not caplog.records
    with pytest.raises(ConfigError, match="embedding.dim=2"):
        E.align(vocab, vectors, dim=3, seed=0)
    with caplog.at_level(logging.WARNING):
        E.align(
            {"[PAD]": 0, "[UNK]": 1, "##ab": 2, "##cd": 3}, vectors, dim=2, seed=0, token_counts=np.array([0, 0, 4, 4])
        )
    assert "cover only 0%" in caplog.text and "tokenizer.kind=word" in caplog.text


TRAIN = ["the good movie", "the good film", "a good movie", "a dull film"] * 3 + ["a rare superb movie"]
VALID = ["the dreadful movie", "a superb film e.g. fine"]


def test_extension_appends_only_missing_single_piece_words():
    data = prepared(TRAIN, VALID, ["good"])
    cfg = TokenizerConfig(kind="word", min_frequency=2, lowercase=True)
    plain = T.tokenize(data, cfg)
    words = list(VECS) + ["Superb", "unseen"]
    out = T.tokenize(data, cfg, extend_with=words, extend_limit=3)
    base, vocab = plain.tokenizer.get_vocab(), out.tokenizer.get_vocab()
    assert all(vocab[w] == i for w, i in base.items())  # the trained ids never move
    n = len(base)
    # In file order: "the"/"good"(as "Good")/"movie" are already known, "e.g." is several pieces,
    # "superb" (seen once, below min_frequency) and "dreadful" (never seen) are added, "Superb"
    # normalises to a duplicate; the limit of 3 stops at "unseen".
    assert {w: i for w, i in vocab.items() if i >= n} == {"superb": n, "dreadful": n + 1, "unseen": n + 2}
    assert out.stats["trained_vocab_size"] == n and out.stats["vocab_extension"] == 3
    assert out.stats["vocab_size"] == n + 3
    # Text outside the trained vocabulary now reaches the new ids instead of [UNK]...
    va = out.splits["validation"]
    assert va.ids[va.offsets[0] + 1] == n + 1  # "dreadful"
    assert out.stats["splits"]["validation"]["unk_rate"] < plain.stats["splits"]["validation"]["unk_rate"]
    # ...and so does the training text that had too few occurrences to be learned.
    assert n in out.splits["train"].ids and n not in plain.splits["train"].ids
    assert T.extend_vocabulary(out.tokenizer, ["superb"], 10)[1] == 0  # nothing left to add
    bpe = T.tokenize(data, TokenizerConfig(kind="bpe", vocab_size=60, min_frequency=1))
    with pytest.raises(ConfigError, match="tokenizer.kind=word"):
        T.extend_vocabulary(bpe.tokenizer, words, 3)


def test_frozen_rows_look_up_like_one_table_but_never_train():
    torch.manual_seed(0)
    model = TextClassifier(vocab_size=12, embedding_dim=4, num_classes=2, frozen_rows=5, hidden_size=6)
    full = torch.randn(12, 4)
    full[0] = 0
    model.embedding.load_matrix(full)
    assert model.embedding.num_embeddings == 12 and model.embedding.weight.shape == (7, 4)
    assert "embedding.frozen" in model.state_dict() and all("frozen" not in n for n, _ in model.named_parameters())
    tokens = torch.tensor([[3, 7, 11, 0], [6, 8, 1, 0]])
    torch.testing.assert_close(model.embedding(tokens), torch.nn.functional.embedding(tokens, full))
    before = model.embedding.frozen.clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        _, loss = model(tokens, torch.tensor([3, 3]), torch.tensor([0, 1]))
        opt.zero_grad()
        loss.backward()
        assert model.embedding.weight.grad[0].abs().sum() == 0  # padding
        opt.step()
    assert torch.equal(model.embedding.frozen, before)
    assert not torch.equal(model.embedding.weight[3], full[3])  # while the trainable rows do learn
    with pytest.raises(ConfigError, match="model.frozen_rows"):
        TextClassifier(vocab_size=5, embedding_dim=2, num_classes=2, frozen_rows=5)


def test_frozen_tail_gets_no_gradient_through_the_clamped_row():
    torch.manual_seed(0)
    model = TextClassifier(vocab_size=6, embedding_dim=3, num_classes=2, frozen_rows=2, hidden_size=4)
    # every token is in the frozen tail: no trainable row may receive a gradient
    _, loss = model(torch.tensor([[4, 5, 4]]), torch.tensor([3]), torch.tensor([1]))
    loss.backward()
    assert model.embedding.weight.grad.abs().sum() == 0


def test_train_cli_extends_the_vocabulary_with_pretrained_words(tmp_path, csv_file):
    from conftest import WORDS

    from textclf import load_model
    from textclf.cli.main import main

    # Vectors for every training word, plus words training never saw.
    rng = np.random.default_rng(0)
    words = ["movie"] + [w for ws in WORDS.values() for w in ws] + ["dreadful", "marvellous", "well-made"]
    write_vectors(tmp_path / "v.txt", {w: rng.normal(size=8).round(3).tolist() for w in words})
    args = [
        "train",
        "--no-track",
        "--quiet",
        "--set",
        f"data.source={csv_file}",
        "--set",
        "train.epochs=2",
        "--set",
        f"embedding.pretrained={tmp_path / 'v.txt'}",
        "--set",
        "embedding.dim=8",
        "--set",
        "encoder.hidden_size=8",
        "--output",
        str(tmp_path / "m"),
        "--metrics-out",
        str(tmp_path / "m.json"),
    ]
    assert main(args) == 0
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    clf = load_model(tmp_path / "m")
    vocab = clf.tokenizer.get_vocab()
    n = cfg["model"]["vocab_size"] - cfg["model"]["frozen_rows"]
    # the texts say "movie0", "movie1", ... never "movie"; "well-made" is never one token
    assert sorted(w for w, i in vocab.items() if i >= n) == ["dreadful", "marvellous", "movie"]
    module = clf.model
    row = module.embedding(torch.tensor([[vocab["dreadful"]]]))[0, 0]
    expected = E.load_text_vectors(tmp_path / "v.txt").matrix[words.index("dreadful")]
    np.testing.assert_allclose(row.detach().numpy(), expected, atol=1e-6)  # the pretrained vector, untouched
    assert clf.predict(["a dreadful movie"]) and clf.predict(["marvellous"])
    # ONNX carries the frozen rows too (the check feeds ids from the whole vocabulary)
    from textclf.models.folder import read_folder
    from textclf.models.onnx import export_onnx

    info = export_onnx(read_folder(tmp_path / "m"), tmp_path / "model.onnx")
    assert info["verified"]["checked"]
    # the trainable-parameter count excludes the frozen rows
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["params"] == sum(p.numel() for p in module.parameters())
    # coverage is reported with the metrics: every trained word has a vector here
    assert metrics["embedding_vocab_extension"] == 3 and metrics["embedding_vocab_coverage"] == 1.0
    assert 0.5 < metrics["embedding_token_coverage"] <= 1.0
    # Fine-tuning from it keeps its tokenizer and its frozen rows (the source's vectors)
    assert (
        main(
            [
                "train",
                "--no-track",
                "--quiet",
                "--set",
                f"data.source={csv_file}",
                "--set",
                "train.epochs=1",
                "--set",
                f"encoder.init_from={tmp_path / 'm'}",
                "--set",
                "embedding.dim=8",
                "--set",
                "encoder.hidden_size=8",
                "--output",
                str(tmp_path / "ft"),
            ]
        )
        == 0
    )
    tuned = load_model(tmp_path / "ft")
    assert tuned.tokenizer.get_vocab() == vocab
    torch.testing.assert_close(tuned.model.embedding.frozen, module.embedding.frozen)
    # extend_vocab=0 is the old behaviour: the unseen words are [UNK]
    assert main(args[:-4] + ["--set", "embedding.extend_vocab=0", "--output", str(tmp_path / "m0")]) == 0
    plain = json.loads((tmp_path / "m0" / "config.json").read_text())
    assert plain["model"]["frozen_rows"] == 0 and plain["model"]["vocab_size"] == n
