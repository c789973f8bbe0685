"""Class probabilities of a classifier over a tokenized split: the inference path training and serving share.

Batches are sorted by length (little padding), run in eval mode under
``torch.inference_mode()`` and un-permuted at the end, so rows come back in
the split's order.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from textclf.text.batching import EncodedSplit, collate, inference_batches


def sorted_logits(model, split: EncodedSplit, batches: list[np.ndarray], device, pad_id: int, amp_dtype=None):
    """Yield ``(indices, logits (B, C) float32, labels (B,))`` per batch, model in eval mode.

    Callers wrap the loop in ``torch.inference_mode()``.
    """
    model.eval()
    for idx in batches:
        tokens, lengths, labels = collate(split, idx, pad_id, device)
        with (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()):
            logits, _ = model(tokens, lengths)
        yield idx, logits.float(), labels


def predict_proba(
    model: nn.Module,
    split: EncodedSplit,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    pad_id: int = 0,
) -> np.ndarray:
    """Class probabilities, float32 ``(N, C)``, in the original order of ``split``.

    Batches are length-sorted for speed and the rows un-permuted at the end.
    ``device=None`` uses the device the model is on; otherwise the model is moved.
    """
    if device is None:
        device = next(model.parameters()).device
    else:
        device = torch.device(device)
        if next(model.parameters()).device != device:  # .to() walks every module: skip it per call
            model.to(device)
    was_training = model.training
    batches = inference_batches(split.lengths, batch_size)  # sorted by length, little padding
    out, pos = None, 0  # (N, C) on the device, rows in sorted order
    try:
        with torch.inference_mode():
            for idx, logits, _ in sorted_logits(model, split, batches, device, pad_id):
                if out is None:
                    out = torch.empty(len(split), logits.shape[-1], dtype=torch.float32, device=device)
                out[pos : pos + len(idx)] = logits.softmax(-1)
                pos += len(idx)
    finally:
        model.train(was_training)
    if out is None:  # empty split: no batch told us C
        return np.zeros((0, 0), dtype=np.float32)
    probs = np.empty((len(split), out.shape[1]), dtype=np.float32)
    probs[np.concatenate(batches)] = out.cpu().numpy()  # un-permute
    return probs
