"""Argument checks shared by the encoders and the classifier (a ConfigError names the config key and the value), when to skip host-side checks, and the hyper-parameter names a model folder may hold (torch-free)."""

from __future__ import annotations

import numbers

from textclf.core.errors import ConfigError


def check_choice(key: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}. Got {value!r} instead.")
    return value


def check_int(key: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}. Got {value!r} instead.")
    return int(value)


def check_fraction(key: str, value) -> float:
    # `not (0 <= v < 1)` also rejects NaN
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= value < 1.0):
        raise ConfigError(f"{key} must be a number in [0, 1). Got {value!r} instead.")
    return float(value)


def check_bool(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false. Got {value!r} instead.")
    return value


def tracing() -> bool:
    """True while torch.jit / torch.compile / torch.export trace a model.

    Encoders check lengths and trim padding columns by reading lengths on the
    host; a trace must not bake those values in, so they skip that there.
    """
    import torch

    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or exporting()


POOLINGS = ("last", "mean", "max", "attention")  # encoder.pooling: one vector per text from the sequence
# TextClassifier's keyword arguments, as config.json's "model" section records them: here, torch-free,
# so a model folder is checked without importing torch (tests/test_onnx_engine.py keeps the two equal).
HPARAMS = (
    "vocab_size",
    "embedding_dim",
    "num_classes",
    "padding_idx",
    "cell",
    "hidden_size",
    "layers",
    "bidirectional",
    "dropout",
    "embedding_dropout",
    "output_dropout",
    "pooling",
    "class_weights",
    "frozen_rows",
    "init",
    "chrono_max_length",
)
