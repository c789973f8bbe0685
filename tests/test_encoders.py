"""Common checks for every registered encoder family and configuration: shapes, exact
masking, gradients, loss, rebuilding from hparams, and argument validation.

The configurations come from the registry (textclf.models.registry.ENCODERS):
a family added there is checked here without a new test."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from textclf.core.errors import ConfigError
from textclf.models.classifier import TextClassifier
from textclf.models.recurrent import CELLS, POOLINGS, RecurrentEncoder
from textclf.models.registry import ENCODERS, build_encoder

VOCAB, EMB, HIDDEN, CLASSES = 50, 8, 6, 3
LENGTHS = [5, 3, 7, 1]  # B = 4, T = 7, includes a length-1 text

ALL = [
    combo
    for cell, family in ENCODERS.items()
    for combo in (
        itertools.product([cell], (1, 2), (False, True), POOLINGS)
        if family.recurrent
        else [(cell, *(dict(family.fixed)[k] for k in ("layers", "bidirectional", "pooling")))]
    )
]
RECURRENT = [c for c in ALL if ENCODERS[c[0]].recurrent]
IDS = [f"{c}-L{n}-{'bi' if b else 'uni'}-{p}" for c, n, b, p in ALL]
every_config = pytest.mark.parametrize("cell,layers,bidirectional,pooling", ALL, ids=IDS)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine the
    thread hand-offs dominate; restore the setting for other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(cell, layers, bidirectional, pooling, **kw):
    torch.manual_seed(0)
    args = dict(
        vocab_size=VOCAB,
        embedding_dim=EMB,
        num_classes=CLASSES,
        padding_idx=0,
        cell=cell,
        hidden_size=HIDDEN,
        layers=layers,
        bidirectional=bidirectional,
        dropout=0.1,
        embedding_dropout=0.1,
        output_dropout=0.1,
        pooling=pooling,
    )
    args.update(kw)
    return TextClassifier(**args)


def make_batch(lengths=LENGTHS, extra=0, seed=1):
    """Right-padded tokens (B, max(lengths) + extra) with ids in [1, VOCAB), padding 0."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    tokens = torch.randint(1, VOCAB, (len(lengths), T), generator=g)
    lengths = torch.tensor(lengths)
    tokens[torch.arange(T) >= lengths[:, None]] = 0
    return nn.functional.pad(tokens, (0, extra)), lengths


def pooled(model, tokens, lengths):
    with torch.no_grad():
        return model.embed(tokens, lengths)


@every_config
def test_shapes(cell, layers, bidirectional, pooling):
    model = make_model(cell, layers, bidirectional, pooling).eval()
    tokens, lengths = make_batch()
    D = model.encoder.output_size
    if ENCODERS[cell].recurrent:
        assert D == HIDDEN * (2 if bidirectional else 1)
    x = model.embedding(tokens)
    assert model.encoder(x, lengths).shape == (4, D)
    states = model.encoder.sequence(x, lengths)
    assert states.shape == (4, 7, D)
    pad = torch.arange(7) >= lengths[:, None]
    assert torch.all(states[pad] == 0)
    logits, loss = model(tokens, lengths)
    assert logits.shape == (4, CLASSES) and loss is None
    assert model.embed(tokens, lengths).shape == (4, D)


@every_config
def test_extra_padding_changes_nothing(cell, layers, bidirectional, pooling):
    model = make_model(cell, layers, bidirectional, pooling).eval()
    tokens, lengths = make_batch()
    longer, _ = make_batch(extra=5)
    assert torch.equal(longer[:, :7], tokens)
    assert torch.allclose(pooled(model, tokens, lengths), pooled(model, longer, lengths), atol=1e-6)
    # the per-token states too (these are not trimmed, so masking is exercised here)
    with torch.no_grad():
        a = model.encoder.sequence(model.embedding(tokens), lengths)
        b = model.encoder.sequence(model.embedding(longer), lengths)
    assert torch.allclose(a, b[:, :7], atol=1e-6) and torch.all(b[:, 7:] == 0)


@every_config
def test_alone_equals_in_batch(cell, layers, bidirectional, pooling):
    """A short text gives the same output alone as padded inside a batch of longer texts."""
    model = make_model(cell, layers, bidirectional, pooling).eval()
    tokens, lengths = make_batch()
    batch = pooled(model, tokens, lengths)
    for b, n in enumerate(LENGTHS):
        alone = pooled(model, tokens[b : b + 1, :n], lengths[b : b + 1])
        assert torch.allclose(alone, batch[b : b + 1], atol=1e-6), f"row {b} (length {n})"


@pytest.mark.parametrize(
    "cell,layers,bidirectional,pooling",
    [c for c in RECURRENT if c[3] != "attention"],
    ids=[i for c, i in zip(ALL, IDS) if c in RECURRENT and c[3] != "attention"],
)
def test_pooling_matches_the_per_token_states(cell, layers, bidirectional, pooling):
    """forward() pools the reverse half in reversed order; it must equal pooling the in-order states."""
    model = make_model(cell, layers, bidirectional, pooling).eval()
    tokens, lengths = make_batch(extra=2)
    with torch.no_grad():
        states = model.encoder.sequence(model.embedding(tokens), lengths)  # (B, T, D), in order
    real = torch.arange(tokens.size(1)) < lengths[:, None]
    rows = [states[b, : lengths[b]] for b in range(len(lengths))]
    if pooling == "max":
        expected = torch.stack([r.amax(0) for r in rows])
    elif pooling == "mean":
        expected = torch.stack([r.mean(0) for r in rows])
    else:  # last: forward at the last real token, reverse at the first
        expected = torch.stack([torch.cat([r[-1, :HIDDEN], r[0, HIDDEN:]]) if bidirectional else r[-1] for r in rows])
    assert real.sum() == sum(LENGTHS)
    torch.testing.assert_close(pooled(model, tokens, lengths), expected, atol=1e-6, rtol=1e-5)


@every_config
def test_first_token_matters_padding_does_not(cell, layers, bidirectional, pooling):
    model = make_model(cell, layers, bidirectional, pooling).eval()
    tokens, lengths = make_batch(extra=2)
    base = pooled(model, tokens, lengths)
    first = tokens.clone()
    first[:, 0] = torch.where(first[:, 0] == 1, 2, 1)
    changed = pooled(model, first, lengths)
    padding = tokens.clone()
    padding[torch.arange(tokens.size(1)) >= lengths[:, None]] = 7  # junk where padding was
    assert torch.allclose(pooled(model, padding, lengths), base, atol=1e-6)
    if pooling == "max":
        # a changed state need not win a max: compare the reverse states at position 0
        with torch.no_grad():
            base = model.encoder.sequence(model.embedding(tokens), lengths)[:, 0]
            changed = model.encoder.sequence(model.embedding(first), lengths)[:, 0]
    if bidirectional:
        # the reverse half must see the first token (its final state is there) ...
        assert (changed[:, HIDDEN:] - base[:, HIDDEN:]).abs().amax(1).min() > 1e-6
        if pooling == "last":
            # ... and its final state must also include the last real token
            last = tokens.clone()
            last[2, 6] = 1 if last[2, 6] != 1 else 2  # row 2 has length 7
            delta = pooled(model, last, lengths) - base
            assert delta[2, HIDDEN:].abs().max() > 1e-6
    else:
        assert (changed - base).abs().amax(1).min() > 1e-6


@pytest.mark.parametrize("cell,layers", list(itertools.product(CELLS, (1, 2))))
def test_bidirectional_matches_torch_on_unpadded_texts(cell, layers):
    """Reference: torch's fused bidirectional module on each text alone (no padding)."""
    model = make_model(cell, layers, True, "last").eval()
    enc = model.encoder
    torch_cells = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}  # torch's own fused bidirectional modules
    ref = torch_cells[cell](EMB, HIDDEN, num_layers=layers, bidirectional=True, batch_first=True).eval()
    with torch.no_grad():
        for i, layer in enumerate(enc.stack):
            for suffix, direction in (("", "fwd"), ("_reverse", "bwd")):
                for name, p in layer[direction].named_parameters():
                    getattr(ref, name.replace("_l0", f"_l{i}{suffix}")).copy_(p)
        tokens, lengths = make_batch()
        x = model.embedding(tokens)
        states = enc.sequence(x, lengths)
        last = enc(x, lengths)
        for b, n in enumerate(LENGTHS):
            out, h = ref(x[b : b + 1, :n])
            h = h[0] if cell == "lstm" else h  # (layers * 2, 1, H)
            assert torch.allclose(states[b, :n], out[0], atol=1e-6)
            assert torch.allclose(last[b], torch.cat([h[-2, 0], h[-1, 0]]), atol=1e-6)


@every_config
def test_gradients_reach_embedding(cell, layers, bidirectional, pooling):
    model = make_model(cell, layers, bidirectional, pooling).train()
    tokens, lengths = make_batch()
    _, loss = model(tokens, lengths, labels=torch.tensor([0, 1, 2, 1]))
    loss.backward()
    grad = model.embedding.weight.grad
    row_norm = grad.abs().sum(1)
    assert row_norm[0] == 0  # padding row
    used = tokens[tokens != 0].unique()
    unused = torch.ones(VOCAB, dtype=torch.bool)
    unused[used] = False
    unused[0] = False
    assert torch.all(row_norm[unused] == 0)
    # Max pooling may route no gradient to a token whose states never win a max;
    # the first token feeds every forward state, so it always gets one.
    must = tokens[:, 0].unique() if pooling == "max" else used
    assert torch.all(row_norm[must] > 0)


@every_config
def test_loss_and_class_weights(cell, layers, bidirectional, pooling):
    tokens, lengths = make_batch()
    labels = torch.tensor([0, 1, 2, 1])
    plain = make_model(cell, layers, bidirectional, pooling).eval()
    weighted = make_model(cell, layers, bidirectional, pooling, class_weights=[1.0, 5.0, 0.5]).eval()
    logits, loss = plain(tokens, lengths, labels)
    assert loss is not None and loss.dim() == 0
    assert torch.allclose(loss, nn.functional.cross_entropy(logits, labels))
    assert plain(tokens, lengths)[1] is None
    logits_w, loss_w = weighted(tokens, lengths, labels)
    assert torch.equal(logits, logits_w)  # same seed, same parameters
    assert not torch.allclose(loss, loss_w)


@every_config
def test_rebuild_from_hparams(cell, layers, bidirectional, pooling):
    model = make_model(cell, layers, bidirectional, pooling, class_weights=torch.tensor([1.0, 2.0, 3.0]))
    hparams = json.loads(json.dumps(model.hparams))
    assert hparams == model.hparams and hparams["class_weights"] == [1.0, 2.0, 3.0]
    clone = TextClassifier(**hparams)
    clone.load_state_dict(model.state_dict(), strict=True)
    model.eval(), clone.eval()
    tokens, lengths = make_batch()
    labels = torch.tensor([0, 1, 2, 1])
    a, b = model(tokens, lengths, labels), clone(tokens, lengths, labels)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # deterministic given the seed
    again = make_model(cell, layers, bidirectional, pooling)
    for (k, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(p, q), k


def test_lstm_forget_gate_bias_is_one():
    for bidirectional in (False, True):
        enc = build_encoder(cell="lstm", input_size=EMB, hidden_size=HIDDEN, bidirectional=bidirectional)
        modules = [enc.rnn] if not bidirectional else [m for layer in enc.stack for m in layer.values()]
        for m in modules:
            bias = m.bias_ih_l0 + m.bias_hh_l0
            assert torch.all(bias[HIDDEN : 2 * HIDDEN] == 1) and torch.all(bias[:HIDDEN] == 0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_chrono_initialisation_follows_the_formula(bidirectional):
    """Tallec & Ollivier (2018): keep-gate bias log U(1, T_max - 1); the LSTM input gate gets its negative."""
    T = 400
    torch.manual_seed(0)
    lstm = build_encoder(
        cell="lstm",
        input_size=EMB,
        hidden_size=64,
        layers=2,
        bidirectional=bidirectional,
        init="chrono",
        chrono_max_length=T,
    )
    torch.manual_seed(0)
    gru = build_encoder(
        cell="gru",
        input_size=EMB,
        hidden_size=64,
        layers=2,
        bidirectional=bidirectional,
        init="chrono",
        chrono_max_length=T,
    )
    H = 64
    for enc, keep in ((lstm, slice(H, 2 * H)), (gru, slice(H, 2 * H))):
        modules = [enc.rnn] if not bidirectional else [m for layer in enc.stack for m in layer.values()]
        suffixes = ("_l0", "_l1") if not bidirectional else ("_l0",)
        us = []
        for m in modules:
            for sfx in suffixes:
                b_ih, b_hh = getattr(m, "bias_ih" + sfx), getattr(m, "bias_hh" + sfx)
                assert torch.all(b_hh == 0)
                u = b_ih[keep].exp()
                assert torch.all(u >= 1 - 1e-5) and torch.all(u <= T - 1 + 1e-3)
                us.append(u.detach())
                if enc.cell == "lstm":
                    assert torch.equal(b_ih[:H], -b_ih[keep])  # input gate
                    assert torch.all(b_ih[2 * H :] == 0)
                else:
                    assert torch.all(b_ih[:H] == 0) and torch.all(b_ih[2 * H :] == 0)  # reset and candidate
        u = torch.cat(us)  # 128-256 draws of U(1, T - 1): mean (T/2 = 200), sd ((T - 2) / sqrt(12) = 115)
        assert 170 < u.mean() < 230 and 90 < u.std() < 140
    # standard initialisation is untouched by the option (same draws as before it existed)
    torch.manual_seed(0)
    a = build_encoder(cell="lstm", input_size=EMB, hidden_size=HIDDEN)
    torch.manual_seed(0)
    b = build_encoder(cell="lstm", input_size=EMB, hidden_size=HIDDEN, init="standard")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_chrono_needs_gates_and_a_length():
    with pytest.raises(ConfigError, match="tanh RNN has no gates"):
        build_encoder(cell="rnn", input_size=EMB, hidden_size=HIDDEN, init="chrono", chrono_max_length=100)
    with pytest.raises(ConfigError, match="encoder.chrono_max_length"):
        build_encoder(cell="lstm", input_size=EMB, hidden_size=HIDDEN, init="chrono")
    from textclf.pipeline.config import load_config

    with pytest.raises(ConfigError, match="no such gates"):
        load_config(overrides=["encoder.cell=rnn", "encoder.init=chrono"])
    with pytest.raises(ConfigError, match="encoder.init must be 'standard'"):
        load_config(overrides=["encoder.cell=cnn", "encoder.init=chrono"])


@pytest.mark.parametrize(
    "cell,layers,bidirectional,pooling", RECURRENT, ids=[i for c, i in zip(ALL, IDS) if c in RECURRENT]
)
def test_packed_path_matches_the_padded_path(cell, layers, bidirectional, pooling):
    """The GPU path (packed sequences, one fused call for all layers and directions) computes the same
    function, with the same gradients, as the CPU path (padded, per-direction reversal). Checked on the
    CPU in float64, where both run; on a GPU the packed call is cuDNN's."""
    model = make_model(cell, layers, bidirectional, pooling, dropout=0.0).double().eval()
    tokens, lengths = make_batch(extra=2)
    x = model.embedding(tokens).detach().requires_grad_(True)
    enc = model.encoder
    outputs, grads = [], []
    for packed in (False, True):
        enc.packed = packed
        out = enc(x, lengths)
        outputs.append(out)
        grads.append(
            torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), [x, *enc.parameters()])
        )
    enc.packed = None
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-10, rtol=1e-9)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-9)


def test_registry_and_factory():
    assert set(ENCODERS) == {"rnn", "gru", "lstm", "cnn"}
    assert POOLINGS == ("last", "mean", "max", "attention")
    rnn = build_encoder(cell="rnn", input_size=EMB, hidden_size=HIDDEN)
    assert isinstance(rnn, RecurrentEncoder) and isinstance(rnn.rnn, nn.RNN) and rnn.rnn.nonlinearity == "tanh"
    assert rnn.rnn.batch_first


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"cell": "lstn"}, "encoder.cell"),
        ({"pooling": "avg"}, "encoder.pooling"),
        ({"layers": 0}, "encoder.layers"),
        ({"layers": 1.5}, "encoder.layers"),
        ({"hidden_size": 0}, "encoder.hidden_size"),
        ({"dropout": 1.0}, "encoder.dropout"),
        ({"dropout": -0.1}, "encoder.dropout"),
        ({"dropout": float("nan")}, "encoder.dropout"),
        ({"bidirectional": "yes"}, "encoder.bidirectional"),
    ],
)
def test_invalid_encoder_args(kwargs, key):
    args = dict(
        cell="lstm", input_size=EMB, hidden_size=HIDDEN, layers=1, bidirectional=False, dropout=0.0, pooling="last"
    )
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_encoder(**{**args, **kwargs})
    model_args = dict(
        vocab_size=VOCAB,
        embedding_dim=EMB,
        num_classes=CLASSES,
        cell="lstm",
        hidden_size=HIDDEN,
        layers=1,
        bidirectional=False,
        dropout=0.0,
        pooling="last",
    )
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TextClassifier(**{**model_args, **kwargs})


def test_error_message_format():
    with pytest.raises(ConfigError) as err:
        build_encoder(cell="lstn")
    assert str(err.value) == "encoder.cell must be one of rnn, gru, lstm, cnn. Got 'lstn' instead."


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"class_weights": [1.0, 2.0]}, "model.class_weights"),
        ({"class_weights": [1.0, -2.0, 1.0]}, "model.class_weights"),
        ({"class_weights": "balanced"}, "model.class_weights"),
        ({"embedding_dropout": 1.5}, "embedding.dropout"),
        ({"output_dropout": -1}, "encoder.output_dropout"),
        ({"num_classes": 1}, "model.num_classes"),
        ({"padding_idx": VOCAB}, "model.padding_idx"),
        ({"vocab_size": 0}, "model.vocab_size"),
        ({"embedding_dim": 0}, "embedding.dim"),
    ],
)
def test_invalid_model_args(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_model("gru", 1, True, "mean", **kwargs)


def test_bad_lengths_raise_value_error():
    model = make_model("lstm", 1, True, "mean").eval()
    tokens, _ = make_batch()
    with pytest.raises(ValueError):
        model(tokens, torch.tensor([5, 0, 7, 1]))
    with pytest.raises(ValueError):
        model(tokens, torch.tensor([5, 3, 8, 1]))
