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

__all__ = ["FastRNN", "FastGRU", "RNNTanhLayer", "GRULayer"]


# --------------------------------------------------------------------------- autograd Functions
#
# One tanh-RNN or GRU layer, forward and hand-written backward. Shapes are time-major:
# x (T, B, I), hidden states (T, B, H).


def _refuse_create_graph() -> None:
    """The backward is hand-written and not recorded: refuse to build a graph of it.

    ``create_graph=True`` (double backward, gradient penalties, Hessians) would
    otherwise treat these gradients as constants, silently.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(
            "FastRNN / FastGRU layers are differentiable once: double backward (create_graph=True) is not "
            "supported. Use torch.nn.RNN / torch.nn.GRU for higher-order gradients."
        )


# --------------------------------------------------------------------------- tanh RNN kernels
#
# Shapes: T steps, B batch, I input size, H hidden size. Everything inside the
# kernels is time-major, so that each step's slice [t] is one contiguous (B, ·)
# block that addmm can write into directly. h0 is None for a zero initial state.
#
# Both cells need tanh, which in torch's float32 CPU kernel costs several times
# a sigmoid. The loops therefore run on u = (h + 1) / 2 = σ(2a) instead of
# h = tanh(a), with h = 2u - 1 folded into the weights and biases, and convert
# back once after the loop. Mathematically identical; the rounding differs at
# the float32 level (about twice torch's own distance to a float64 reference).


def _initial_u(h0: Tensor | None, B: int, H: int, dtype: torch.dtype) -> Tensor:
    """u_0 = (h0 + 1) / 2: (B, H)."""
    if h0 is None:
        return torch.full((B, H), 0.5, dtype=dtype)
    return (h0 + 1).mul_(0.5)


def _rnn_tanh_forward(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """Hidden states (T, B, H) of h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); x is (T, B, I) contiguous.

    With a_t the pre-activation and h = 2u - 1:
      2 a_t = 2 W_ih x_t + 2 (b_ih + b_hh - W_hh 1) + 4 W_hh u_{t-1},  u_t = σ(2 a_t),
    so a step is one addmm and one in-place sigmoid.
    """
    T, B, I = x.shape
    H = w_hh.size(0)
    bias = (b_ih + b_hh - w_hh.sum(1)).mul_(2)  # (H,)
    # 2 × the input projection of all steps at once, bias included: (T, B, H).
    # The buffer then becomes u step by step, in place.
    us = torch.addmm(bias, x.view(T * B, I), w_ih.t(), alpha=2).view(T, B, H)
    w_hh_t = w_hh.t()  # (H, H) view: addmm reads it as a transposed operand
    u = _initial_u(h0, B, H, x.dtype)
    for step in us.unbind(0):  # step: (B, H), contiguous
        u = step.addmm_(u, w_hh_t, alpha=4).sigmoid_()
    return us.mul_(2).sub_(1)  # h = 2u - 1, in place: (T, B, H)


def _rnn_tanh_backward(
    grad_hs: Tensor, x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, hs: Tensor, needs: tuple[bool, ...]
):
    """Gradients (x, h0, W_ih, W_hh, b_ih, b_hh) given dL/dhs (T, B, H); None where not needed."""
    T, B, I = x.shape
    H = hs.size(2)
    # da (T, B, H) starts as the upstream gradient and becomes, step by step
    # from the end, the gradient of the pre-activation: da_t = dh_t * (1 - h_t²),
    # dh_{t-1} += da_t @ W_hh. Only that chain is sequential.
    da = grad_hs.clone(memory_format=torch.contiguous_format)
    dtanh = torch.addcmul(torch.ones((), dtype=hs.dtype), hs, hs, value=-1.0)  # (T, B, H): 1 - h²
    steps, dsteps = da.unbind(0), dtanh.unbind(0)
    for t in range(T - 1, 0, -1):
        steps[t].mul_(dsteps[t])
        steps[t - 1].addmm_(steps[t], w_hh)
    steps[0].mul_(dsteps[0])

    dx = dh0 = dw_ih = dw_hh = db_ih = db_hh = None
    da2 = da.view(T * B, H)
    if needs[0]:
        dx = torch.mm(da2, w_ih).view(T, B, I)
    if needs[1]:
        dh0 = torch.mm(steps[0], w_hh)
    if needs[2]:
        dw_ih = torch.mm(da2.t(), x.view(T * B, I))
    if needs[3]:
        # Σ_t da_tᵀ h_{t-1}: steps 1.. pair with hs[:-1] in one matmul, step 0 with h0.
        dw_hh = torch.mm(da[1:].view((T - 1) * B, H).t(), hs[:-1].reshape((T - 1) * B, H))
        if h0 is not None:
            dw_hh.addmm_(steps[0].t(), h0)
    if needs[4] or needs[5]:
        db = da2.sum(0)
        db_ih = db if needs[4] else None
        # Two distinct tensors: autograd may adopt a returned gradient as .grad.
        db_hh = (db.clone() if needs[4] else db) if needs[5] else None
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


class RNNTanhLayer(torch.autograd.Function):
    """One tanh RNN layer over a time-major (T, B, I) input; returns all hidden states (T, B, H).

    ``h0`` (B, H) may be None (zeros). Differentiable once: the backward is
    hand-written and refuses ``create_graph=True``.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        x = x.contiguous()
        hs = _rnn_tanh_forward(x, h0, w_ih, w_hh, b_ih, b_hh)
        ctx.save_for_backward(x, h0, w_ih, w_hh, hs)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):
        _refuse_create_graph()
        x, h0, w_ih, w_hh, hs = ctx.saved_tensors
        return _rnn_tanh_backward(grad_hs, x, h0, w_ih, w_hh, hs, ctx.needs_input_grad)


# --------------------------------------------------------------------------- GRU kernels
#
# torch's gate order and formulas (rows of W_ih / W_hh are r, z, n):
#   r = σ(W_ir x + b_ir + W_hr h + b_hr)
#   z = σ(W_iz x + b_iz + W_hz h + b_hz)
#   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
#   h' = (1 - z) * n + z * h

_ROW_SCALES: dict[tuple[int, torch.dtype], Tensor] = {}


def _n_rows_doubled(H: int, dtype: torch.dtype) -> Tensor:
    """(3H, 1) column of [1]*2H + [2]*H, built once per size: it scales the n rows of W_ih."""
    key = (H, dtype)
    scale = _ROW_SCALES.get(key)
    if scale is None:
        scale = torch.ones(3 * H, 1, dtype=dtype)
        scale[2 * H :] = 2
        _ROW_SCALES[key] = scale
    return scale


def _gru_forward(x: Tensor, h0: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, keep: bool):
    """(hs (T, B, H), gates (T, B, 3H), ghn (T, B, H) or None) of a GRU layer over x (T, B, I) contiguous.

    With ``keep`` (for the backward), gates holds [r, z, n] and ghn holds
    W_hn h_{t-1} + b_hn of every step; without it the n part of gates is left
    as s below and one (B, H) scratch buffer serves as ghn.

    The loop works on u = (h + 1) / 2 and s = (n + 1) / 2 = σ(2 n_pre) (see
    the tanh note above). With h = 2u - 1:
      W_hh h + b_hh = 2 W_hh u + (b_hh - W_hh 1),
      2 n_pre = 2 (W_in x + b_in) + 2 r * (W_hn h + b_hn),
      u' = (1 - z) s + z u  (the same lerp as h' = (1 - z) n + z h).
    The r and z rows of the recurrent product are accumulated straight into
    the input projection (an in-place addmm, the recurrent r/z biases folded
    into the projection's bias); only the n rows need their own buffer.
    """
    T, B, I = x.shape
    H = w_hh.size(1)
    scale = _n_rows_doubled(H, x.dtype)  # (3H, 1)
    b_hh_u = b_hh - w_hh.sum(1)  # (3H,)
    bias = b_ih * scale[:, 0]  # (3H,): [b_ir + b_hr', b_iz + b_hz', 2 b_in]
    bias[: 2 * H] += b_hh_u[: 2 * H]
    # Input projection of all steps with the n rows doubled: (T, B, 3H). It
    # becomes the gate activations in place.
    gates = torch.addmm(bias, x.view(T * B, I), (w_ih * scale).t()).view(T, B, 3 * H)
    ghn = torch.empty((T if keep else 1, B, H), dtype=x.dtype)
    us = torch.empty((T, B, H), dtype=x.dtype)
    w_rz_t, w_n_t, b_n = w_hh[: 2 * H].t(), w_hh[2 * H :].t(), b_hh_u[2 * H :]  # (H, 2H), (H, H), (H,)
    # Per-step views made once, so the loop does no slicing: (B, 2H), (B, H), ...
    g_rz, g_r, g_z, g_n = (
        v.unbind(0) for v in (gates[..., : 2 * H], gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H :])
    )
    ghn_steps, u_out = ghn.unbind(0), us.unbind(0)
    u = _initial_u(h0, B, H, x.dtype)
    for t in range(T):
        gn = ghn_steps[t if keep else 0]
        g_rz[t].addmm_(u, w_rz_t, alpha=2).sigmoid_()  # r, z: (B, 2H), in place of their projections
        torch.addmm(b_n, u, w_n_t, alpha=2, out=gn)  # W_hn h + b_hn: (B, H)
        g_n[t].addcmul_(g_r[t], gn, value=2).sigmoid_()  # s = σ(2 n_pre)
        u = torch.lerp(g_n[t], u, g_z[t], out=u_out[t])  # u' = s + z (u - s)
    if keep:
        gates[..., 2 * H :].mul_(2).sub_(1)  # n = 2s - 1
    return us.mul_(2).sub_(1), gates, (ghn if keep else None)  # h = 2u - 1: (T, B, H)


def _gru_backward(
    grad_hs: Tensor,
    x: Tensor,
    h0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    hs: Tensor,
    gates: Tensor,
    ghn: Tensor,
    needs: tuple[bool, ...],
):
    """Gradients (x, h0, W_ih, W_hh, b_ih, b_hh) given dL/dhs (T, B, H); None where not needed."""
    T, B, I = x.shape
    H = hs.size(2)
    r, z, n = gates.split(H, dim=2)  # (T, B, H) each; ghn = W_hn h_{t-1} + b_hn: (T, B, H)
    h_prev = torch.empty_like(hs)  # (T, B, H)
    h_prev[1:] = hs[:-1]
    if h0 is None:
        h_prev[0].zero_()
    else:
        h_prev[0] = h0

    # Everything that does not depend on the incoming gradient dh_t, for all
    # steps at once. With dh the gradient w.r.t. h_t:
    #   d(n pre-activation) = dh * (1 - z)(1 - n²)                 = dh * A
    #   d(z pre-activation) = dh * (h_{t-1} - n) z (1 - z)
    #   d(r pre-activation) = dh * A * (W_hn h + b_hn) r (1 - r)
    #   d(W_hh h + b_hh)    = [d r_pre, d z_pre, dh * A * r]
    #   dh_{t-1}            = dh * z + d(W_hh h + b_hh) @ W_hh
    # Few passes over memory: x - x² = x (1 - x) is one addcmul.
    one_minus_z = torch.rsub(z, 1)
    a = torch.addcmul(torch.ones((), dtype=hs.dtype), n, n, value=-1.0).mul_(one_minus_z)  # (T, B, H)
    coef = torch.empty((T, B, 3, H), dtype=hs.dtype)  # factors of [r, z, n], laid out like dgh
    torch.mul(a, ghn, out=coef[:, :, 0]).mul_(torch.addcmul(r, r, r, value=-1.0))
    torch.sub(h_prev, n, out=coef[:, :, 1]).mul_(z).mul_(one_minus_z)
    torch.mul(a, r, out=coef[:, :, 2])

    dh = grad_hs.clone(memory_format=torch.contiguous_format)  # (T, B, H): upstream, plus the recurrent part
    dgh = torch.empty((T, B, 3 * H), dtype=hs.dtype)  # gradient of W_hh h_{t-1} + b_hh
    dh_steps, dh_b = dh.unbind(0), dh.unsqueeze(2).unbind(0)  # (B, H), (B, 1, H)
    dgh_steps, dgh_b = dgh.unbind(0), dgh.view(T, B, 3, H).unbind(0)  # (B, 3H), (B, 3, H)
    coef_steps, z_steps = coef.unbind(0), z.unbind(0)
    for t in range(T - 1, 0, -1):
        torch.mul(dh_b[t], coef_steps[t], out=dgh_b[t])  # (B, 3, H)
        dh_steps[t - 1].addcmul_(dh_steps[t], z_steps[t]).addmm_(dgh_steps[t], w_hh)
    torch.mul(dh_b[0], coef_steps[0], out=dgh_b[0])

    dx = dh0 = dw_ih = dw_hh = db_ih = db_hh = None
    dgh2 = dgh.view(T * B, 3 * H)
    if needs[1]:
        dh0 = torch.addmm(dh_steps[0] * z_steps[0], dgh_steps[0], w_hh)
    if needs[3]:
        dw_hh = torch.mm(dgh2.t(), h_prev.view(T * B, H))
    if needs[5]:
        db_hh = dgh2.sum(0)
    if needs[0] or needs[2] or needs[4]:
        # Gradient of the input projection: as dgh for r and z; dh * A for n.
        dgi = dgh  # dgh is not needed any more: reuse its memory
        torch.mul(dh, a, out=dgi[..., 2 * H :])
        dgi2 = dgi.view(T * B, 3 * H)
        if needs[0]:
            dx = torch.mm(dgi2, w_ih).view(T, B, I)
        if needs[2]:
            dw_ih = torch.mm(dgi2.t(), x.view(T * B, I))
        if needs[4]:
            db_ih = dgi2.sum(0)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


class GRULayer(torch.autograd.Function):
    """One GRU layer over a time-major (T, B, I) input; returns all hidden states (T, B, H).

    ``h0`` (B, H) may be None (zeros). Differentiable once: the backward is
    hand-written and refuses ``create_graph=True``.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        x = x.contiguous()
        hs, gates, ghn = _gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, keep=True)
        ctx.save_for_backward(x, h0, w_ih, w_hh, hs, gates, ghn)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):
        _refuse_create_graph()
        x, h0, w_ih, w_hh, hs, gates, ghn = ctx.saved_tensors
        return _gru_backward(grad_hs, x, h0, w_ih, w_hh, hs, gates, ghn, ctx.needs_input_grad)


def _rnn_tanh_inference(x, h0, w_ih, w_hh, b_ih, b_hh):
    return _rnn_tanh_forward(x.contiguous(), h0, w_ih, w_hh, b_ih, b_hh)


def _gru_inference(x, h0, w_ih, w_hh, b_ih, b_hh):
    return _gru_forward(x.contiguous(), h0, w_ih, w_hh, b_ih, b_hh, keep=False)[0]


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
    # When the hand-written path is used, from A/B timings on CPU (docs/benchmarks.md,
    # "Fast RNN and GRU thresholds"): its fixed cost per call (weight transforms,
    # buffers, views) loses to torch on very short sequences. Without autograd
    # torch's own loop is already lean, so only batches wide enough for the cheaper
    # gate maths to pay for the per-step Python calls gain.
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
