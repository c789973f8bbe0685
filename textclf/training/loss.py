"""What the training loss needs beyond the model: balanced class weights, the class count, a finiteness check."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from textclf.text.batching import EncodedSplit


def weights_finite(model: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def num_classes(train: EncodedSplit, val: EncodedSplit, model: nn.Module) -> int:
    """Classes the model predicts: its head's size when it says, else one past the largest label seen."""
    hp = getattr(model, "hparams", None) or {}
    return max(
        int(train.labels.max()) + 1, int(val.labels.max()) + 1, int(hp.get("num_classes") or hp.get("n_classes") or 0)
    )


def balanced_weights(train: EncodedSplit, val: EncodedSplit, model: nn.Module, device) -> torch.Tensor:
    """sklearn's "balanced" weights: n / (classes_present * count_c); unseen classes get 1."""
    counts = np.bincount(train.labels, minlength=num_classes(train, val, model)).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    weights = np.where(counts > 0, len(train) / (present * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32, device=device)


def loss_weights(class_weight: torch.Tensor | None, model: nn.Module) -> np.ndarray | None:
    """Per-class weights as the loss sees them (None = plain mean): the trainer's balanced weights, else the model's own."""
    w = class_weight if class_weight is not None else getattr(model, "class_weights", None)
    return w.detach().cpu().double().numpy() if isinstance(w, torch.Tensor) else None
