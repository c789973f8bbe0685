"""Dropout with a cheaper random mask on the CPU: the models' `nn.Dropout` replacement.

Why this exists: on the CPU, torch's dropout draws its mask with ``bernoulli_``,
one Mersenne-Twister draw and a float comparison per element. For this
project's sizes that was, in a profile, a larger share of a BiLSTM's training
epoch than any op but the LSTM kernels themselves.

`Dropout` draws 64 random bits at a time (``torch.randint`` over the whole
int64 range) and reads them as four 16-bit integers, one per element, so it
makes a quarter of the generator calls; a comparison with a threshold then
gives the mask. The profile and the speed-ups, of the mask alone and of whole
training epochs, are in docs/benchmarks.md ("Dropout mask").

What it computes: each element is kept independently with probability
``q = 1 - round(p · 65536) / 65536`` and scaled by ``1 / q``, so the expected
output equals the input exactly, as with torch's dropout; ``p`` is rounded to
a multiple of 1/65536 (0.2 becomes 0.199997, a difference far below anything
a training run can tell). The mask is a function of torch's global CPU
generator, so ``torch.manual_seed`` makes it reproducible; it is not the same
mask torch's dropout would draw under that seed.

Everything else goes to ``F.dropout`` unchanged: evaluation mode, ``p`` of 0 or
1, tensors on other devices (CUDA's fused dropout is already fast), non-float
tensors, and tracing/exporting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textclf.models.checks import tracing

_LANES = 4  # 16-bit integers per 64-bit draw
_LEVELS = 1 << 16
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _dropped_levels(p: float) -> int:
    """``p`` in 1/65536ths: an element is dropped when its int16 lane is among the lowest this many values."""
    return round(p * _LEVELS)


def keep_probability(p: float) -> float:
    """The probability that `Dropout` keeps an element: ``1 - p`` with ``p`` rounded to 1/65536."""
    return 1.0 - _dropped_levels(p) / _LEVELS


def random_int16(n: int) -> Tensor:
    """``n`` independent uniform int16 values from torch's CPU generator, four per 64-bit draw."""
    # randint's range here is 2**64 - 1 values: every 64-bit pattern but one, so
    # each 16-bit lane is uniform up to a bias of 2**-64.
    draws = torch.randint(_I64_MIN, _I64_MAX, ((n + _LANES - 1) // _LANES,), dtype=torch.int64)
    return draws.view(torch.int16)[:n]


def cpu_dropout(x: Tensor, p: float) -> Tensor:
    """Training-mode dropout of a float CPU tensor with 0 < p < 1 (see the module docstring)."""
    threshold = _dropped_levels(p) - _LEVELS // 2  # keep where the int16 value >= threshold
    q = keep_probability(p)
    bits = random_int16(x.numel()).view(x.shape)
    mask = (bits >= threshold).to(x.dtype).mul_(1.0 / q)
    return x * mask


class Dropout(nn.Dropout):
    """`nn.Dropout` (same constructor, no state) with `cpu_dropout` for float CPU tensors in training."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            not self.training
            or not 0.0 < self.p < 1.0
            or x.device.type != "cpu"
            or not x.is_floating_point()
            or self.inplace
            or tracing()
        ):
            return F.dropout(x, self.p, self.training, self.inplace)
        return cpu_dropout(x, self.p)
