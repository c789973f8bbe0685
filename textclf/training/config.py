"""The ``train`` section: optimiser, schedule, early stopping, device (read by the trainer)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from textclf.core.metrics import epoch_metric_names
from textclf.core.schema import Section, Seed


class TrainConfig(Section):
    # Early stopping ends most runs within tens of epochs; the bound catches a typo (1e9)
    # before it becomes a learning-rate schedule no run ever reaches the end of.
    epochs: int = Field(10, ge=1, le=10000)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(
        0.1, ge=0.0, description="AdamW decoupled weight decay (pretrained embeddings are not decayed)."
    )
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    warmup_ratio: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Share of all training steps spent warming up, capped at 2 epochs' worth so that a long "
        "train.epochs does not stretch it (textclf.training.optim.warmup_steps).",
    )
    grad_clip: float = Field(1.0, ge=0.0, description="Max gradient norm; 0 disables clipping.")
    early_stopping_metric: str = Field(
        "accuracy",
        description="loss, or any metric of textclf.core.metrics.METRICS computed every epoch (accuracy, macro_f1, ...).",
    )
    patience: int = Field(
        3,
        ge=0,
        description="Epochs without improvement (counted after min_epochs) before stopping; 0 disables early stopping.",
    )
    min_epochs: int | None = Field(
        None,
        ge=0,
        description="Epochs always trained before early stopping may stop a run (null: half of train.epochs), so a "
        "validation plateau of a few epochs that later breaks is not cut off.",
    )
    class_weights: Literal["none", "balanced"] = "none"
    seed: Seed = 1
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; default: all cores.")
    bucket_chunk: int = Field(50, ge=1, description="Batches per length-sorted chunk (length bucketing).")
    mixed_precision: bool = Field(True, description="bf16/fp16 autocast on CUDA only; ignored on CPU.")
    cpu_bf16: bool = Field(
        False,
        description="bf16 autocast for the training steps on the CPU; weights, optimizer and every evaluation stay "
        "float32. Needs a CPU with native bf16 (avx512_bf16 or AMX); LSTM layers run oneDNN's bf16 kernel, tanh-RNN "
        "and GRU layers stay float32 (their linear head still runs in bf16). Off by default: results differ from float32 training "
        "(within seed noise in docs/benchmarks.md, 'The default comparison') and from machine to machine.",
    )

    @property
    def stop_after(self) -> int:
        """The epoch after which early stopping may act (``min_epochs``, or half of ``epochs``)."""
        return min(self.epochs, self.epochs // 2 if self.min_epochs is None else self.min_epochs)

    @field_validator("early_stopping_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        allowed = ["loss", *epoch_metric_names()]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v
