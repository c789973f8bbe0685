"""Faster exact CPU paths for a unidirectional, batch_first tanh RNN and GRU.

Why this exists: on the CPU, PyTorch runs ``nn.RNN`` (tanh) and ``nn.GRU`` as a
per-step loop of ATen ops, and autograd records several nodes per time step
that the backward then walks one by one (only a padded ``nn.LSTM`` gets a
fused oneDNN kernel). For this project's sizes that overhead made the tanh RNN
and the GRU train slower per FLOP than the LSTM.

`FastRNN` and `FastGRU` compute the same function with one custom
``torch.autograd.Function`` per layer:

* forward: the input projection of every time step is one matmul
  ``(T·B, I) @ (I, G·H)``; the step loop then does only the recurrent part
  (one ``addmm`` into a preallocated buffer and a few in-place element-wise
  ops), keeping the gate activations the backward needs;
* backward: a reverse step loop does only the sequential part, the gradient
  flowing through ``h_{t-1}`` (two or three ops per step; every factor that
  does not depend on that gradient is computed for all steps at once before
  the loop). The per-step pre-activation gradients land in one (T, B, G·H)
  buffer, and the weight, bias and input gradients come from a few large
  matmuls and sums after the loop;
* tanh is evaluated through a sigmoid (torch's float32 CPU tanh costs several
  times its sigmoid): the loops carry u = (h + 1) / 2 = σ(2a), with the affine
  change folded into the weights, and convert back once after the loop.

The gain is largest where per-step overhead dominates (small batch or hidden
size, long sequences); once the matmuls dominate (e.g. a GRU with B = 64,
H >= 128) both paths run at about the machine's sgemm rate and the gain is
small. Where measurements showed no gain, the module runs torch's forward:
fewer than ``min_steps`` time steps, or inference (no autograd) on fewer than
``min_inference_batch`` rows (both are class attributes, overridable per
instance).

Both classes subclass torch's modules, so the constructor, the parameter names
(``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``) and
state_dicts are torch's: saved models load unchanged in either direction.
The fast path runs for batched float32 tensors on the CPU; everything else
(CUDA and its cuDNN kernels, other dtypes, packed sequences, unbatched input,
``bias=False``, ``nonlinearity="relu"``, tracing/compiling/functorch
transforms, autocast) goes to ``super().forward`` and behaves exactly as torch.

Results equal torch's up to float32 rounding (tests: 1e-5); against a float64
reference the forward error is about twice torch's own, the gradient error
about the same. Dropout between layers is applied with torch's own
``dropout`` to the time-major (T, B, H) output of each layer but the last, as
ATen does, so under the same seed it draws the same mask as ``nn.RNN`` /
``nn.GRU``. The backward is not differentiable itself (double backward raises).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textclf.models.fast_rnn_kernels import (
    GRULayer,
    RNNTanhLayer,
    _gru_inference,
    _rnn_tanh_inference,
)

__all__ = ["FastRNN", "FastGRU", "RNNTanhLayer", "GRULayer"]


# --------------------------------------------------------------------------- modules


def _check_layout(module: nn.RNNBase) -> None:
    if module.bidirectional:
        raise ValueError(
            f"{type(module).__name__} is unidirectional only: build a bidirectional encoder from two "
            "unidirectional modules (one fed the reversed sequence), or use torch's module."
        )
    if not module.batch_first:
        raise ValueError(f"{type(module).__name__} takes batch_first input only: pass batch_first=True.")


def _functorch_wrapped(t: Tensor) -> bool:
    """Whether ``t`` is inside a vmap / grad transform (a private torch probe). A torch without
    the probe counts every tensor as wrapped: the fast path then steps aside for torch's own
    kernels rather than risk a wrong gradient."""
    probe = getattr(getattr(getattr(torch, "_C", None), "_functorch", None), "is_functorch_wrapped_tensor", None)
    return True if probe is None else bool(probe(t))


class _FastMixin:
    """The dispatch and the layer stacking shared by FastRNN and FastGRU."""

    _layer: type[torch.autograd.Function]
    # When the hand-written path is used, from A/B timings on CPU (1 thread,
    # B 1-256, H 64-256): its fixed cost per call (weight transforms, buffers,
    # views) loses to torch below about 4 time steps (T = 4 is break-even,
    # T >= 5 wins for every B and H tried). Without autograd torch's own loop is
    # already lean, so only batches wide enough for the cheaper gate maths to
    # pay for the per-step Python calls gain: the tanh RNN from about 16 rows
    # (x1.15-1.25 at B = 16, T = 20), the GRU from about 32 (x1.04-1.11; it
    # loses at B = 1, x0.85-0.9).
    min_steps: int = 4
    min_inference_batch: int = 16

    def _layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # getattr, not self._flat_weights: also right under parametrizations and functional_call
        return (
            getattr(self, f"weight_ih_l{layer}"),
            getattr(self, f"weight_hh_l{layer}"),
            getattr(self, f"bias_ih_l{layer}"),
            getattr(self, f"bias_hh_l{layer}"),
        )

    def _fast_plan(self, input, hx):
        """(per-layer weights, whether autograd records) when the hand-written path applies, else None.

        It applies when it computes what torch would (batched float32 CPU
        tensors, tanh, biases, no tracing/compiling/transforms/autocast) and
        is expected to be faster (``min_steps``, ``min_inference_batch``).
        """
        if not isinstance(input, Tensor) or input.dim() != 3 or input.numel() == 0:
            return None  # packed sequences, unbatched or empty input
        if input.device.type != "cpu" or input.dtype != torch.float32:
            return None  # CUDA (cuDNN) and every other dtype: torch's kernels
        if hx is not None and (not isinstance(hx, Tensor) or hx.device.type != "cpu" or hx.dtype != torch.float32):
            return None
        if (
            not self.bias
            or getattr(self, "nonlinearity", "tanh") != "tanh"
            or self.bidirectional
            or not self.batch_first
        ):
            return None
        if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return None  # exporters and compilers see torch's op
        if torch.is_autocast_enabled("cpu") or _functorch_wrapped(input):
            return None  # autocast, vmap / grad transforms: torch's rules apply
        B, T = input.shape[0], input.shape[1]
        if T < self.min_steps:
            return None
        weights = [self._layer_weights(k) for k in range(self.num_layers)]
        if any(w.device.type != "cpu" or w.dtype != torch.float32 for ws in weights for w in ws):
            return None
        grad = torch.is_grad_enabled() and (
            input.requires_grad
            or (hx is not None and hx.requires_grad)
            or any(w.requires_grad for ws in weights for w in ws)
        )
        if not grad and B < self.min_inference_batch:
            return None
        return weights, grad

    def forward(self, input, hx=None):
        plan = self._fast_plan(input, hx)
        if plan is None:
            return super().forward(input, hx)
        weights, grad = plan
        B = input.size(0)
        self.check_input(input, None)  # torch's own messages for a wrong input size
        if hx is not None:
            self.check_hidden_size(hx, (self.num_layers, B, self.hidden_size))

        run = self._layer.apply if grad else self._inference
        layer_input = input.transpose(0, 1)  # (T, B, I) view; the layer copies it contiguous once
        last_states = []
        for k, ws in enumerate(weights):
            out = run(layer_input, None if hx is None else hx[k], *ws)  # (T, B, H)
            last_states.append(out[-1])  # (B, H)
            if k < self.num_layers - 1 and self.dropout > 0 and self.training:
                # ATen drops the time-major (T, B, H) layer output too: same mask under the same seed
                out = F.dropout(out, self.dropout, training=True)
            layer_input = out
        return layer_input.transpose(0, 1), torch.stack(last_states, 0)  # (B, T, H), (L, B, H)


class FastRNN(_FastMixin, nn.RNN):
    """``nn.RNN`` (tanh, batch_first, unidirectional) with a faster exact CPU path.

    Takes torch's arguments; ``batch_first`` defaults to True here and False is
    refused, as is ``bidirectional=True`` (ValueError). ``forward(x, h0=None)``
    returns ``(output (B, T, H), h_n (L, B, H))`` like ``nn.RNN``. Inputs the
    fast path does not cover (see the module docstring) run torch's forward.
    """

    _layer = RNNTanhLayer
    _inference = staticmethod(_rnn_tanh_inference)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("batch_first", True)
        super().__init__(*args, **kwargs)
        _check_layout(self)


class FastGRU(_FastMixin, nn.GRU):
    """``nn.GRU`` (batch_first, unidirectional) with a faster exact CPU path.

    Takes torch's arguments; ``batch_first`` defaults to True here and False is
    refused, as is ``bidirectional=True`` (ValueError). ``forward(x, h0=None)``
    returns ``(output (B, T, H), h_n (L, B, H))`` like ``nn.GRU``. Inputs the
    fast path does not cover (see the module docstring) run torch's forward.
    """

    _layer = GRULayer
    _inference = staticmethod(_gru_inference)
    min_inference_batch = 32

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("batch_first", True)
        super().__init__(*args, **kwargs)
        _check_layout(self)
