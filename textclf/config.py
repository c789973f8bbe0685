"""The configuration schema, and how a run's config is resolved and validated.

A variant's config is, in order of precedence (later wins)::

    schema defaults ⊕ params.yaml ⊕ pipeline overrides ⊕ variant overrides ⊕ --set key=value

One section per stage (``data``, ``tokenizer``, ``embedding``, ``encoder``,
``train``, ``evaluate``, plus ``tfidf`` for the non-neural baseline); each
stage reads only its own section, which is what lets the stage cache share
upstream work between variants.

Validation happens before anything is built and reports *every* problem at
once, each naming the dotted key, the value given and what is allowed, with a
"did you mean" for typos (see :func:`validate`).
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from textclf.errors import ConfigError

SECTIONS = ("data", "tokenizer", "embedding", "encoder", "train", "evaluate", "tfidf")


def _accepted_types(annotation: Any) -> tuple[Any, ...]:
    args = typing.get_args(annotation)
    return args if args and typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)


class _Section(BaseModel):
    # extra="forbid" turns a typo into an error instead of a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `layers: true` as 1 and `lr: yes` as 1.0; a
        # boolean where a number belongs is a mistake, so report it.
        if isinstance(value, bool):
            accepted = _accepted_types(cls.model_fields[info.field_name].annotation)
            if bool not in accepted and any(t in (int, float) for t in accepted):
                kind = "an integer" if float not in accepted else "a number"
                raise ValueError(f"expected {kind}, not true/false")
        return value


class DataConfig(_Section):
    source: str | None = Field(None, description="One file / hf:NAME[:CONFIG] / builtin:NAME, split by the fractions below.")
    train: str | None = Field(None, description="Training file (instead of source).")
    validation: str | None = None
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int = Field(0, description="Seed of the train/validation/test split; fixed across training seeds so comparisons are paired.")
    max_examples: int | None = Field(None, ge=1, description="Keep at most this many rows per split (quick runs).")
    on_invalid: Literal["error", "drop"] = "error"
    options: dict[str, Any] = Field(default_factory=dict, description="Options of a builtin: corpus (size, noise, ...).")

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if self.source and self.train:
            raise ValueError("set either data.source (one input, split automatically) or data.train (+ data.validation / data.test), not both")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"data.val_fraction + data.test_fraction must be < 1 (got {self.val_fraction} + {self.test_fraction})"
            )
        return self


class TokenizerConfig(_Section):
    kind: Literal["word", "bpe", "wordpiece", "unigram", "char"] = "word"
    vocab_size: int = Field(20000, ge=10)
    min_frequency: int = Field(2, ge=1)
    lowercase: bool = True
    max_length: int = Field(256, ge=1, description="Longer texts are truncated (reported per split).")


class EmbeddingConfig(_Section):
    dim: int | None = Field(None, ge=1, description="null: the pretrained vectors' dimension, or 100 without them.")
    pretrained: str | None = Field(None, description="glove-6b-50d, or a GloVe/word2vec text file.")
    trainable: bool = True
    dropout: float = Field(0.25, ge=0.0, lt=1.0)
    extend_vocab: int = Field(
        100000, ge=0,
        description="Word tokenizer + pretrained vectors: add up to this many of the most frequent pretrained "
        "words missing from the trained vocabulary, with their vectors kept frozen. 0 turns it off.",
    )

    @model_validator(mode="after")
    def _resolve_dim(self) -> "EmbeddingConfig":
        # The vectors' size is known at config time (named sets: by name; files: from
        # their first line): fill it in, or report a disagreement before anything runs.
        known = None
        if self.pretrained:
            from textclf.embedding import vectors_dim

            known = vectors_dim(self.pretrained)
        if self.dim is None:
            object.__setattr__(self, "dim", known or 100)  # not an assignment: no re-validation
        elif known is not None and self.dim != known:
            raise ValueError(
                f"embedding.dim is {self.dim} but {self.pretrained} vectors have {known} dimensions; "
                f"set --set embedding.dim={known} (or leave embedding.dim null to take the vectors' size)"
            )
        return self


class EncoderConfig(_Section):
    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    layers: int = Field(1, ge=1, le=16)
    bidirectional: bool = False
    hidden_size: int = Field(128, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Between stacked layers.")
    pooling: Literal["last", "mean", "max", "attention"] = "max"
    output_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Before the linear head.")
    init_from: str | None = Field(None, description="Model reference to start from (folder, runs:/, models:/).")
    freeze: bool = False


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW decoupled weight decay (pretrained embeddings are not decayed).")
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    grad_clip: float = Field(1.0, ge=0.0, description="Max gradient norm; 0 disables clipping.")
    early_stopping_metric: Literal["accuracy", "macro_f1", "loss"] = "accuracy"
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping; 0 disables early stopping.")
    class_weights: Literal["none", "balanced"] = "none"
    seed: int = 1
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; default: all cores.")
    bucket_chunk: int = Field(50, ge=1, description="Batches per length-sorted chunk (length bucketing).")
    mixed_precision: bool = Field(True, description="bf16/fp16 autocast on CUDA only; ignored on CPU.")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v


class EvaluateConfig(_Section):
    batch_size: int = Field(256, ge=1)
    latency_samples: int = Field(100, ge=0, description="Batch-1 calls timed for p50/p95 latency; 0 skips cost timing.")


class TfidfConfig(_Section):
    ngram_max: int = Field(2, ge=1, le=5)
    C: float | None = Field(None, gt=0.0, description="Inverse regularisation; null = chosen on validation.")
    max_features: int | None = Field(200000, ge=1)
    min_df: int = Field(1, ge=1)


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


def parse_value(text: str) -> Any:
    """Type a ``--set`` value the way YAML would: int, float, bool, list, null, str ({...} for a mapping)."""
    value = yaml.safe_load(text) if text.strip() else ""
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
            value = parse_value(raw)
        except yaml.YAMLError as exc:
            problems.append(f"--set {item!r}: cannot parse value {raw!r} ({exc.__class__.__name__})")
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
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}. Fix the syntax of that line.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data:, encoder:, ...), got {type(data).__name__}.")
    return data


# --------------------------------------------------------------------------- validation


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names valid at ``loc`` (a path of section names)."""
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f" Did you mean '{'.'.join(map(str, loc[:-1] + (close[0],)))}'?" if close else ""
        return f"{key}: unknown key (given {value!r}).{hint} Allowed keys here: {', '.join(allowed)}."
    if kind == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return f"{key}: must be one of {allowed}. Got {value!r} instead."
    msg = err["msg"]
    if kind.startswith("value_error"):
        msg = msg.removeprefix("Value error, ")
        if key == "(top level)" or isinstance(value, dict):
            return f"{msg}."
        return f"{key}: {msg}. Got {value!r} instead."
    return f"{key}: {msg}. Got {value!r} instead."


def validate(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a merged dict; raise ONE ConfigError listing every problem."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
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
        merged = deep_merge(merged, read_yaml(pf, "params"))
    for layer in layers:
        merged = deep_merge(merged, layer or {})
    merged = deep_merge(merged, parse_overrides(overrides))
    return validate(merged, source=source)


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
