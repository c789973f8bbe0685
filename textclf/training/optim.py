"""The optimiser and learning-rate schedule: AdamW over decayed / undecayed groups, warm-up then decay."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from textclf.core.errors import ConfigError
from textclf.training.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices (``ndim >= 2``), not biases / norm scales.

    Nor pretrained embeddings (``model.pretrained_embedding``): decay pulls
    weights toward zero, which for GloVe vectors means toward *no* meaning,
    not toward where they started.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    keep = model.embedding.weight if getattr(model, "pretrained_embedding", False) else None
    decay = [p for p in params if p.ndim >= 2 and p is not keep]
    no_decay = [p for p in params if p.ndim < 2 or p is keep]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`, fused where torch has the kernel (CPU, CUDA, MPS).

    The fused kernel updates each tensor in one pass instead of ~10 elementwise
    ops, which on CPU cut the optimizer's share of a BiLSTM training step
    (docs/benchmarks.md, "Summary", training row). Devices without it use the default.
    """
    groups = param_groups(model, cfg.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except RuntimeError:  # "fused=True requires all the params to be ... of supported devices"
        return torch.optim.AdamW(groups, lr=cfg.lr)


# Warm-up never lasts longer than this many epochs: a ratio of all steps alone grows
# with train.epochs, and at epochs=10,000 would keep the learning rate near 0 for
# 500 epochs, long after early stopping has ended the run with an untrained model.
WARMUP_MAX_EPOCHS = 2


def warmup_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Warm-up steps: ``train.warmup_ratio`` of all steps, at most :data:`WARMUP_MAX_EPOCHS` epochs' worth.

    The defaults (10 epochs, ratio 0.05) give half an epoch, as before the cap.
    """
    total = cfg.epochs * steps_per_epoch
    return min(
        round(cfg.warmup_ratio * total), WARMUP_MAX_EPOCHS * steps_per_epoch
    )  # the same product as before the cap


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier at optimizer step ``step`` (0-based): linear warm-up, then the schedule.

    Warm-up rises to 1.0 by step ``warmup_steps``; ``linear`` and ``cosine``
    then fall to exactly 0 at ``total_steps``; ``constant`` stays at 1.
    """
    if schedule not in ("constant", "linear", "cosine"):
        raise ConfigError(f"train.schedule: must be one of constant, linear, cosine. Got {schedule!r} instead.")
    decay_steps = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
