"""FastRNN / FastGRU compute what nn.RNN / nn.GRU compute: outputs, final states,
every gradient, dropout between layers, state_dicts, and the cases that must
stay on torch's own path."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from textclf.models.fast_rnn import FastGRU, FastRNN, GRULayer, RNNTanhLayer

PAIRS = {"rnn": (FastRNN, nn.RNN), "gru": (FastGRU, nn.GRU)}
# (B, T, I, H): a general case, B = 1, T = 1, and a longer one
SHAPES = [(3, 5, 4, 6), (1, 7, 3, 5), (4, 1, 5, 3), (2, 12, 6, 8)]
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_pair(cell, input_size, hidden, layers=1, dropout=0.0, seed=0):
    """(fast, torch) modules with the same weights; the fast one takes its path for every shape."""
    fast_cls, torch_cls = PAIRS[cell]
    torch.manual_seed(seed)
    fast = fast_cls(input_size, hidden, num_layers=layers, dropout=dropout)
    fast.min_steps = fast.min_inference_batch = 1
    ref = torch_cls(input_size, hidden, num_layers=layers, dropout=dropout, batch_first=True)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def used_fast_path(output) -> bool:
    """True when ``output`` came out of one of the hand-written layers (its autograd node is theirs)."""
    node = output.grad_fn  # TransposeBackward0 of the (T, B, H) -> (B, T, H) view
    return node is not None and any(
        "LayerBackward" in type(n).__name__ for n, _ in node.next_functions if n is not None
    )


def run_and_grads(module, x, h0, g_out, g_h):
    """Output, h_n and the gradients w.r.t. x, h0 (when given) and every parameter of sum(out·g_out) + sum(h_n·g_h)."""
    out, h_n = module(x, h0)
    wrt = [x] + ([h0] if h0 is not None else []) + list(module.parameters())
    grads = torch.autograd.grad((out * g_out).sum() + (h_n * g_h).sum(), wrt)
    return out, h_n, grads


@pytest.mark.parametrize("cell,layers,shape,with_h0", list(itertools.product(PAIRS, (1, 2), SHAPES, (False, True))))
def test_matches_torch(cell, layers, shape, with_h0):
    B, T, I, H = shape
    fast, ref = make_pair(cell, I, H, layers)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=g, requires_grad=True)
    h0 = torch.randn(layers, B, H, generator=g, requires_grad=True) if with_h0 else None
    g_out, g_h = torch.randn(B, T, H, generator=g), torch.randn(layers, B, H, generator=g)

    out, h_n, grads = run_and_grads(fast, x, h0, g_out, g_h)
    assert used_fast_path(out)
    ref_out, ref_h_n, ref_grads = run_and_grads(ref, x, h0, g_out, g_h)
    assert out.shape == ref_out.shape == (B, T, H) and h_n.shape == ref_h_n.shape == (layers, B, H)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(h_n, ref_h_n, **TOL)
    names = ["x"] + (["h0"] if with_h0 else []) + [n for n, _ in fast.named_parameters()]
    for name, got, want in zip(names, grads, ref_grads):
        torch.testing.assert_close(got, want, **TOL, msg=lambda m, name=name: f"gradient of {name}: {m}")

    # the same without autograd (the inference kernel)
    with torch.inference_mode():
        out_i, h_n_i = fast(x, h0)
    assert out_i.grad_fn is None
    torch.testing.assert_close(out_i, ref_out.detach(), **TOL)
    torch.testing.assert_close(h_n_i, ref_h_n.detach(), **TOL)


@pytest.mark.parametrize("cell", PAIRS)
def test_partial_requires_grad(cell):
    """Frozen weights and an input without grad: only the requested gradients, still torch's values."""
    fast, ref = make_pair(cell, 4, 5, layers=2)
    for m in (fast, ref):
        m.weight_ih_l0.requires_grad_(False)
        m.bias_hh_l1.requires_grad_(False)
    x = torch.randn(3, 6, 4)
    out, h_n = fast(x)
    assert used_fast_path(out)
    (out.sum() + h_n.sum()).backward()
    ref_out, ref_h_n = ref(x)
    (ref_out.sum() + ref_h_n.sum()).backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, **TOL, msg=lambda m, name=name: f"{name}: {m}")
        else:
            assert p.grad is None


@pytest.mark.parametrize("layer,n_weights", [(RNNTanhLayer, 1), (GRULayer, 3)])
@pytest.mark.parametrize("with_h0", [False, True])
def test_gradcheck_float64(layer, n_weights, with_h0):
    """The Functions themselves are dtype-generic: finite differences agree in float64."""
    T, B, I, H = 3, 2, 3, 2
    g = torch.Generator().manual_seed(0)
    args = [
        torch.randn(T, B, I, generator=g, dtype=torch.float64),
        torch.randn(B, H, generator=g, dtype=torch.float64) if with_h0 else None,
        torch.randn(n_weights * H, I, generator=g, dtype=torch.float64),
        torch.randn(n_weights * H, H, generator=g, dtype=torch.float64),
        torch.randn(n_weights * H, generator=g, dtype=torch.float64),
        torch.randn(n_weights * H, generator=g, dtype=torch.float64),
    ]
    args = [a.requires_grad_() if a is not None else None for a in args]
    assert torch.autograd.gradcheck(layer.apply, args)


@pytest.mark.parametrize("cell", PAIRS)
def test_float64_runs_torch_path(cell):
    fast, ref = make_pair(cell, 4, 5)
    fast, ref = fast.double(), ref.double()
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    out, h_n = fast(x)
    ref_out, ref_h_n = ref(x)
    assert not used_fast_path(out)
    assert torch.equal(out, ref_out) and torch.equal(h_n, ref_h_n)


@pytest.mark.parametrize("cell", PAIRS)
def test_mixed_dtypes_get_torch_error(cell):
    fast, _ = make_pair(cell, 4, 5)
    with pytest.raises(ValueError, match="does not match weight dtype"):
        fast(torch.randn(2, 6, 4, dtype=torch.float64))


@pytest.mark.parametrize("cell", PAIRS)
def test_dropout_between_layers(cell):
    fast, ref = make_pair(cell, 4, 6, layers=3, dropout=0.5)
    x = torch.randn(5, 8, 4, requires_grad=True)

    # train mode, same seed: ATen draws its mask on the same (T, B, H) layer output
    torch.manual_seed(123)
    out, h_n = fast(x)
    assert used_fast_path(out)
    torch.manual_seed(123)
    ref_out, ref_h_n = ref(x)
    torch.testing.assert_close(out, ref_out, **TOL)
    torch.testing.assert_close(h_n, ref_h_n, **TOL)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), list(fast.parameters()))
    ref_grads = torch.autograd.grad((ref_out * g).sum(), list(ref.parameters()))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, **TOL)

    # eval mode: no dropout, torch's result
    fast.eval(), ref.eval()
    eval_out, eval_h_n = fast(x)
    torch.testing.assert_close(eval_out, ref(x)[0], **TOL)
    assert not torch.allclose(eval_out, out), "train-mode dropout changed nothing"
    # the first layer's state is never dropped, the others are
    torch.testing.assert_close(eval_h_n[0], h_n[0], **TOL)

    # dropout = 0 in train mode is eval mode
    fast.train()
    fast.dropout = 0.0
    torch.testing.assert_close(fast(x)[0], eval_out, **TOL)


@pytest.mark.parametrize("cell", PAIRS)
def test_state_dict_round_trip(cell):
    fast_cls, torch_cls = PAIRS[cell]
    torch.manual_seed(0)
    ref = torch_cls(4, 5, num_layers=2, batch_first=True)
    fast = fast_cls(4, 5, num_layers=2)
    assert list(fast.state_dict()) == list(ref.state_dict())
    fast.load_state_dict(ref.state_dict())  # torch -> fast
    back = torch_cls(4, 5, num_layers=2, batch_first=True)
    back.load_state_dict(fast.state_dict())  # fast -> torch
    for a, b in zip(ref.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.randn(64, 5, 4)
    with torch.no_grad():
        torch.testing.assert_close(fast(x)[0], ref(x)[0], **TOL)


@pytest.mark.parametrize("cell", PAIRS)
def test_layout_errors(cell):
    fast_cls = PAIRS[cell][0]
    with pytest.raises(ValueError, match="unidirectional"):
        fast_cls(4, 5, bidirectional=True)
    with pytest.raises(ValueError, match="batch_first"):
        fast_cls(4, 5, batch_first=False)
    fast = fast_cls(4, 5)
    with pytest.raises(RuntimeError, match="input_size"):
        fast(torch.randn(2, 6, 3))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        fast(torch.randn(2, 6, 4), torch.zeros(1, 3, 5))


@pytest.mark.parametrize("cell", PAIRS)
def test_double_backward_raises(cell):
    fast, _ = make_pair(cell, 3, 4)
    x = torch.randn(2, 5, 3, requires_grad=True)
    out, _ = fast(x)
    assert used_fast_path(out)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)


@pytest.mark.parametrize("cell", PAIRS)
def test_torch_path_cases(cell):
    """Inputs outside the fast path give torch's results: packed, unbatched, relu / no bias, short or narrow batches."""
    fast_cls, torch_cls = PAIRS[cell]
    fast, ref = make_pair(cell, 4, 5)
    fast.min_steps, fast.min_inference_batch = 4, 16  # the class defaults' kind of rule

    x = torch.randn(3, 6, 4)
    packed = pack_padded_sequence(x, torch.tensor([6, 4, 2]), batch_first=True)
    got, want = fast(packed), ref(packed)
    assert torch.equal(got[0].data, want[0].data) and torch.equal(got[1], want[1])

    assert torch.equal(fast(x[0])[0], ref(x[0])[0])  # unbatched (T, I)

    short = torch.randn(8, 3, 4, requires_grad=True)  # T < min_steps
    assert not used_fast_path(fast(short)[0])
    with torch.no_grad():  # inference on B < min_inference_batch
        assert torch.equal(fast(x)[0], ref(x)[0])

    kwargs = {"bias": False} if cell == "gru" else {"nonlinearity": "relu"}
    torch.manual_seed(0)
    other = fast_cls(4, 5, **kwargs)
    twin = torch_cls(4, 5, batch_first=True, **kwargs)
    twin.load_state_dict(other.state_dict())
    x = torch.randn(3, 6, 4, requires_grad=True)
    out = other(x)[0]
    assert not used_fast_path(out)
    assert torch.equal(out, twin(x)[0])


@pytest.mark.parametrize("cell", PAIRS)
def test_inference_first_then_training(cell):
    """Tensors the fast path caches while under inference_mode do not break a later training step."""
    fast, ref = make_pair(cell, 4, 11)  # a hidden size no other test uses: the cache starts empty for it
    x = torch.randn(3, 6, 4)
    with torch.inference_mode():
        fast(x)
    x.requires_grad_(True)
    out, _ = fast(x)
    assert used_fast_path(out)
    (gx,) = torch.autograd.grad(out.sum(), x)
    (want,) = torch.autograd.grad(ref(x)[0].sum(), x)
    torch.testing.assert_close(gx, want, **TOL)


@pytest.mark.parametrize("cell", PAIRS)
def test_functional_call_uses_given_weights(cell):
    fast, ref = make_pair(cell, 4, 5)
    other = {name: torch.randn_like(p) for name, p in fast.named_parameters()}
    x = torch.randn(3, 6, 4, requires_grad=True)
    out, h_n = torch.func.functional_call(fast, other, (x,))
    assert used_fast_path(out)
    want, want_h_n = torch.func.functional_call(ref, other, (x,))
    torch.testing.assert_close(out, want, **TOL)
    torch.testing.assert_close(h_n, want_h_n, **TOL)
