"""The stages every variant shares: prepare → tokenize → embed.

Each stage takes a spec (exactly what it reads: see :mod:`textclf.pipeline.stage`)
and returns a typed result. Variants that agree on a stage's spec and upstream
share its entry: all variants of a pipeline reuse one prepared dataset and one
trained tokenizer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from textclf.core.cache import StageCache
from textclf.data.config import DataConfig
from textclf.data.prepare import PreparedData
from textclf.pipeline.stage import StageResult, run_stage
from textclf.text.config import TokenizerConfig

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- prepare


class PrepareSpec(_Spec):
    data: DataConfig
    # Identity of every input named by data.source / train / validation / test (a file: its content hash).
    inputs: dict[str, dict[str, Any] | None]


def prepare_spec(data: DataConfig, cache_root: Path | None = None) -> PrepareSpec:
    from textclf.data.sources import source_of

    inputs = {}
    for field in ("source", "train", "validation", "test"):
        spec = getattr(data, field)
        inputs[field] = source_of(spec).identity(spec, cache_root) if spec else None
    return PrepareSpec(data=data, inputs=inputs)


def prepare_stage(spec: PrepareSpec, cache: StageCache, *, force: bool = False) -> StageResult[PreparedData]:
    from datasets import load_from_disk

    from textclf.data.prepare import prepare

    def compute(tmp: Path) -> dict[str, Any]:
        data = prepare(spec.data, cache_dir=cache.root)
        data.splits.save_to_disk(str(tmp / "splits"))
        (tmp / "data.json").write_text(
            json.dumps(
                {
                    "label_names": data.label_names,
                    "fingerprints": data.fingerprints,
                    "sources": data.sources,
                    "report": data.report,
                },
                indent=1,
            )
        )
        return {"source": data.sources}

    def load(path: Path) -> PreparedData:
        meta = json.loads((path / "data.json").read_text())
        return PreparedData(splits=load_from_disk(str(path / "splits")), **meta)

    return run_stage(cache, "prepare", spec, [], compute=compute, load=load, force=force)


# --------------------------------------------------------------------------- tokenize


class VocabExtension(_Spec):
    """``embedding.extend_vocab``: which pretrained words may join the vocabulary."""

    vectors: dict[str, Any]  # the vectors' identity (name, or file + hash)
    spec: str  # embedding.pretrained, to read the words
    limit: int


class TokenizeSpec(_Spec):
    tokenizer: TokenizerConfig
    extend: VocabExtension | None = None
    # encoder.init_from: encode with the source model's tokenizer (its file's hash) instead of training one
    source_tokenizer: str | None = None


def tokenize_stage(
    spec: TokenizeSpec,
    prepared: StageResult[PreparedData],
    cache: StageCache,
    *,
    force: bool = False,
    source_tokenizer=None,
) -> StageResult:
    """Train a tokenizer on the training split (or take the source model's) and encode every split."""
    from tokenizers import Tokenizer

    from textclf.text.batching import EncodedSplit
    from textclf.text.tokenize import Tokenized, encode_splits, tokenize

    if spec.source_tokenizer is not None and source_tokenizer is None:
        raise ValueError("tokenize_stage: a spec with source_tokenizer needs the source tokenizer itself")

    def compute(tmp: Path) -> dict[str, Any] | None:
        if spec.source_tokenizer is not None:
            tok = source_tokenizer
            splits, stats = encode_splits(
                prepared.value, tok, spec.tokenizer.max_length, cache.root / "datasets" / "encoded"
            )
            stats["kind"] = "init_from"
        else:
            words = None
            if spec.extend is not None:
                from textclf.text.embedding import pretrained_words

                words = pretrained_words(spec.extend.spec)
            result = tokenize(
                prepared.value,
                spec.tokenizer,
                cache_dir=cache.root,
                extend_with=words,
                extend_limit=spec.extend.limit if spec.extend else 0,
            )
            tok, splits, stats = result.tokenizer, result.splits, result.stats
        tok.save(str(tmp / "tokenizer.json"))
        for name, split in splits.items():
            split.save(tmp / name)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
        return None

    def load(path: Path):
        stats = json.loads((path / "stats.json").read_text())
        return Tokenized(
            tokenizer=Tokenizer.from_file(str(path / "tokenizer.json")),
            splits={s: EncodedSplit.load(path / s) for s in SPLIT_NAMES},
            stats=stats,
        )

    result = run_stage(cache, "tokenize", spec, [prepared], compute=compute, load=load, force=force)
    if result.key not in _WARNED:  # once per tokenized dataset, not once per variant using it
        _WARNED.add(result.key)
        _warn_truncation(result.value.stats, spec.tokenizer.max_length)
    return result


_WARNED: set[str] = set()


def _warn_truncation(stats: dict, max_length: int) -> None:
    """Say when texts were cut at tokenizer.max_length: the model never sees their ends."""
    parts = [
        f"{st['truncated']} {name} ({st['truncated_rate']:.1%}, longest {st['longest']:,} tokens)"
        for name, st in stats.get("splits", {}).items()
        if st.get("truncated")
    ]
    if parts:
        log.warning(
            "texts longer than tokenizer.max_length=%d tokens were truncated: %s. Raise tokenizer.max_length "
            "if their ends matter.",
            max_length,
            ", ".join(parts),
        )


# --------------------------------------------------------------------------- warnings about the data

_SAID: set[tuple[str, str]] = set()  # (stage key, message) said in this process


def data_warning_messages(
    cfg, data: StageResult[PreparedData], tok: StageResult | None = None
) -> list[tuple[str, str]]:
    """(stage key, message) of every warning about the data of ``cfg`` (:mod:`textclf.data.checks`, the vocabulary with ``tok``)."""
    from textclf.data.checks import data_warnings
    from textclf.text.tokenize import vocabulary_warnings

    found = [
        (data.key, w.message)
        for w in data_warnings(
            data.value, selection_metric=cfg.train.early_stopping_metric, class_weights=cfg.train.class_weights
        )
    ]
    if tok is not None:
        found += [(tok.key, w.message) for w in vocabulary_warnings(tok.value.stats, cfg.tokenizer)]
    return found


def warn_data(cfg, data: StageResult[PreparedData], tok: StageResult | None = None) -> list[str]:
    """Log the warnings about data that trains but is probably wrong; returns the ones newly said.

    Called where the shared stages run for a training (the pipeline's driver, ``textclf train``,
    DDP rank 0), never in workers: each message is said once per process and prepared dataset,
    so a pipeline of seven variants on one dataset says it once. A re-run from the cache says it
    again (a warning seen only the first time is easily lost); the comparison also records them
    (``summary.json`` ``data.warnings``, report.md), which a re-run with nothing changed shows.
    """
    said = []
    for key, message in data_warning_messages(cfg, data, tok):
        if (key, message) in _SAID:
            continue
        _SAID.add((key, message))
        log.warning("%s", message)
        said.append(message)
    return said


# --------------------------------------------------------------------------- embed


class EmbedSpec(_Spec):
    vectors: dict[str, Any]  # identity of the pretrained vectors
    spec: str  # embedding.pretrained, to read them
    dim: int


@dataclass
class Embedding:
    """Output of the embed stage: the initial matrix (vocab rows × dim) and how well the vectors cover the vocabulary."""

    matrix: np.ndarray
    coverage: dict[str, Any]


def embed_stage(spec: EmbedSpec, tok: StageResult, cache: StageCache, *, force: bool = False) -> StageResult[Embedding]:
    """Pretrained vectors aligned to the tokenizer's vocabulary."""
    from textclf.text.embedding import align, load_vectors

    def compute(tmp: Path) -> dict[str, Any]:
        vocab = tok.value.tokenizer
        counts = np.bincount(tok.value.splits["train"].ids, minlength=vocab.get_vocab_size())
        matrix, coverage = align(
            vocab.get_vocab(),
            load_vectors(spec.spec),
            dim=spec.dim,
            seed=0,
            token_counts=counts,
            trained_size=tok.value.stats.get("trained_vocab_size"),
        )
        np.save(tmp / "matrix.npy", matrix)
        (tmp / "coverage.json").write_text(json.dumps(coverage))
        return coverage

    def load(path: Path) -> Embedding:
        return Embedding(
            matrix=np.load(path / "matrix.npy", allow_pickle=False),
            coverage=json.loads((path / "coverage.json").read_text()),
        )

    return run_stage(cache, "embed", spec, [tok], compute=compute, load=load, force=force)
