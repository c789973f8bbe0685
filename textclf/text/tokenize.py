"""The tokenize stage: train a Hugging Face ``tokenizers`` tokenizer on the
training split only, then encode every split.

``tokenizer.kind``:

* ``word``      WordLevel over whitespace + punctuation pieces (the classic RNN setup)
* ``bpe``       byte-pair encoding over the same pieces
* ``wordpiece`` BERT-style WordPiece
* ``unigram``   SentencePiece-style unigram LM
* ``char``      one token per character

Texts are cut to ``tokenizer.max_length`` × :data:`MAX_CHARS_PER_TOKEN`
characters before they are tokenized (training the tokenizer, encoding,
serving), so one huge text costs no more than a long one; a cut text counts
as truncated.

All normalise with NFKC (and lower-case when ``tokenizer.lowercase``). Id 0 is
``[PAD]`` and id 1 is ``[UNK]`` for every kind, so padding and the
unknown-token rate mean the same thing everywhere. A token that only occurs in
validation or test maps to ``[UNK]``: the vocabulary never sees held-out data.

Encoding runs through ``Dataset.map(batched=True)`` with a cache file whose
name is derived from the split's content fingerprint and the tokenizer's hash,
so re-encoding the same data with the same tokenizer reads the cached Arrow
file instead of tokenizing again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from textclf.core.disk import write_atomically
from textclf.core.errors import ConfigError, ModelError
from textclf.data.checks import DataWarning
from textclf.data.summary import percentiles
from textclf.text.batching import EncodedSplit
from textclf.text.config import TokenizerConfig

# Texts are cut to max_length × this many characters before tokenizing: a huge text
# was otherwise tokenized whole, at many times its size in memory, to keep its first
# max_length tokens (docs/benchmarks.md, "Work without bound from one input"). 64 characters a
# token is generous (English words average ~5, a char tokenizer takes 1), so a cut
# text still gives max_length tokens unless its tokens average over 64 characters
# (e.g. long runs of characters without a separator); such a text ends at the cut.
MAX_CHARS_PER_TOKEN = 64

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
SPECIALS = [PAD, UNK]


@contextlib.contextmanager
def tokenizer_failures(what: str, fix: str) -> Iterator[None]:
    """Turn any failure inside the ``tokenizers`` library into a :class:`ModelError` saying ``what`` failed and ``fix``.

    A Rust panic reaches Python as ``pyo3_runtime.PanicException``, a
    ``BaseException`` that ``except Exception`` lets through with a backtrace;
    it is caught here too. Interrupts and exits pass untouched.
    """
    try:
        yield
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{what} ({reason}). {fix}") from None


def encode_batch(
    tok: Tokenizer,
    texts: list[str],
    fix: str = "The tokenizer is corrupt or was not written by textclf; retrain or re-export the model.",
):
    """``tok.encode_batch_fast(texts)``; a tokenizer failure is a ModelError naming the first text it fails on."""
    try:
        with tokenizer_failures("the tokenizer failed", fix):
            return tok.encode_batch_fast(texts) if hasattr(tok, "encode_batch_fast") else tok.encode_batch(texts)
    except ModelError as batch_error:
        for i, text in enumerate(texts):  # the failing path only: find which text, so the message can name it
            with tokenizer_failures(f"the tokenizer failed on text {i + 1} of {len(texts)} ({text[:40]!r}...)", fix):
                tok.encode(text)
        raise batch_error from None


def build_tokenizer(cfg: TokenizerConfig) -> tuple[Tokenizer, Any]:
    """An untrained tokenizer and its trainer for ``cfg.kind``."""
    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if cfg.lowercase else [])
    common = dict(vocab_size=cfg.vocab_size, special_tokens=SPECIALS, show_progress=False)
    if cfg.kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(min_frequency=cfg.min_frequency, **common)
    elif cfg.kind == "bpe":
        # fuse_unk: a run of unseen characters is one [UNK], not one per character.
        tok = Tokenizer(models.BPE(unk_token=UNK, fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(min_frequency=cfg.min_frequency, **common)
    elif cfg.kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(min_frequency=cfg.min_frequency, **common)
    elif cfg.kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(unk_token=UNK, **common)
    elif cfg.kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        # Every character (spaces included) is its own piece.
        # (Oniguruma has no (?s) flag; [\s\S] matches any character, newlines included.)
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        trainer = trainers.WordLevelTrainer(min_frequency=cfg.min_frequency, **common)
    else:  # the schema already rejects this; kept so a new kind can't be half-added
        raise ConfigError(f"tokenizer.kind must be one of word, bpe, wordpiece, unigram, char. Got {cfg.kind!r}.")
    tok.normalizer = normalizers.Sequence(norm)
    return tok, trainer


def train_tokenizer(cfg: TokenizerConfig, texts_iter, length: int | None = None) -> Tokenizer:
    """Train on an iterator of text batches (the training split only)."""
    tok, trainer = build_tokenizer(cfg)
    tok.train_from_iterator(texts_iter, trainer=trainer, length=length)
    # Round-trip once: a freshly trained Unigram serialises its scores slightly
    # differently from the same tokenizer loaded back, which would change its hash.
    tok = Tokenizer.from_str(tok.to_str())
    vocab = tok.get_vocab()
    if vocab.get(PAD) != PAD_ID or vocab.get(UNK) != UNK_ID:
        raise RuntimeError(f"special tokens landed at unexpected ids: {PAD}={vocab.get(PAD)}, {UNK}={vocab.get(UNK)}")
    return tok


def extend_vocabulary(tok: Tokenizer, words, limit: int) -> tuple[Tokenizer, int]:
    """Append up to ``limit`` of ``words`` (in their order) that ``tok`` would emit whole but maps to [UNK].

    For a word-level tokenizer paired with pretrained vectors: ``words`` are the
    vectors' vocabulary, most frequent first. Each is normalised as the
    tokenizer normalises text (NFKC, lower-case) and kept only if the
    pre-tokenizer leaves it as one piece, so no id is spent on a word the
    tokenizer can never produce. New ids follow the trained ones, so the
    trained vocabulary keeps its ids. Returns (tokenizer, words added).
    """
    vocab = tok.get_vocab()
    data = json.loads(tok.to_str())
    if data["model"]["type"] != "WordLevel":
        raise ConfigError(
            f"embedding.extend_vocab needs tokenizer.kind=word, not a {data['model']['type']} tokenizer; set embedding.extend_vocab=0."
        )
    norm, pre = tok.normalizer, tok.pre_tokenizer
    added: dict[str, int] = {}
    next_id = len(vocab)
    for w in words:
        if len(added) >= limit:
            break
        w = norm.normalize_str(w) if norm is not None else w
        if not w or w in vocab or w in added:
            continue
        pieces = pre.pre_tokenize_str(w) if pre is not None else [(w, None)]
        if len(pieces) != 1 or pieces[0][0] != w:
            continue
        added[w] = next_id
        next_id += 1
    if not added:
        return tok, 0
    data["model"]["vocab"].update(added)
    return Tokenizer.from_str(json.dumps(data)), len(added)


def tokenizer_hash(tok: Tokenizer) -> str:
    return hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def _from_str(tokenizer_json: str) -> Tokenizer:
    return Tokenizer.from_str(tokenizer_json)


def char_limit(max_length: int) -> int:
    """Characters of a text kept before tokenizing it for ``max_length`` tokens."""
    return max_length * MAX_CHARS_PER_TOKEN


def cut_texts(texts, max_length: int) -> tuple[list[str], list[bool]]:
    """(texts cut to :func:`char_limit` characters, which of them were cut)."""
    limit = char_limit(max_length)
    texts = ["" if t is None else str(t) for t in texts]
    cut = [len(t) > limit for t in texts]
    return ([t[:limit] if c else t for t, c in zip(texts, cut)] if any(cut) else texts), cut


def _encode_batch(batch: dict[str, list], tokenizer_json: str, max_length: int) -> dict[str, list]:
    # A plain function of (batch, json string, int) so that datasets can hash it
    # stably; a Tokenizer object with mutable state would defeat the map cache.
    tok = _from_str(tokenizer_json)
    texts, cut = cut_texts(batch["text"], max_length)
    encs = encode_batch(tok, texts)
    # An empty encoding (e.g. only characters the normaliser removes) becomes
    # one [UNK] so every sequence has length >= 1.
    ids = [e.ids or [UNK_ID] for e in encs]
    # A cut text counts as truncated, its length as at least max_length + 1 (a lower
    # bound: the tokens past the cut were never counted).
    full = [max(len(x), max_length + 1) if c else len(x) for x, c in zip(ids, cut)]
    return {
        "input_ids": [x[:max_length] if len(x) > max_length else x for x in ids],
        "full_length": full,
    }


@dataclass
class Tokenized:
    """Output of the tokenize stage."""

    tokenizer: Tokenizer
    splits: dict[str, EncodedSplit]
    stats: dict[str, Any]


def encode_dataset(ds, tok: Tokenizer, max_length: int, cache_file: str | None = None, desc: str = "tokenize"):
    """``Dataset.map`` the tokenizer over a split; returns a Dataset with input_ids / full_length."""
    return ds.map(
        _encode_batch,
        batched=True,
        batch_size=2000,
        fn_kwargs={"tokenizer_json": tok.to_str(), "max_length": max_length},
        remove_columns=[c for c in ds.column_names if c != "label"],
        cache_file_name=cache_file,
        load_from_cache_file=cache_file is not None,
        desc=desc,
    )


def to_encoded_split(ds) -> EncodedSplit:
    """Arrow list column -> CSR arrays, zero-copy where Arrow allows."""
    table = ds.with_format(None).data.table if ds._indices is None else ds.flatten_indices().data.table
    col = table.column("input_ids").combine_chunks()
    offsets = col.offsets.to_numpy().astype(np.int64)
    ids = col.values.to_numpy(zero_copy_only=False).astype(np.int32)
    # A sliced list array keeps its parent's offsets: rebase them.
    ids = ids[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    labels = table.column("label").to_numpy().astype(np.int64)
    return EncodedSplit(ids=ids, offsets=offsets, labels=labels)


def _trained_tokenizer(data, cfg: TokenizerConfig, store: Path) -> Tokenizer:
    """Train on the training split, or reuse the tokenizer trained before on the same content and config.

    Reuse matters beyond speed: the WordPiece and Unigram trainers of
    ``tokenizers`` break ties in hash-map order, so retraining can yield a
    different vocabulary, and with it a different tokenizer hash that would
    miss the encoding cache below.
    """
    from textclf.core.code import code_fingerprint

    key = hashlib.sha256(
        json.dumps(
            {
                "train": data.fingerprints["train"],
                "tokenizer": cfg.model_dump(mode="json"),
                "code": code_fingerprint(__name__),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    path = store / f"{cfg.kind}-{key}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    train = data.splits["train"]
    # Cut as for encoding: what lies past the cut is never read by the model, and counting its words costs memory.
    batches = (cut_texts(b["text"], cfg.max_length)[0] for b in train.select_columns(["text"]).iter(batch_size=2000))
    tok = train_tokenizer(cfg, batches, length=len(train))
    write_atomically(path, lambda tmp: tok.save(str(tmp)))  # a concurrent run never reads half a file
    return tok


def encode_splits(
    data, tok: Tokenizer, max_length: int, cache_dir: Path
) -> tuple[dict[str, EncodedSplit], dict[str, Any]]:
    """Encode train / validation / test with ``tok`` (map-cached per split fingerprint) and report their stats."""
    from textclf.core.code import code_fingerprint

    th = tokenizer_hash(tok)
    cache_dir.mkdir(parents=True, exist_ok=True)
    splits, stats = {}, {"vocab_size": tok.get_vocab_size(), "splits": {}}
    for name in ("train", "validation", "test"):
        # The code is part of the name: an edited encoder must not read what the old one wrote.
        cache_file = str(
            cache_dir / f"{name}-{data.fingerprints[name]}-{th}-{max_length}-{code_fingerprint(__name__)}.arrow"
        )
        enc = encode_dataset(data.splits[name], tok, max_length, cache_file, desc=f"tokenize {name}")
        split = to_encoded_split(enc)
        full = enc.data.table.column("full_length").to_numpy()
        n_tok = max(int(split.num_tokens), 1)
        stats["splits"][name] = {
            "texts": len(split),
            "tokens": int(split.num_tokens),
            "unk_rate": round(float(np.count_nonzero(split.ids == UNK_ID)) / n_tok, 5),
            "truncated_rate": round(float(np.mean(full > max_length)) if len(full) else 0.0, 5),
            "truncated": int(np.count_nonzero(full > max_length)),
            "longest": int(full.max()) if len(full) else 0,  # a lower bound when a text was cut (cut_texts)
            "length": percentiles(split.lengths),
        }
        splits[name] = split
    return splits, stats


def tokenize(
    data,
    cfg: TokenizerConfig,
    cache_dir: str | Path | None = None,
    quiet: bool = True,
    extend_with=None,
    extend_limit: int = 0,
) -> Tokenized:
    """Train the tokenizer on ``data.splits['train']`` and encode all splits.

    ``extend_with``: pretrained vectors' words, most frequent first; up to
    ``extend_limit`` of those the trained vocabulary lacks get ids after it
    (:func:`extend_vocabulary`), so text outside the training split can still
    reach their vectors instead of [UNK].
    """
    import datasets

    root = Path(cache_dir or os.environ.get("TEXTCLF_CACHE_DIR", ".textclf")) / "datasets"
    tok = _trained_tokenizer(data, cfg, root / "tokenizers")
    trained_size = tok.get_vocab_size()
    added = 0
    if extend_with is not None and extend_limit > 0:
        tok, added = extend_vocabulary(tok, extend_with, extend_limit)
    if quiet:
        datasets.disable_progress_bars()
    splits, stats = encode_splits(data, tok, cfg.max_length, root / "encoded")
    stats["kind"] = cfg.kind
    stats["trained_vocab_size"] = trained_size
    stats["vocab_extension"] = added  # ids [trained_vocab_size, vocab_size) came from pretrained vectors
    return Tokenized(tokenizer=tok, splits=splits, stats=stats)


# Half the training tokens [UNK]: the vocabulary has collapsed (a min_frequency above the data's word
# counts, or a tiny vocab_size), and the model reads little more than text length.
MAX_TRAIN_UNK_RATE = 0.5


def vocabulary_warnings(stats: dict[str, Any], cfg: TokenizerConfig) -> list[DataWarning]:
    """A warning when the trained vocabulary turns most of the training split into [UNK] (stats: :func:`tokenize`'s)."""
    train = stats.get("splits", {}).get("train") or {}
    unk = float(train.get("unk_rate") or 0.0)
    if unk < MAX_TRAIN_UNK_RATE or stats.get("kind") == "init_from":  # a source model's tokenizer is not ours to tune
        return []
    size = int(stats.get("trained_vocab_size") or stats.get("vocab_size") or 0) - len(SPECIALS)
    if size + len(SPECIALS) >= cfg.vocab_size:
        fix = f"raise tokenizer.vocab_size (now {cfg.vocab_size}), e.g. --set tokenizer.vocab_size={cfg.vocab_size * 4}"
    elif cfg.min_frequency > 1 and cfg.kind != "unigram":
        fix = (
            f"lower tokenizer.min_frequency (now {cfg.min_frequency}: a token must occur that often in training), "
            f"e.g. --set tokenizer.min_frequency={max(1, min(2, cfg.min_frequency - 1))}"
        )
    else:
        fix = "the training split repeats too few words: add data, or try --set tokenizer.kind=bpe (sub-words)"
    return [
        DataWarning(
            "vocabulary_collapsed",
            f"the {cfg.kind} vocabulary has only {size:,} tokens besides [PAD]/[UNK], and {unk:.0%} of the training tokens "
            f"are [UNK]: the model sees little of the text. {fix[0].upper() + fix[1:]}.",
        )
    ]


def vocabulary_stats(
    data, cfg: TokenizerConfig, cache_dir: str | Path | None = None, sample: int = 5000
) -> dict[str, Any]:
    """The vocabulary :func:`tokenize` would train, and the [UNK] rate of up to ``sample`` training texts (``data inspect``).

    The tokenizer is trained (or read back) exactly as the tokenize stage does, so a
    following run reuses it; only the [UNK] rate is estimated, on an even sample of
    the training split, which keeps inspecting a large file quick.
    """
    root = Path(cache_dir or os.environ.get("TEXTCLF_CACHE_DIR", ".textclf")) / "datasets"
    tok = _trained_tokenizer(data, cfg, root / "tokenizers")
    train = data.splits["train"]
    rows = (
        np.linspace(0, len(train) - 1, num=min(sample, len(train)), dtype=np.int64)
        if len(train)
        else np.array([], np.int64)
    )
    texts, _ = cut_texts(train.select(np.unique(rows))["text"], cfg.max_length)
    ids = [
        (e.ids or [UNK_ID])[: cfg.max_length] for e in tok.encode_batch(texts)
    ]  # what the model reads, as encode_splits counts
    n = sum(len(x) for x in ids)
    unk = sum(x.count(UNK_ID) for x in ids)
    return {
        "kind": cfg.kind,
        "vocab_size": tok.get_vocab_size(),
        "trained_vocab_size": tok.get_vocab_size(),
        "splits": {"train": {"unk_rate": round(unk / max(n, 1), 5), "sampled_texts": len(ids)}},
    }
