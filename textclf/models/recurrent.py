"""Recurrent encoders: one vector per text from a right-padded batch of token vectors.

An encoder is a recurrent cell (tanh RNN, GRU or LSTM; optionally stacked and/or
bidirectional) followed by a pooling of its per-token outputs ("last", "mean",
"max" or "attention"). `CELLS` maps each recurrent family of
:data:`textclf.models.registry.ENCODERS` to its torch module.

Masking is exact: padding never changes a result, in either direction.

On CUDA, ``forward`` packs the batch (``pack_padded_sequence``) and runs every
layer and direction in one fused cuDNN call (:meth:`RecurrentEncoder._forward_packed`):
padding is never computed. On the CPU, packed input falls back to a per-step
loop and only a padded ``nn.LSTM`` takes the fast oneDNN kernel, so there the
batch stays padded:

- forward direction: with right padding the padding comes *after* the real
  tokens, so outputs at real positions never see it. The "last" state of text b
  is the output at position lengths[b] - 1.
- reverse direction: each text is reversed *within its length* (padding stays
  where it is), run through a forward-only cell, and reversed back. The output at
  position t then depends on tokens t .. length-1 only, and the final state sits
  at position 0, the true first token.

Stacked bidirectional layers feed both directions of one layer into the next, so
they run layer by layer (one single-layer, single-direction module per layer and
direction). Unidirectional stacks use one multi-layer torch module.
"""

from __future__ import annotations

import logging
import warnings
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from textclf.core.errors import ConfigError
from textclf.models.checks import (
    POOLINGS,
    check_bool,
    check_choice,
    check_fraction,
    check_int,
    tracing,
)
from textclf.models.dropout import Dropout
from textclf.models.fast_rnn import FastGRU, FastRNN

# The torch module behind each recurrent family of textclf.models.registry.ENCODERS:
# CELLS[cell](input_size, hidden_size, num_layers=..., dropout=...), batch_first.
# The tanh RNN and the GRU use textclf.models.fast_rnn: the same modules (parameters,
# state dicts, results up to float32 rounding) with a faster exact CPU path, as torch
# runs them as a per-step loop of small ops there; only a padded LSTM has a fused
# oneDNN kernel. On CUDA they are torch's own (cuDNN).
CELLS = {
    "rnn": partial(FastRNN, nonlinearity="tanh", batch_first=True),  # Elman RNN
    "gru": partial(FastGRU, batch_first=True),
    "lstm": partial(nn.LSTM, batch_first=True),
}


INITS = ("standard", "chrono")

# The packed path hands cuDNN the per-direction modules' weights, which do not sit in
# one contiguous buffer; cuDNN then packs them itself on each call (a copy of the
# weights, small next to the recurrence) and says so every time.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk of memory")


def _init_recurrent(module: nn.RNNBase, cell: str, init: str = "standard", max_length: int | None = None) -> None:
    """Xavier input weights, orthogonal recurrent weights (per gate), zero biases, and the gate biases.

    ``standard``: LSTM forget-gate bias 1, so early training does not forget by default.
    ``chrono`` (Tallec & Ollivier 2018, "Can recurrent neural networks warp
    time?"): the gate that keeps the state gets bias ``log(u)``, ``u ~ U(1,
    T_max - 1)`` per unit, so unit time scales spread over 1..T_max steps
    instead of all sitting near 1/(1 - sigmoid(1)) ≈ 3.7 steps: for the LSTM the
    forget gate gets ``log(u)`` and the input gate ``-log(u)``; for the GRU the
    update gate z (h' = (1 - z) n + z h, so z keeps the state) gets ``log(u)``.
    The whole bias sits in ``bias_ih``; ``bias_hh`` stays 0, as torch adds both.
    """
    hidden = module.hidden_size
    with torch.no_grad():
        for name, p in module.named_parameters():
            gates = p.shape[0] // hidden  # 4 for LSTM (i, f, g, o), 3 for GRU (r, z, n), 1 for RNN
            if name.startswith("weight_ih"):
                for chunk in p.chunk(gates, 0):
                    nn.init.xavier_uniform_(chunk)
            elif name.startswith("weight_hh"):
                for chunk in p.chunk(gates, 0):
                    nn.init.orthogonal_(chunk)
            elif name.startswith("bias"):
                p.zero_()
                if not name.startswith("bias_ih"):
                    continue
                if init == "chrono":
                    timescale = torch.log(torch.empty(hidden).uniform_(1.0, float(max_length) - 1.0))  # (H,)
                    p[hidden : 2 * hidden] = timescale  # LSTM forget gate / GRU update gate: both at [H, 2H)
                    if cell == "lstm":
                        p[:hidden] = -timescale  # input gate: write little while the state is kept
                elif cell == "lstm":
                    p[hidden : 2 * hidden] = 1.0  # forget gate; bias_hh's stays 0, sum is 1


def _reorder(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """out[b, t] = x[b, index[b, t]] for x (B, T, D) and index (B, T)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))


log = logging.getLogger(__name__)

_FUSED = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh"}
_warned_fused: list[bool] = []


def _fused_call(cell: str):
    """torch's fused packed-sequence op for ``cell`` (``torch._VF``, what ``nn.LSTM`` itself calls), or None.

    It is not public API: a torch release without it degrades to the exact padded
    path (same results, slower on a GPU) with a one-line note, instead of failing.
    """
    call = getattr(getattr(torch, "_VF", None), _FUSED[cell], None)
    if call is None and not _warned_fused:
        _warned_fused.append(True)
        log.warning(
            "this torch has no torch._VF.%s: the GPU packed path is off, the padded path runs instead", _FUSED[cell]
        )
    return call


class RecurrentEncoder(nn.Module):
    """Recurrent cell + pooling. `forward(x, lengths)` -> (B, output_size)."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        init: str = "standard",
        chrono_max_length: int | None = None,
    ):
        super().__init__()
        self.cell = check_choice("encoder.cell", cell, tuple(CELLS))
        self.init = check_choice("encoder.init", init, INITS)
        if self.init == "chrono":
            if self.cell == "rnn":
                raise ConfigError(
                    "encoder.init=chrono sets gate biases; the tanh RNN has no gates. Use encoder.cell=lstm or gru, or encoder.init=standard."
                )
            chrono_max_length = check_int("encoder.chrono_max_length", chrono_max_length, 3)
        self.input_size = check_int("encoder.input_size", input_size, 1)
        self.hidden_size = check_int("encoder.hidden_size", hidden_size, 1)
        self.layers = check_int("encoder.layers", layers, 1)
        self.bidirectional = check_bool("encoder.bidirectional", bidirectional)
        self.dropout = check_fraction("encoder.dropout", dropout)
        self.pooling = check_choice("encoder.pooling", pooling, POOLINGS)
        self.output_size = self.hidden_size * (2 if self.bidirectional else 1)

        make = CELLS[self.cell]
        if not self.bidirectional:
            # Right padding never leaks into a forward pass, so one fused multi-layer
            # module is exact. torch applies `dropout` between its stacked layers (and
            # warns if asked to with one layer, where it has no effect anyway).
            self.rnn = make(
                self.input_size,
                self.hidden_size,
                num_layers=self.layers,
                dropout=self.dropout if self.layers > 1 else 0.0,
            )
            _init_recurrent(self.rnn, self.cell, self.init, chrono_max_length)
        else:
            # Layer by layer: the reverse direction needs its own within-length reversal
            # of each layer's input, which a fused bidirectional module cannot do.
            self.stack = nn.ModuleList()
            for i in range(self.layers):
                size = self.input_size if i == 0 else self.output_size
                layer = nn.ModuleDict({"fwd": make(size, self.hidden_size), "bwd": make(size, self.hidden_size)})
                for module in layer.values():
                    _init_recurrent(module, self.cell, self.init, chrono_max_length)
                self.stack.append(layer)
            self.layer_dropout = Dropout(self.dropout)  # between stacked layers, as in nn.LSTM
        if self.pooling == "attention":
            # a learned query vector: score_t = q . h_t, softmax over the real tokens
            self.attention = nn.Linear(self.output_size, 1, bias=False)

    # -- public API -------------------------------------------------------------

    # None: cuDNN's packed path on CUDA, the exact padded path elsewhere. Tests set it
    # to True on the CPU to check the packed path against the padded one.
    packed: bool | None = None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, I) float, lengths (B,) int on any device -> pooled (B, output_size)."""
        if (x.is_cuda if self.packed is None else self.packed) and not tracing() and _fused_call(self.cell) is not None:
            return self._forward_packed(x, lengths)
        # Max, mean and last pooling never look across directions at one position, so
        # the top layer's reverse states can stay in reversed order (see _encode).
        states, mask, lengths = self._encode(x, lengths, ordered=self.pooling == "attention")
        return self._pool(states, mask, lengths)

    def sequence(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-token outputs of the top layer, (B, T, output_size), zeros at padding."""
        states, mask, _ = self._encode(x, lengths)
        states = states.masked_fill(~mask.unsqueeze(-1), 0.0)
        return F.pad(states, (0, 0, 0, x.size(1) - states.size(1)))  # undo the trimming

    # -- internals ----------------------------------------------------------------

    def _prepare(self, x: torch.Tensor, lengths: torch.Tensor):
        if x.dim() != 3 or lengths.dim() != 1 or lengths.size(0) != x.size(0):
            raise ValueError(f"expected x (B, T, I) and lengths (B,); got {tuple(x.shape)} and {tuple(lengths.shape)}")
        if not tracing():
            # One host read per batch (free when lengths are on the CPU, one sync on a
            # GPU): a zero length would give NaN, a too-long one an out-of-range gather.
            lo, hi = torch.stack(torch.aminmax(lengths)).tolist()
            if lo < 1 or hi > x.size(1):
                raise ValueError(f"lengths must be in [1, {x.size(1)}]; got min {lo}, max {hi}")
            x = x[:, :hi]  # columns that are padding in every row: skip them, same result
        lengths = lengths.to(device=x.device, dtype=torch.long, non_blocking=True)
        return x, lengths

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor, ordered: bool = True):
        """-> states (B, T', D), mask (B, T') True at real tokens, lengths (B,).

        ``ordered=False`` (bidirectional only) leaves the top layer's reverse half
        in within-length reversed order: reversal only permutes real positions
        among themselves, so the mask is the same, max and mean over time are
        unchanged, and the reverse direction's final state sits at ``length - 1``
        like the forward one's. It saves a gather and its backward scatter.

        States at padding positions are left as computed (finite junk): each
        pooling masks them its own way, so none pays for a second full-size
        masked copy (max pooling would otherwise fill twice).
        """
        x, lengths = self._prepare(x, lengths)
        positions = torch.arange(x.size(1), device=x.device)  # (T',)
        mask = positions < lengths[:, None]  # (B, T')
        if not self.bidirectional:
            h, _ = self._run(self.rnn, x)  # (B, T', H)
        else:
            # rev[b, t] = length-1-t at real tokens and t at padding: reverses each text
            # within its length and is its own inverse.
            rev = torch.where(mask, lengths[:, None] - 1 - positions, positions)  # (B, T')
            h = x
            for i, layer in enumerate(self.stack):
                if i > 0:
                    h = self.layer_dropout(h)
                fwd, _ = self._run(layer["fwd"], h)  # (B, T', H)
                bwd, _ = self._run(layer["bwd"], _reorder(h, rev))  # (B, T', H) in reversed order
                if ordered or i < self.layers - 1:
                    bwd = _reorder(bwd, rev)  # back to the original order
                h = torch.cat([fwd, bwd], dim=-1)  # (B, T', 2H)
            # Padding positions of h hold junk, but it only ever flows into later padding
            # positions of the next layer (in both directions), never into real tokens.
        return h, mask, lengths

    def _run(self, module: nn.Module, x: torch.Tensor):
        """``module(x)``; under CPU autocast (train.cpu_bf16) a tanh-RNN or GRU runs in float32.

        oneDNN has a bf16 kernel for the LSTM only: under autocast torch would run the
        other two as a per-step bf16 loop, slower than textclf.models.fast_rnn's float32 path.
        """
        if self.cell != "lstm" and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return module(x.float())
        return module(x)

    def _forward_packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The GPU path: packed sequences through one fused cuDNN call for every layer and direction.

        On the CPU, packed input takes ATen's per-step loop (only a padded LSTM
        gets oneDNN), hence the reversal path there; on CUDA cuDNN runs packed
        sequences, both directions and all layers in one kernel sequence, and
        padding is never computed. Exact in the same sense: each text's states
        depend only on its own tokens. ``lengths`` should be on the CPU (the
        collate keeps them there) so packing needs no device sync.
        """
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        x, dev_lengths = self._prepare(x, lengths)
        cpu_lengths = lengths if lengths.device.type == "cpu" else lengths.cpu()
        packed = pack_padded_sequence(x, cpu_lengths, batch_first=True, enforce_sorted=False)
        directions = 2 if self.bidirectional else 1
        weights = self._flat_weights()
        hx = x.new_zeros(self.layers * directions, x.size(0), self.hidden_size)
        call = _fused_call(self.cell)
        dropout = self.dropout if self.layers > 1 else 0.0
        result = call(
            packed.data,
            packed.batch_sizes,
            (hx, hx) if self.cell == "lstm" else hx,
            weights,
            True,
            self.layers,
            dropout,
            self.training,
            self.bidirectional,
        )
        out, h_n = result[0], result[1]  # h_n (layers * directions, B, H) in sorted order
        if self.pooling == "last":
            h_n = h_n.index_select(1, packed.unsorted_indices)
            return torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.bidirectional else h_n[-1]  # (B, D)
        states, _ = pad_packed_sequence(
            type(packed)(out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
            batch_first=True,
            total_length=x.size(1),
        )  # (B, T', D), zeros at padding
        mask = torch.arange(x.size(1), device=x.device) < dev_lengths[:, None]
        return self._pool(states, mask, dev_lengths)

    def _flat_weights(self) -> list[torch.Tensor]:
        """The weights in torch's fused order: per layer, per direction, [w_ih, w_hh, b_ih, b_hh]."""
        if not self.bidirectional:
            return list(self.rnn._flat_weights)
        return [w for layer in self.stack for d in ("fwd", "bwd") for w in layer[d]._flat_weights]

    def _pool(self, states: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "last":
            # The forward direction ends at the last real token; so does the reverse one,
            # kept in reversed order by _encode: its final state is the one at the true
            # first token.
            index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.size(-1))  # (B, 1, D)
            return states.gather(1, index).squeeze(1)  # (B, D)
        if self.pooling == "mean":
            return states.masked_fill(~mask.unsqueeze(-1), 0.0).sum(1) / lengths.unsqueeze(-1).to(states.dtype)
        if self.pooling == "max":
            return states.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        # attention
        states = states.masked_fill(~mask.unsqueeze(-1), 0.0)  # 0 × junk must stay 0 in the bmm
        scores = self.attention(states).squeeze(-1)  # (B, T')
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # exactly 0 at padding
        return torch.bmm(weights.unsqueeze(1).to(states.dtype), states).squeeze(1)  # (B, D)
