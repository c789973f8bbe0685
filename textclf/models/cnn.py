"""Convolutional text encoder: one vector per text from a right-padded batch of token vectors.

Follows Kim (2014), "Convolutional Neural Networks for Sentence Classification"
(EMNLP 2014): parallel 1-D convolutions over the token vectors with several
window widths (3, 4 and 5 by default), ``hidden_size`` filters per width, ReLU,
max-over-time pooling, and the pooled features of all widths concatenated, so
``output_size = hidden_size * len(widths)``. Dropout on that vector and the
softmax layer belong to the classifier, as in the paper.

`CNNEncoder` has the interface of the recurrent encoder: ``forward(x, lengths)``
-> (B, output_size), ``sequence(x, lengths)`` -> (B, T, output_size), and the
attribute ``output_size``, so the classifier can use either.

Exact masking
-------------
Like Kim's implementation we use the *wide* convolution: each text is padded
with ``w - 1`` zero vectors on both sides before a width-``w`` convolution, so a
text of length L has L + w - 1 outputs and texts shorter than the widest window
still get features. Output ``p`` of that per-text convolution covers tokens
``p - w + 1 .. p`` (tokens outside ``0 .. L-1`` being the zero padding).

A batch reproduces this exactly. With x (B, T, I) right-padded:

1. x is set to zero at padding positions (t >= L), so every token the per-text
   convolution would see as right padding is a zero vector here as well;
2. ``conv1d(..., padding=w - 1)`` adds the ``w - 1`` leading zeros (and as many
   trailing ones, which step 1 already provides for every shorter text), so
   batch output ``p`` covers tokens ``p - w + 1 .. p`` of its own text, the
   same window as the per-text output ``p``;
3. only positions ``p <= L + w - 2`` exist in the per-text convolution (their
   window holds at least one real token); the later ones see zeros only. They
   are set to -inf, so the max over time never picks them.

Each kept output is then the same dot product, over the same window, as in the
per-text convolution, and no row of the batch reads another row. So a text's
result depends neither on how much padding the batch adds nor on the other
texts in it (up to float rounding, since a convolution kernel may group its
sums differently for other shapes).

Cost
----
ReLU is monotone and adding a constant preserves order, so
``max_t relu(z_t + b) == relu(max_t z_t + b)`` exactly, also in floating point
(rounded addition is monotone). The convolution therefore runs without bias and
the bias and ReLU are applied to the pooled (B, H) vector, not to the (B, H, T)
feature map.

One ``F.conv1d`` per width on a channels-first copy of x was the fastest of the
layouts measured on CPU (one convolution with the widest kernel and the
narrower ones zero-padded, im2col + one matmul, recomputing only the max
positions by gather, conv1d on the channels-last view; docs/benchmarks.md,
"CNN encoder layout"). The convolutions run near the core's peak, and cost
more than a 1-layer LSTM of the same width: widths (3, 4, 5) take 12·I·H
multiply-adds per position against the LSTM's 4·H·(I + H) = 8·I·H.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from textclf.core.errors import ConfigError
from textclf.models.checks import check_int, tracing

__all__ = ["CNNEncoder", "DEFAULT_WIDTHS"]

DEFAULT_WIDTHS = (3, 4, 5)  # Kim (2014)


def _check_widths(key: str, value) -> tuple[int, ...]:
    """A non-empty sequence of distinct integers >= 1 -> tuple of ints."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{key} must be a non-empty list of integers >= 1. Got {value!r} instead.")
    widths = tuple(check_int(f"{key}[{i}]", w, 1) for i, w in enumerate(value))
    if len(set(widths)) != len(widths):
        # Two groups of the same width are one group with more filters: that is hidden_size.
        raise ConfigError(f"{key} must not repeat a width (use hidden_size for more filters). Got {value!r} instead.")
    return widths


# -----------------------------------------------------------------------------


class CNNEncoder(nn.Module):
    """Kim (2014) CNN: wide convolutions per width, ReLU, max over time, concatenated.

    ``forward(x, lengths)`` -> (B, hidden_size * len(widths)).

    Parameters live in ``convs``, one ``nn.Conv1d(input_size, hidden_size, w)``
    per width, in the order of ``widths``; that is also the order of the feature
    groups in the output. Weights are Kaiming (He) uniform for ReLU
    (``fan_in = input_size * w``, gain sqrt(2)), biases zero; drawn from torch's
    global RNG in that order, so a seed fixes them.
    """

    # What the classifier records of any encoder (registry family, depth, direction, pooling):
    # a CNN is one layer, reads the whole window at once and always max-pools.
    cell, layers, bidirectional, dropout, pooling = "cnn", 1, False, 0.0, "max"

    def __init__(self, input_size: int, hidden_size: int, widths=DEFAULT_WIDTHS):
        super().__init__()
        self.input_size = check_int("encoder.input_size", input_size, 1)
        self.hidden_size = check_int("encoder.hidden_size", hidden_size, 1)
        self.widths = _check_widths("encoder.widths", widths)
        self.output_size = self.hidden_size * len(self.widths)
        # padding=w-1 records the wide convolution in the module's repr; forward calls
        # F.conv1d itself so that the bias can be added after pooling.
        self.convs = nn.ModuleList(nn.Conv1d(self.input_size, self.hidden_size, w, padding=w - 1) for w in self.widths)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init suits the ReLU that follows; zero bias so no filter starts always on or off."""
        with torch.no_grad():
            for conv in self.convs:
                nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")  # bound sqrt(6 / (I * w))
                conv.bias.zero_()

    # -- public API -------------------------------------------------------------

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, I) float, lengths (B,) int on any device -> pooled (B, output_size)."""
        xt, lengths = self._prepare(x, lengths)  # (B, I, T'), T' = longest text
        steps = xt.size(2)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            z = F.conv1d(xt, conv.weight, None, padding=w - 1)  # (B, H, T' + w - 1)
            # Output p covers tokens p-w+1 .. p; it holds a real token iff p < length + w - 1.
            positions = torch.arange(steps + w - 1, device=z.device)  # (T' + w - 1,)
            empty = positions >= (lengths + (w - 1)).unsqueeze(1)  # (B, T' + w - 1)
            z = z.masked_fill(empty.unsqueeze(1), float("-inf")).amax(2)  # (B, H); every text has a real window
            pooled.append(F.relu(z + conv.bias))  # bias and ReLU commute with the max, see module doc
        return torch.cat(pooled, dim=1)  # (B, H * len(widths))

    def sequence(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-token features (B, T, output_size), zeros at padding.

        At a real token t, the concatenation over widths of relu(conv + bias) for the
        window *ending* at t (tokens t-w+1 .. t, zeros before the text starts), i.e.
        what a causal convolution sees up to t. ``forward`` pools over these and also
        over the w-1 windows that start inside the text but end after its last
        token, so it is the max of this sequence only when widths == (1,).
        """
        T = x.size(1)
        xt, lengths = self._prepare(x, lengths)  # (B, I, T')
        steps = xt.size(2)
        maps = []
        for w, conv in zip(self.widths, self.convs):
            z = F.conv1d(xt, conv.weight, conv.bias, padding=w - 1)  # (B, H, T' + w - 1)
            maps.append(F.relu(z[:, :, :steps]))  # (B, H, T'): output p ends at token p
        states = torch.cat(maps, dim=1).transpose(1, 2)  # (B, T', output_size)
        real = torch.arange(steps, device=states.device) < lengths.unsqueeze(1)  # (B, T')
        states = states.masked_fill(~real.unsqueeze(-1), 0.0)
        return F.pad(states, (0, 0, 0, T - steps))  # undo the trimming: (B, T, output_size)

    # -- internals ----------------------------------------------------------------

    def _prepare(self, x: torch.Tensor, lengths: torch.Tensor):
        """Check shapes and lengths -> x zeroed at padding as (B, I, T'), lengths (B,) long.

        The checks are skipped while tracing: a trace records tensor operations, not
        Python tests on its sizes, which would only warn and be frozen to the example.
        """
        if not tracing():
            if x.dim() != 3 or lengths.dim() != 1 or lengths.size(0) != x.size(0):
                raise ValueError(
                    f"expected x (B, T, I) and lengths (B,); got {tuple(x.shape)} and {tuple(lengths.shape)}"
                )
            if x.size(2) != self.input_size:
                raise ValueError(f"expected x (B, T, {self.input_size}); got {tuple(x.shape)}")
            # One host read per batch (free when lengths are on the CPU, one sync on a
            # GPU): a zero length would leave a text with no window (max of -inf).
            lo, hi = torch.stack(torch.aminmax(lengths)).tolist()
            if lo < 1 or hi > x.size(1):
                raise ValueError(f"lengths must be in [1, {x.size(1)}]; got min {lo}, max {hi}")
            x = x[:, :hi]  # columns that are padding in every row: skip them, same result
        lengths = lengths.to(device=x.device, dtype=torch.long, non_blocking=True)
        # One channels-first copy shared by all widths (conv1d was faster on it than on the
        # transposed view), zeroed in place at padding so each window sees the zeros that a
        # per-text wide convolution pads with; this also gives padding zero gradient.
        # clone, not contiguous(): with T' == 1 the transposed view is already contiguous
        # and the in-place fill would write into the caller's x.
        xt = x.transpose(1, 2).clone(memory_format=torch.contiguous_format)  # (B, I, T')
        real = torch.arange(xt.size(2), device=x.device) < lengths.unsqueeze(1)  # (B, T')
        xt.masked_fill_(~real.unsqueeze(1), 0.0)
        return xt, lengths
