"""Class probabilities of a classifier over a tokenized split: the inference path training and serving share.

:func:`predict_proba` returns the (N, C) matrix; :func:`predict_top` only the
top classes of each row (a :class:`~textclf.core.metrics.TopProba`), for
evaluations with too many classes for that matrix.

Batches are sorted by length (little padding), run in eval mode under
``torch.inference_mode()`` and un-permuted at the end, so rows come back in
the split's order.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from textclf.core.metrics import TopProba
from textclf.text.batching import EncodedSplit, collate, inference_batches


def sorted_logits(model, split: EncodedSplit, batches: list[np.ndarray], device, pad_id: int, amp_dtype=None):
    """Yield ``(indices, logits (B, C) float32, labels (B,))`` per batch, model in eval mode.

    Callers wrap the loop in ``torch.inference_mode()``.
    """
    model.eval()
    for idx in batches:
        tokens, lengths, labels = collate(split, idx, pad_id, device)
        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext():
            logits, _ = model(tokens, lengths)
        yield idx, logits.float(), labels


def _on_device(model: nn.Module, device) -> torch.device:
    """``device=None``: the device the model is on; otherwise the model is moved there."""
    if device is None:
        return next(model.parameters()).device
    device = torch.device(device)
    if next(model.parameters()).device != device:  # .to() walks every module: skip it per call
        model.to(device)
    return device


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
    device = _on_device(model, device)
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


def predict_top(
    model: nn.Module,
    split: EncodedSplit,
    *,
    k: int = 5,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    pad_id: int = 0,
) -> TopProba:
    """The ``k`` most probable classes of each text, their probabilities and that of ``split.labels``' class.

    What scoring needs, without the (N, C) matrix :func:`predict_proba` builds:
    only one batch's (B, C) probabilities exist at a time.
    """
    device = _on_device(model, device)
    was_training = model.training
    batches = inference_batches(split.lengths, batch_size)
    order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    classes = proba = true = None  # on the device, rows in sorted order
    pos, n_classes = 0, 0
    try:
        with torch.inference_mode():
            for idx, logits, labels in sorted_logits(model, split, batches, device, pad_id):
                p = logits.softmax(-1)
                if classes is None:
                    n_classes = p.shape[-1]
                    k = min(k, n_classes)
                    classes = torch.empty(len(split), k, dtype=torch.long, device=device)
                    proba = torch.empty(len(split), k, dtype=torch.float32, device=device)
                    true = torch.empty(len(split), dtype=torch.float32, device=device)
                top = p.topk(k, dim=-1)
                classes[pos : pos + len(idx)], proba[pos : pos + len(idx)] = top.indices, top.values
                true[pos : pos + len(idx)] = p.gather(1, labels.view(-1, 1)).squeeze(1)
                pos += len(idx)
    finally:
        model.train(was_training)
    if classes is None:
        return TopProba(np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.float32), 0)
    out = [
        np.empty((len(split), *t.shape[1:]), dtype=dt)
        for t, dt in ((classes, np.int64), (proba, np.float32), (true, np.float32))
    ]
    for o, t in zip(out, (classes, proba, true)):
        o[order] = t.cpu().numpy()  # un-permute
    return TopProba.ordered(out[0], out[1], out[2], n_classes)
