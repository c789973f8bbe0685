"""CNNEncoder (Kim 2014): shapes, exact masking against a per-text reference,
gradients, argument validation, seeded init and ONNX export."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from textclf.core.errors import ConfigError
from textclf.models.cnn import CNNEncoder

EMB, HIDDEN = 8, 6
# B = 6, T = 9: shorter than every window (1, 2), exactly the widest (5), middle, and full length
LENGTHS = [1, 9, 2, 5, 7, 9]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_encoder(widths=(3, 4, 5), seed=0, fresh=False):
    """A seeded encoder; unless ``fresh``, with weights that make masking mistakes show.

    At init (zero bias, filters of either sign over tokens of either sign) a feature
    is almost never negative over a whole text, and relu(max + 0) hides which
    windows the max saw. Here half the filters of each width are non-positive (over
    the mostly positive tokens of make_batch, negative at every real window) and the
    biases are random: a window of padding alone (pre-activation 0) would then win
    the max, and change the ReLU output wherever the bias is positive.
    """
    torch.manual_seed(seed)
    enc = CNNEncoder(EMB, HIDDEN, widths)
    if not fresh:
        with torch.no_grad():
            for conv in enc.convs:
                conv.weight[: HIDDEN // 2].abs_().neg_()
                conv.bias.uniform_(-0.5, 0.5)
    return enc


def make_batch(lengths=LENGTHS, extra=0, seed=1):
    """Right-padded x (B, max(lengths) + extra, EMB) and lengths (B,).

    Padding holds large random values rather than zeros, so any window that reads
    padding shows up in the result.
    """
    g = torch.Generator().manual_seed(seed)
    T = max(lengths) + extra
    # Mostly positive (see make_encoder). Scaled so features stay O(1): a kernel may sum
    # in another order for another shape, and the 1e-6 checks leave room for that.
    x = 0.25 * (torch.randn(len(lengths), T, EMB, generator=g) + 1.0)
    lengths = torch.tensor(lengths)
    pad = torch.arange(T) >= lengths[:, None]  # (B, T)
    x[pad] = 100 * torch.randn(int(pad.sum()), EMB, generator=g)
    return x, lengths


def reference(encoder: CNNEncoder, x: torch.Tensor, lengths: torch.Tensor):
    """Per text, the plain wide convolution: -> pooled (B, D), per-token (B, T, D)."""
    pooled, tokens = [], []
    for xi, n in zip(x, lengths.tolist()):
        text = xi[:n].t().unsqueeze(0)  # (1, I, n): the real tokens only
        feats, seq = [], []
        for w, conv in zip(encoder.widths, encoder.convs):
            padded = F.pad(text, (w - 1, w - 1))  # (1, I, n + 2(w-1)): w-1 zeros on both sides
            maps = F.relu(F.conv1d(padded, conv.weight, conv.bias))[0]  # (H, n + w - 1)
            feats.append(maps.max(dim=1).values)  # (H,)
            seq.append(maps[:, :n].t())  # (n, H): output p is the window ending at token p
        pooled.append(torch.cat(feats))
        tokens.append(F.pad(torch.cat(seq, dim=1), (0, 0, 0, x.size(1) - n)))  # zeros at padding
    return torch.stack(pooled), torch.stack(tokens)


def encode(encoder, x, lengths):
    with torch.no_grad():
        return encoder(x, lengths), encoder.sequence(x, lengths)


# -----------------------------------------------------------------------------


@pytest.mark.parametrize("widths,size", [((3, 4, 5), 3 * HIDDEN), ((2,), HIDDEN), ([1, 7], 2 * HIDDEN)])
def test_shapes_and_output_size(widths, size):
    enc = make_encoder(widths)
    assert enc.output_size == size and enc.widths == tuple(widths)
    x, lengths = make_batch()
    pooled, states = encode(enc, x, lengths)
    assert pooled.shape == (len(LENGTHS), size) and states.shape == (*x.shape[:2], size)
    assert torch.isfinite(pooled).all() and (pooled >= 0).all()  # ReLU features


@pytest.mark.parametrize("widths", [(3, 4, 5), (1, 6)])
def test_matches_per_text_reference(widths):
    enc = make_encoder(widths)
    x, lengths = make_batch(seed=2)
    pooled, states = encode(enc, x, lengths)
    want_pooled, want_states = reference(enc, x, lengths)
    torch.testing.assert_close(pooled, want_pooled, rtol=0, atol=1e-5)
    torch.testing.assert_close(states, want_states, rtol=0, atol=1e-5)


def test_alone_equals_in_batch():
    """A text alone, unpadded, gives what it gives inside a longer padded batch of other texts."""
    enc = make_encoder()
    x, lengths = make_batch(extra=4)  # four columns that are padding in every row
    pooled, states = encode(enc, x, lengths)
    for i, n in enumerate(LENGTHS):
        alone, alone_states = encode(enc, x[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(pooled[i : i + 1], alone, rtol=0, atol=1e-6)
        torch.testing.assert_close(states[i : i + 1, :n], alone_states, rtol=0, atol=1e-6)
        assert (states[i, n:] == 0).all()
    # the same batch with zeros instead of junk at padding, and without the extra columns
    clean = x[:, : max(LENGTHS)].clone()
    clean[torch.arange(clean.size(1)) >= lengths[:, None]] = 0.0
    torch.testing.assert_close(encode(enc, clean, lengths)[0], pooled, rtol=0, atol=1e-6)


def test_last_token_counts():
    """Changing only the last real token of each text changes every text's result."""
    enc = make_encoder()
    x, lengths = make_batch()
    base = encode(enc, x, lengths)[0]
    last = x.clone()
    last[torch.arange(len(LENGTHS)), lengths - 1] += 1.0
    assert ((encode(enc, last, lengths)[0] - base).abs().amax(1) > 0).all()


def test_gradients():
    enc = make_encoder()
    x, lengths = make_batch(extra=2)
    x.requires_grad_(True)
    g = torch.Generator().manual_seed(3)
    out = enc(x, lengths)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    pad = torch.arange(x.size(1)) >= lengths[:, None]  # (B, T)
    assert (x.grad[pad] == 0).all()
    assert all(x.grad[i, :n].abs().sum() > 0 for i, n in enumerate(LENGTHS))  # every text learns

    x.grad = None
    enc.sequence(x, lengths).sum().backward()
    assert (x.grad[pad] == 0).all() and x.grad[~pad].abs().sum() > 0


def test_input_is_not_modified():
    """T' == 1 makes the channels-first view contiguous: the encoder must still copy."""
    enc = make_encoder()
    x = torch.randn(2, 1, EMB, requires_grad=True)
    before = x.detach().clone()
    enc(x, torch.tensor([1, 1])).sum().backward()
    assert torch.equal(x.detach(), before)


def test_lengths_any_int_dtype():
    enc = make_encoder()
    x, lengths = make_batch()
    torch.testing.assert_close(encode(enc, x, lengths.int())[0], encode(enc, x, lengths)[0], rtol=0, atol=0)


def test_seeded_init():
    a, b, c = make_encoder(seed=0, fresh=True), make_encoder(seed=0, fresh=True), make_encoder(seed=1, fresh=True)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert list(sa) == [
        "convs.0.weight",
        "convs.0.bias",
        "convs.1.weight",
        "convs.1.bias",
        "convs.2.weight",
        "convs.2.bias",
    ]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["convs.0.weight"], sc["convs.0.weight"])
    for w, conv in zip(a.widths, a.convs):  # Kaiming uniform for ReLU, zero bias
        bound = math.sqrt(6.0 / (EMB * w))
        assert conv.weight.shape == (HIDDEN, EMB, w)
        assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.5 * bound
        assert (conv.bias == 0).all()


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"hidden_size": 0}, "encoder.hidden_size"),
        ({"hidden_size": 2.5}, "encoder.hidden_size"),
        ({"hidden_size": True}, "encoder.hidden_size"),
        ({"input_size": 0}, "encoder.input_size"),
        ({"widths": ()}, "encoder.widths"),
        ({"widths": 3}, "encoder.widths"),
        ({"widths": "345"}, "encoder.widths"),
        ({"widths": (3, 0)}, "encoder.widths[1]"),
        ({"widths": (3, 1.5)}, "encoder.widths[1]"),
        ({"widths": (3, 3)}, "encoder.widths"),
    ],
)
def test_bad_arguments(kwargs, key):
    args = {"input_size": EMB, "hidden_size": HIDDEN, "widths": (3, 4, 5), **kwargs}
    with pytest.raises(ConfigError, match=re.escape(key)):
        CNNEncoder(**args)


@pytest.mark.parametrize(
    "x_shape,lengths,match",
    [
        ((3, 4, EMB), [0, 2, 4], "lengths must be in"),
        ((3, 4, EMB), [1, 5, 4], "lengths must be in"),
        ((3, 4, EMB), [-1, 2, 3], "lengths must be in"),
        ((3, 4, EMB), [1, 2], "lengths"),
        ((3, 4, EMB), [[1, 2, 3]], "lengths"),
        ((3, 4), [1, 2, 3], "x"),
        ((3, 4, EMB + 1), [1, 2, 3], "x"),
    ],
)
def test_bad_inputs_raise_value_error(x_shape, lengths, match):
    enc = make_encoder()
    x = torch.randn(x_shape)
    for method in (enc, enc.sequence):
        with pytest.raises(ValueError, match=match):
            method(x, torch.tensor(lengths))


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.filterwarnings("ignore:The feature will be removed")
def test_onnx_export(tmp_path):
    """Exported with dynamic batch and time axes, onnxruntime matches torch on other shapes."""
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'textclf[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'textclf[onnx]')")

    class Both(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, x, lengths):
            return self.encoder(x, lengths), self.encoder.sequence(x, lengths)

    enc = make_encoder().eval()
    path = tmp_path / "cnn.onnx"
    x, lengths = make_batch([4, 2, 6])
    torch.onnx.export(
        Both(enc),
        (x, lengths),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["x", "lengths"],
        output_names=["pooled", "states"],
        dynamic_axes={
            "x": {0: "batch", 1: "time"},
            "lengths": {0: "batch"},
            "pooled": {0: "batch"},
            "states": {0: "batch", 1: "time"},
        },
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # other batch sizes and lengths, shorter and longer than the traced ones, extra padding
    for batch in (make_batch([1, 3], extra=1, seed=4), make_batch([2, 11, 1, 5, 8], extra=3, seed=5)):
        want = encode(enc, *batch)
        got = session.run(None, {"x": batch[0].numpy(), "lengths": batch[1].numpy()})
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.from_numpy(g), w, rtol=0, atol=1e-5)
