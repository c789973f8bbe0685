"""Refuse, before any work, a model that cannot fit in memory.

Two checks, both with :mod:`textclf.models.size`:

* :func:`check_configs` runs before ``textclf train`` or ``textclf run``
  starts anything (no stage, no MLflow run), on every variant of a pipeline at
  once. The vocabulary and the class count are not known yet, so it uses
  bounds: ``tokenizer.vocab_size`` (what a trained tokenizer can reach) plus
  ``embedding.extend_vocab`` when pretrained words join the vocabulary, and 2
  classes (the least there can be).
* :func:`check_model` runs in the train stage right before the model is
  built, with the real vocabulary, class count and longest training text.

Both raise a :class:`~textclf.core.errors.ConfigError` (exit 2) naming the
estimate, the memory available and the keys that shrink the largest parts.
"""

from __future__ import annotations

from typing import Any

from textclf.core.errors import ConfigError
from textclf.pipeline.config import Config, extends_vocabulary

# The settings that shrink each part of the estimate, for the message.
KEYS = {
    "embedding": "tokenizer.vocab_size or embedding.dim (or embedding.extend_vocab)",
    "encoder": "encoder.hidden_size or encoder.layers",
    "head": "encoder.hidden_size (the head has one row per class: check the number of classes)",
    "activations": "train.batch_size, tokenizer.max_length or encoder.hidden_size",
}


def model_hparams(
    embedding, encoder, *, vocab_size: int, num_classes: int, frozen_rows: int = 0, max_length: int | None = None
) -> dict[str, Any]:
    """The classifier's hyper-parameters for these ``embedding`` / ``encoder`` sections (what the train stage builds).

    ``max_length`` (``tokenizer.max_length``) is chrono initialisation's default T_max.
    """
    return dict(
        vocab_size=vocab_size,
        embedding_dim=embedding.dim,
        num_classes=num_classes,
        padding_idx=0,
        cell=encoder.cell,
        hidden_size=encoder.hidden_size,
        layers=encoder.layers,
        bidirectional=encoder.bidirectional,
        dropout=encoder.dropout if encoder.layers > 1 else 0.0,
        embedding_dropout=embedding.dropout,
        output_dropout=encoder.output_dropout,
        pooling=encoder.pooling,
        frozen_rows=frozen_rows,
        init=encoder.init,
        chrono_max_length=(encoder.chrono_max_length or max_length or 256) if encoder.init == "chrono" else None,
    )


def _problem(
    what: str,
    sections,
    *,
    vocab_size: int,
    num_classes: int,
    frozen_rows: int,
    max_length: int,
    share: int = 1,
    frozen_encoder: bool = False,
) -> str | None:
    """The refusal for one model (``sections``: tokenizer, embedding, encoder, train, eval batch size), or None if it fits."""
    from textclf.models import size
    from textclf.training.device import resolve_device

    tokenizer, embedding, encoder, train, eval_batch = sections
    device = resolve_device(train.device)
    available, source = size.available_memory(device)
    if available is None:  # nothing to compare with: training will tell
        return None
    if share > 1:
        available, source = available // share, f"{source}, shared by {share} parallel jobs (--jobs)"
    hp = model_hparams(
        embedding,
        encoder,
        vocab_size=vocab_size,
        num_classes=num_classes,
        frozen_rows=frozen_rows,
        max_length=max_length,
    )
    estimate = size.training_estimate(
        hp,
        batch_size=train.batch_size,
        max_length=max_length,
        eval_batch_size=eval_batch,
        embedding_trainable=embedding.trainable,
        encoder_frozen=frozen_encoder,
        best_copy=device.type != "cuda",  # the trainer keeps the best epoch's weights on the host
    )
    return size.refusal(what, estimate, available, source, KEYS)


def vocabulary_bound(cfg: Config) -> tuple[int, int]:
    """(the most tokens the vocabulary can hold, how many of them are frozen pretrained rows) for ``cfg``."""
    extra = cfg.embedding.extend_vocab if extends_vocabulary(cfg) else 0
    return cfg.tokenizer.vocab_size + extra, extra


def check_configs(configs: list[tuple[str | None, Config]], *, jobs: int = 1) -> None:
    """Refuse, before anything runs, every neural config (named by variant, or None) whose model cannot fit.

    ``jobs``: variants trained at the same time on this machine (``--jobs``), which share its memory.
    """
    problems, seen = [], set()
    neural = [(name, cfg) for name, cfg in configs if cfg.kind == "neural"]
    share = max(1, min(jobs, len(neural)))
    for name, cfg in neural:
        key = cfg.model_dump_json(
            include={"tokenizer", "embedding", "encoder", "train", "evaluate"}, exclude={"train": {"seed"}}
        )
        if key in seen:
            continue
        seen.add(key)
        vocab, frozen = vocabulary_bound(cfg)
        what = f"Training variant {name!r}" if name else "Training this model"
        what += f" (vocabulary up to {vocab:,} tokens, at least 2 classes)"
        sections = (cfg.tokenizer, cfg.embedding, cfg.encoder, cfg.train, cfg.evaluate.batch_size)
        p = _problem(
            what,
            sections,
            vocab_size=vocab,
            num_classes=2,
            frozen_rows=frozen,
            max_length=cfg.tokenizer.max_length,
            share=share,
        )
        if p:
            problems.append(p)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} variants cannot fit in memory:\n" + "\n".join(f"  - {p}" for p in problems))


def check_model(
    spec, *, vocab_size: int, num_classes: int, frozen_rows: int, longest: int, what: str, frozen_encoder: bool = False
) -> None:
    """Refuse a train spec whose model, at the real vocabulary and class count, cannot fit (before it is built)."""
    sections = (spec.tokenizer, spec.embedding, spec.encoder, spec.train, spec.eval_batch_size)
    max_length = max(1, min(spec.tokenizer.max_length, int(longest)))  # no batch is longer than the longest text
    p = _problem(
        f"{what} ({vocab_size:,} tokens, {num_classes:,} classes)",
        sections,
        vocab_size=vocab_size,
        num_classes=num_classes,
        frozen_rows=frozen_rows,
        max_length=max_length,
        frozen_encoder=frozen_encoder,
    )
    if p:
        raise ConfigError(p)
