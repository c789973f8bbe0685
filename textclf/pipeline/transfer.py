"""Start a new classifier from a trained one: ``encoder.init_from`` + ``encoder.freeze``.

The source model brings its tokenizer, its embedding and its recurrent
encoder; the linear head is new, so the new task may have a different label
set. With ``encoder.freeze: true`` only the head trains (the source is a
fixed feature extractor); with ``false`` everything is fine-tuned.

Because the tokenizer comes with the source, the tokenize stage encodes the
new data with it instead of training one, and asking for a *different*
tokenizer (any ``tokenizer.*`` key that differs from the source's config) is
a :class:`~textclf.errors.ConfigError`. The architecture keys
(``embedding.dim``, ``encoder.cell``, ``encoder.layers``,
``encoder.bidirectional``, ``encoder.hidden_size``, ``encoder.pooling``) must
match the source too, so the logged params describe the model that was
actually trained.

Stage keys carry the source's identity (sha256 of its ``model.safetensors``
and of its ``tokenizer.json``), never just the reference string: a
``models:/NAME@champion`` that moves to a new version gives new keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.core.checksums import file_digest
from textclf.core.errors import ConfigError, ModelError
from textclf.pipeline.config import Config

# (config key, model hparam) pairs that fix the shapes of the transferred tensors
# or the computation they take part in.
ARCHITECTURE = (
    ("embedding.dim", "embedding_dim"),
    ("encoder.cell", "cell"),
    ("encoder.layers", "layers"),
    ("encoder.bidirectional", "bidirectional"),
    ("encoder.hidden_size", "hidden_size"),
    ("encoder.pooling", "pooling"),
)
TRANSFERRED = ("embedding.", "encoder.")  # state-dict prefixes taken from the source; head.* is new


@dataclass
class Source:
    """A resolved, validated source model for transfer."""

    ref: str
    resolved: Any  # textclf.refs.ResolvedModel
    folder: dict[str, Any]  # artifacts.read_folder(...)
    model_sha256: str
    tokenizer_sha256: str

    @property
    def tokenizer(self):
        return self.folder["tokenizer"]

    def identity(self) -> dict[str, str]:
        return {"model_sha256": self.model_sha256, "tokenizer_sha256": self.tokenizer_sha256}

    def describe(self) -> dict[str, Any]:
        """What the new model records about where it came from (config.json ``init_from``)."""
        r = self.resolved
        return {
            "ref": self.ref,
            **self.identity(),
            "path": str(Path(r.path).resolve()) if r.kind == "folder" else None,
            "run_id": r.run_id,
            "model_uri": r.model_uri,
            "registered": r.registered,
        }

    def lineage_tags(self) -> dict[str, str]:
        return {"init_from": self.ref, **self.resolved.lineage_tags(), "init_from_sha256": self.model_sha256}


def source_for(cfg: Config, *, tracking_uri: str | None = None, cache_dir: str | Path | None = None) -> Source | None:
    """Resolve and check ``encoder.init_from``; None when the config trains from scratch.

    A model from MLflow is downloaded into ``<cache_dir>/models/`` (the run's stage cache).
    """
    enc = cfg.encoder
    if not enc.init_from:
        if enc.freeze:
            raise ConfigError(
                "encoder.freeze=true needs encoder.init_from (there is no trained encoder to freeze). "
                "Set encoder.init_from to a model reference, or encoder.freeze=false."
            )
        return None
    from textclf.tracking.refs import load_folder

    try:
        folder, resolved = load_folder(enc.init_from, tracking_uri=tracking_uri, cache_dir=cache_dir)
    except ModelError as exc:
        raise ConfigError(f"encoder.init_from: {exc}") from None
    if folder["kind"] != "neural":
        raise ConfigError(
            f"encoder.init_from={enc.init_from!r} is a TF-IDF baseline; it has no embedding or encoder to start from. "
            "Point it at a neural (rnn/gru/lstm) model."
        )
    d = Path(folder["dir"])
    source = Source(
        ref=enc.init_from,
        resolved=resolved,
        folder=folder,
        model_sha256=file_digest(d / "model.safetensors", hashlib.sha256),
        tokenizer_sha256=file_digest(d / "tokenizer.json", hashlib.sha256),
    )
    check_compatible(cfg, source)
    return source


def check_compatible(cfg: Config, source: Source) -> None:
    """One ConfigError listing every key that contradicts the source model."""
    ref = source.ref
    src_cfg = source.folder["config"].get("config") or {}
    hp = source.folder["config"]["model"]
    problems = []
    src_tok = src_cfg.get("tokenizer") or {}
    for key, value in cfg.tokenizer.model_dump(mode="json").items():
        if key in src_tok and src_tok[key] != value:
            problems.append(
                f"tokenizer.{key}: this config asks for {value!r}, but the source model's tokenizer was built with "
                f"{src_tok[key]!r}. encoder.init_from reuses the source's tokenizer as is: set tokenizer.{key}={_yaml(src_tok[key])} "
                "(or drop encoder.init_from to train a new tokenizer)."
            )
    flat = cfg.flat()
    for key, hkey in ARCHITECTURE:
        if hkey in hp and flat[key] != hp[hkey]:
            problems.append(
                f"{key}: this config asks for {flat[key]!r}, but the source model has {hp[hkey]!r}. "
                f"Set {key}={_yaml(hp[hkey])} to start from it."
            )
    if cfg.embedding.pretrained:
        problems.append(
            f"embedding.pretrained: {cfg.embedding.pretrained!r} conflicts with encoder.init_from (the embedding comes "
            "from the source model). Set embedding.pretrained=null."
        )
    if problems:
        raise ConfigError(
            f"encoder.init_from={ref!r} does not fit this config ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _yaml(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


# --------------------------------------------------------------------------- weights


def load_pretrained(model, source: Source, *, freeze: bool) -> list[str]:
    """Copy the source's embedding + encoder tensors into ``model``; freeze them if asked.

    The head keeps its fresh (seeded) initialisation. Returns the names copied.
    """
    import torch

    state = source.folder["state"]
    own = model.state_dict()
    wanted = [k for k in own if k.startswith(TRANSFERRED)]
    missing = [k for k in wanted if k not in state]
    bad = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in wanted
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or bad:
        raise ConfigError(
            f"encoder.init_from={source.ref!r}: its weights do not fit this architecture "
            f"(missing: {missing[:4]}, shape mismatches: {bad[:4]}). Match embedding.* and encoder.* to the source model."
        )
    with torch.no_grad():
        for k in wanted:
            own[k].copy_(state[k])
    if freeze:
        for name, p in model.named_parameters():
            if name.startswith(TRANSFERRED):
                p.requires_grad_(False)
    return wanted
