"""The tokenize stage: every tokenizer kind, train-only vocabulary, truncation,
normalisation, statistics and the Dataset.map cache."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest

import textclf.text.tokenize as T
from textclf.data.prepare import PreparedData, fingerprint
from textclf.text.config import TokenizerConfig

KINDS = ["word", "bpe", "wordpiece", "unigram", "char"]


def prepared(train: list[str], validation: list[str], test: list[str]) -> PreparedData:
    """A PreparedData with labels alternating 0/1 (the tokenizer ignores them)."""
    splits = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(len(texts))]})
            for name, texts in (("train", train), ("validation", validation), ("test", test))
        }
    )
    return PreparedData(
        splits=splits,
        label_names=["a", "b"],
        fingerprints={s: fingerprint(splits[s]) for s in splits},
        sources={s: "memory" for s in splits},
    )


TRAIN = [
    f"the {w} movie was {v} and {w}"
    for w in ("good", "bad", "fine", "dull")
    for v in ("long", "short", "quiet", "loud")
] * 2
VALID = ["the good movie was short", "the dull movie was loud and long"]
TEST = ["the zyxwvut movie was good", "qqqq"]


@pytest.fixture
def data():
    return prepared(TRAIN, VALID, TEST)


def split_ids(split, i: int) -> list[int]:
    return split.ids[split.offsets[i] : split.offsets[i + 1]].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_trains_and_encodes(data, kind):
    out = T.tokenize(data, TokenizerConfig(kind=kind, vocab_size=200, min_frequency=1, max_length=64))
    vocab = out.tokenizer.get_vocab()
    assert vocab[T.PAD] == T.PAD_ID == 0 and vocab[T.UNK] == T.UNK_ID == 1
    assert out.stats["kind"] == kind
    assert out.stats["vocab_size"] == out.tokenizer.get_vocab_size() <= 200
    for name, texts in (("train", TRAIN), ("validation", VALID), ("test", TEST)):
        split = out.splits[name]
        assert len(split) == len(texts)
        assert split.labels.tolist() == [i % 2 for i in range(len(texts))]
        assert split.ids.min() >= 1 and split.ids.max() < out.stats["vocab_size"]  # PAD never appears in data
        for i, text in enumerate(texts[:3]):
            assert split_ids(split, i) == out.tokenizer.encode(text).ids[:64]
    # Nothing in train is unknown to a tokenizer trained on train.
    assert out.stats["splits"]["train"]["unk_rate"] == 0.0
    assert out.stats["splits"]["test"]["unk_rate"] > 0.0


@pytest.mark.parametrize("kind", ["word", "bpe", "wordpiece", "unigram"])
def test_vocabulary_comes_from_train_only(kind):
    # 'zyxwvut' is frequent in validation and test but absent from train.
    data = prepared(TRAIN, ["zyxwvut zyxwvut"] * 20, ["the zyxwvut movie"] * 20)
    out = T.tokenize(data, TokenizerConfig(kind=kind, vocab_size=500, min_frequency=1))
    vocab = out.tokenizer.get_vocab()
    assert not any("zyxwvut" in tok.lstrip("▁#") and len(tok.lstrip("▁#")) > 1 for tok in vocab if "zyx" in tok)
    if kind == "word":
        assert split_ids(out.splits["test"], 0)[1] == T.UNK_ID
        assert out.splits["validation"].ids.tolist() == [T.UNK_ID] * 40
    else:  # subword kinds: the unseen letters z/y/x/w/v/t... fall back to [UNK] pieces
        assert T.UNK_ID in split_ids(out.splits["test"], 0)


def test_char_kind_is_one_token_per_character_with_unknown_characters(data):
    out = T.tokenize(data, TokenizerConfig(kind="char", vocab_size=100, min_frequency=1, lowercase=False))
    enc = out.tokenizer.encode("the good")
    assert enc.tokens == list("the good")
    assert out.tokenizer.encode("Z").ids == [T.UNK_ID]  # no capital letters in train


def test_min_frequency_and_vocab_size(data):
    rare = prepared(TRAIN + ["onlyonce"], VALID, TEST)
    kept = T.tokenize(rare, TokenizerConfig(kind="word", min_frequency=1)).tokenizer.get_vocab()
    dropped = T.tokenize(rare, TokenizerConfig(kind="word", min_frequency=2)).tokenizer.get_vocab()
    assert "onlyonce" in kept and "onlyonce" not in dropped
    small = T.tokenize(data, TokenizerConfig(kind="word", vocab_size=10, min_frequency=1))
    assert small.stats["vocab_size"] == 10


def test_lowercase_and_nfkc_normalisation():
    data = prepared(["Good movie", "ｇｏｏｄ film", "GOOD day"] * 4, ["good"], ["ＧＯＯＤ"])
    low = T.tokenize(data, TokenizerConfig(kind="word", min_frequency=1, lowercase=True))
    # Full-width letters are NFKC-normalised, then lower-cased: all three spellings are one token.
    assert low.tokenizer.encode("ＧＯＯＤ").ids == low.tokenizer.encode("good").ids == low.tokenizer.encode("Good").ids
    assert low.stats["splits"]["test"]["unk_rate"] == 0.0
    cased = T.tokenize(data, TokenizerConfig(kind="word", min_frequency=1, lowercase=False))
    assert cased.tokenizer.encode("Good").ids != cased.tokenizer.encode("GOOD").ids
    assert cased.tokenizer.encode("ｇｏｏｄ").ids == cased.tokenizer.encode("good").ids  # NFKC still applies


def test_truncation_and_length_stats():
    texts = [" ".join(["w"] * n) for n in (2, 4, 6, 8, 10)] * 2
    data = prepared(texts, texts[:5], texts[:4])
    out = T.tokenize(data, TokenizerConfig(kind="word", min_frequency=1, max_length=5))
    train = out.splits["train"]
    assert train.lengths.tolist() == [min(n, 5) for n in (2, 4, 6, 8, 10)] * 2
    assert split_ids(train, 4) == out.tokenizer.encode(texts[4]).ids[:5]
    stats = out.stats["splits"]
    assert stats["train"]["truncated_rate"] == pytest.approx(0.6)  # 6, 8 and 10 words exceed 5
    assert stats["test"]["truncated_rate"] == pytest.approx(0.5)
    assert stats["train"]["texts"] == 10 and stats["train"]["tokens"] == int(train.lengths.sum())
    length = stats["train"]["length"]
    assert length["max"] == 5 and length["p50"] == float(np.percentile(train.lengths, 50))
    assert set(length) >= {"mean", "p50", "p90", "p95", "p99", "max"}


def test_unknown_rate_counts_unknown_tokens():
    data = prepared(["a b c d"] * 4, ["a b x y"], ["q r s t", "a b c d"])
    out = T.tokenize(data, TokenizerConfig(kind="word", min_frequency=1))
    assert out.stats["splits"]["validation"]["unk_rate"] == pytest.approx(0.5)
    assert out.stats["splits"]["test"]["unk_rate"] == pytest.approx(0.5)


def test_text_that_normalises_to_nothing_still_has_one_token():
    data = prepared(["a b"] * 4, ["a"], ["   "])
    out = T.tokenize(data, TokenizerConfig(kind="word", min_frequency=1))
    assert split_ids(out.splits["test"], 0) == [T.UNK_ID]


# --------------------------------------------------------------------------- caching


def test_rerun_reads_the_map_cache_instead_of_tokenizing(data, tmp_path, monkeypatch):
    calls = []
    real = T._encode_batch

    def counting(batch, **kw):
        calls.append(len(batch["text"]))
        return real(batch, **kw)

    monkeypatch.setattr(T, "_encode_batch", counting)
    config = TokenizerConfig(kind="word", min_frequency=1)
    first = T.tokenize(data, config)
    assert sum(calls) == len(TRAIN) + len(VALID) + len(TEST)
    cache = Path(tmp_path / ".textclf" / "datasets" / "encoded")
    files = sorted(p.name for p in cache.glob("*.arrow"))
    assert len(files) == 3 and {f.split("-")[0] for f in files} == {"train", "validation", "test"}

    calls.clear()
    second = T.tokenize(data, config)
    assert calls == []
    assert sorted(p.name for p in cache.glob("*.arrow")) == files
    for s in ("train", "validation", "test"):
        assert np.array_equal(first.splits[s].ids, second.splits[s].ids)
        assert np.array_equal(first.splits[s].offsets, second.splits[s].offsets)
    assert second.stats == first.stats

    # A different max_length is a different encoding: tokenized again, into new files.
    T.tokenize(data, TokenizerConfig(kind="word", min_frequency=1, max_length=3))
    assert sum(calls) == len(TRAIN) + len(VALID) + len(TEST)
    assert len(list(cache.glob("*.arrow"))) == 6


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_rerun_reuses_the_trained_tokenizer(data, kind, monkeypatch):
    # WordPiece / Unigram training is not bit-for-bit repeatable in `tokenizers`;
    # a re-run must still get the same tokenizer (and so hit the encoding cache).
    config = TokenizerConfig(kind=kind, vocab_size=120, min_frequency=1)
    first = T.tokenize(data, config)
    trained = []
    real = T.train_tokenizer
    monkeypatch.setattr(T, "train_tokenizer", lambda *a, **kw: trained.append(1) or real(*a, **kw))
    second = T.tokenize(data, config)
    assert trained == []
    assert T.tokenizer_hash(first.tokenizer) == T.tokenizer_hash(second.tokenizer)


def test_tokenizer_hash_is_stable_across_save_and_load(data, tmp_path):
    for kind in KINDS:
        tok = T.train_tokenizer(TokenizerConfig(kind=kind, vocab_size=120, min_frequency=1), iter([TRAIN]))
        tok.save(str(tmp_path / f"{kind}.json"))
        loaded = T.Tokenizer.from_file(str(tmp_path / f"{kind}.json"))
        assert T.tokenizer_hash(tok) == T.tokenizer_hash(loaded), kind
