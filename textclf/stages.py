"""Cached wrappers around the stage functions.

Each ``*_stage`` function takes a resolved :class:`~textclf.config.Config`
and a :class:`~textclf.cache.StageCache`, computes the stage's key from the
upstream keys and the one config section it reads, and either loads the
cached output or computes it (under a per-key lock) and stores it atomically.
The stage functions themselves (:func:`textclf.data.prepare`,
:func:`textclf.tokenize.tokenize`, ...) know nothing about caching.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.cache import StageCache, stage_key
from textclf.config import Config

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    key: str
    path: Path
    cached: bool
    value: Any


def _file_identity(path: str | None) -> dict[str, Any] | None:
    """Path + size + mtime: a file edited in place gets a new prepare key."""
    if not path or path.startswith(("hf:", "builtin:")):
        return None
    p = Path(path)
    if not p.exists():
        return {"path": str(p)}  # prepare() raises the clear error
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def prepare_key(cfg: Config) -> str:
    d = cfg.data
    files = {s: _file_identity(getattr(d, s)) for s in ("source", "train", "validation", "test")}
    return stage_key("prepare", {"data": d.model_dump(mode="json"), "files": files})


def prepare_stage(cfg: Config, cache: StageCache, *, force: bool = False) -> StageResult:
    from datasets import load_from_disk

    from textclf.data import PreparedData, prepare

    key = prepare_key(cfg)
    with cache.lock("prepare", key):
        hit = None if force else cache.get("prepare", key)
        if hit is None:
            data = prepare(cfg.data, cache_dir=cache.root)
            if force and cache.get("prepare", key):
                _remove(cache.path("prepare", key))
            with cache.write("prepare", key, {"source": data.sources}) as tmp:
                data.splits.save_to_disk(str(tmp / "splits"))
                (tmp / "data.json").write_text(
                    json.dumps(
                        {"label_names": data.label_names, "fingerprints": data.fingerprints, "sources": data.sources, "report": data.report},
                        indent=1,
                    )
                )
            hit = cache.get("prepare", key)
            cached = False
        else:
            cached = True
    meta = json.loads((hit / "data.json").read_text())
    data = PreparedData(splits=load_from_disk(str(hit / "splits")), **meta)
    return StageResult(key, hit, cached, data)


def tokenize_stage(cfg: Config, prepared: StageResult, cache: StageCache, *, force: bool = False) -> StageResult:
    from tokenizers import Tokenizer

    from textclf.batching import EncodedSplit
    from textclf.tokenize import Tokenized, tokenize

    params = {"tokenizer": cfg.tokenizer.model_dump(mode="json")}
    extend = extends_vocabulary(cfg)
    if extend:  # only then: variants without pretrained vectors keep sharing one entry
        from textclf.embedding import source_identity

        params["extend_vocab"] = {**source_identity(cfg.embedding.pretrained), "limit": cfg.embedding.extend_vocab}
    key = stage_key("tokenize", params, [prepared.key])
    with cache.lock("tokenize", key):
        hit = None if force else cache.get("tokenize", key)
        cached = hit is not None
        if hit is None:
            words = None
            if extend:
                from textclf.embedding import pretrained_words

                words = pretrained_words(cfg.embedding.pretrained)
            result = tokenize(prepared.value, cfg.tokenizer, cache_dir=cache.root, extend_with=words, extend_limit=cfg.embedding.extend_vocab)
            if cache.get("tokenize", key):
                _remove(cache.path("tokenize", key))
            with cache.write("tokenize", key) as tmp:
                result.tokenizer.save(str(tmp / "tokenizer.json"))
                for name, split in result.splits.items():
                    split.save(tmp / name)
                (tmp / "stats.json").write_text(json.dumps(result.stats, indent=1))
            hit = cache.get("tokenize", key)
    tok = Tokenizer.from_file(str(hit / "tokenizer.json"))
    splits = {s: EncodedSplit.load(hit / s) for s in ("train", "validation", "test")}
    stats = json.loads((hit / "stats.json").read_text())
    if key not in _WARNED:  # once per tokenized dataset, not once per variant using it
        _WARNED.add(key)
        _warn_truncation(stats, cfg.tokenizer.max_length)
    return StageResult(key, hit, cached, Tokenized(tokenizer=tok, splits=splits, stats=stats))


_WARNED: set[str] = set()


def extends_vocabulary(cfg: Config) -> bool:
    """Whether the tokenize stage appends pretrained words to the vocabulary (``embedding.extend_vocab``).

    The one place the tokenize stage reads beyond its own section: the
    vocabulary is the tokenizer's, but which words to add comes from the
    embedding. Word tokenizers only; subword pieces rarely match word vectors.
    """
    return bool(cfg.embedding.pretrained) and cfg.embedding.extend_vocab > 0 and cfg.tokenizer.kind == "word"


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
            "if their ends matter.", max_length, ", ".join(parts),
        )


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
