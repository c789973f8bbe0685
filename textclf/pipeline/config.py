"""The configuration schema, and how a run's config is resolved and validated.

A variant's config is, in order of precedence (later wins)::

    schema defaults ⊕ params.yaml ⊕ pipeline overrides ⊕ variant overrides ⊕ --set key=value

One section per stage (``data``, ``tokenizer``, ``embedding``, ``encoder``,
``train``, ``evaluate``, plus ``tfidf`` for the non-neural baseline); each
stage reads only its own section, which is what lets the stage cache share
upstream work between variants.

Each section is declared by the layer that reads it (:mod:`textclf.data.config`,
:mod:`textclf.text.config`, :mod:`textclf.models.config`,
:mod:`textclf.training.config`); this module assembles them into
:class:`Config`, merges the layers and validates.

Validation happens before anything is built and reports *every* problem at
once, each naming the dotted key, the value given and what is allowed, with a
"did you mean" for typos (see :func:`validate`).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from textclf.core.errors import ConfigError
from textclf.core.schema import Section, describe_errors
from textclf.core.yamlio import load_yaml_file, load_yaml_text
from textclf.data.config import DataConfig
from textclf.models.config import EncoderConfig, TfidfConfig
from textclf.text.config import EmbeddingConfig, TokenizerConfig
from textclf.training.config import TrainConfig

SECTIONS = ("data", "tokenizer", "embedding", "encoder", "train", "evaluate", "tfidf")


class EvaluateConfig(Section):
    """The ``evaluate`` section, read by the evaluate stage."""

    batch_size: int = Field(256, ge=1)
    latency_samples: int = Field(100, ge=0, description="Batch-1 calls timed for p50/p95 latency; 0 skips cost timing.")


class Config(BaseModel):
    """A fully resolved variant config."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: Literal["neural", "tfidf"] = "neural"
    data: DataConfig = Field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    tfidf: TfidfConfig = Field(default_factory=TfidfConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Dotted keys (``encoder.layers``) -> values, as logged to MLflow."""
        return flatten(self.to_dict())


def extends_vocabulary(cfg: Config) -> bool:
    """Whether the tokenize stage appends pretrained words to the vocabulary (``embedding.extend_vocab``).

    Word tokenizers only; subword pieces rarely match word vectors.
    """
    return bool(cfg.embedding.pretrained) and cfg.embedding.extend_vocab > 0 and cfg.tokenizer.kind == "word"


def defaults() -> dict[str, Any]:
    d = Config().to_dict()
    # Derived at validation from embedding.pretrained; a default layer must not pin it.
    d["embedding"]["dim"] = None
    return d


# --------------------------------------------------------------------------- merging


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        # data.options is a free-form dict owned by a corpus; keep it whole.
        if isinstance(v, dict) and v and key != "data.options":
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (override wins)."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options":
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_value(text: str, source: str = "--set value") -> Any:
    """Type a ``--set`` value the way YAML would: int, float, bool, list, null, str ({...} for a mapping).

    Read with the same limits as config files (size, aliases, depth, duplicate keys).
    """
    value = load_yaml_text(text, source) if text.strip() else ""
    if isinstance(value, dict) and not text.lstrip().startswith("{"):
        return text  # "my file: v2.csv" is a file name, not a mapping
    if isinstance(value, str):
        # YAML 1.1 reads "1e-3" as a string; users mean a float.
        try:
            return float(value) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value) else value
        except ValueError:
            return value
    return value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["encoder.layers=2", "train.lr=1e-3"]`` -> nested dict. Bad syntax is a ConfigError."""
    nested: dict[str, Any] = {}
    problems = []
    for item in items or []:
        if "=" not in item:
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set encoder.layers=2")
            continue
        key, _, raw = item.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
            problems.append(f"--set {item!r}: {key!r} is not a dotted key like encoder.layers")
            continue
        try:
            value = parse_value(raw, source=f"--set {item!r}")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        node = nested
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                problems.append(f"--set {item!r}: {p!r} is set to a value and used as a section")
                break
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError("Invalid --set override(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return nested


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A YAML file of sections, read with limits (see :mod:`textclf.core.yamlio`): never a bomb, never duplicate keys."""
    path = Path(path)
    data = load_yaml_file(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data:, encoder:, ...), got {type(data).__name__}.")
    return data


# --------------------------------------------------------------------------- validation


def validate(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a merged dict; raise ONE ConfigError listing every problem."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = describe_errors(Config, exc)
        raise ConfigError(
            f"Invalid {source} ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n"
            + "\n".join(f"  - {line}" for line in lines)
        ) from None


def find_params_file(explicit: str | Path | None = None) -> Path | None:
    """``--params PATH`` if given, else ``./params.yaml`` when present."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"params file not found: {p}")
        return p
    p = Path("params.yaml")
    return p if p.is_file() else None


def resolve(
    *layers: dict[str, Any] | None,
    params_file: str | Path | None = None,
    overrides: list[str] | None = None,
    source: str = "config",
) -> Config:
    """Merge defaults ⊕ params.yaml ⊕ ``layers`` ⊕ ``--set`` overrides and validate."""
    merged = defaults()
    pf = find_params_file(params_file)
    if pf is not None:
        merged = _merge_layer(merged, read_yaml(pf, "params"), str(pf))
    for layer in layers:
        merged = _merge_layer(merged, layer or {}, source if source != "config" else "the pipeline")
    merged = _merge_layer(merged, parse_overrides(overrides), "--set")
    return validate(merged, source=source)


_FILES = ("train", "validation", "test")
_said: set[str] = set()  # replacement notes already logged: a pipeline resolves once per variant


def _merge_layer(merged: dict[str, Any], layer: dict[str, Any], what: str) -> dict[str, Any]:
    """``deep_merge``, except that a layer naming the data one way replaces a lower layer's other way.

    ``--set data.train=…`` over a pipeline with ``data.source`` means "my files
    instead" (the own-data example of docs/data.md), so the lower ``data.source`` and
    its builtin ``data.options`` are dropped; ``data.source`` over lower
    ``data.train`` / ``validation`` / ``test`` drops those. Both ways in one
    layer stay a conflict for :class:`~textclf.data.config.DataConfig` to refuse.
    """
    data, below = layer.get("data"), merged.get("data")
    if isinstance(data, dict) and isinstance(below, dict):
        dropped: dict[str, Any] = {}
        if data.get("train") is not None and "source" not in data and below.get("source") is not None:
            dropped = {"source": below["source"]}
            if below.get("options") and "options" not in data:
                dropped["options"] = below["options"]
        elif data.get("source") is not None and not any(k in data for k in _FILES):
            dropped = {k: below[k] for k in _FILES if below.get(k) is not None}
        if dropped:
            merged = copy.deepcopy(merged)
            for key in dropped:
                merged["data"][key] = {} if key == "options" else None
            given = ", ".join(f"data.{k}" for k in ("source", *_FILES) if data.get(k) is not None)
            replaced = ", ".join(f"data.{k}={v!r}" for k, v in dropped.items())
            note = f"{what} sets {given}: it replaces {replaced} (from params.yaml or the pipeline)"
            if note not in _said:
                _said.add(note)
                import logging

                logging.getLogger(__name__).info(note)
    return deep_merge(merged, layer)


def load_config(
    path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    params_file: str | Path | None = None,
) -> Config:
    """Load one variant config: defaults ⊕ params.yaml ⊕ the YAML at ``path`` ⊕ overrides.

    >>> cfg = load_config(overrides=["encoder.cell=gru", "encoder.layers=2"])
    >>> (cfg.encoder.cell, cfg.encoder.layers)
    ('gru', 2)
    """
    layer = read_yaml(path) if path else None
    return resolve(layer, params_file=params_file, overrides=overrides, source=str(path or "config"))
