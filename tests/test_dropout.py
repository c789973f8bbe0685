"""textclf.models.dropout: the CPU dropout keeps each element independently with 1 - p, unbiased."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from textclf.models.classifier import TextClassifier
from textclf.models.dropout import Dropout, keep_probability, random_int16


def _mask(p: float, shape=(256, 40, 64), seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    x = torch.ones(shape)
    layer = Dropout(p).train()
    return layer(x)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.25, 0.5, 0.9])
def test_keep_rate_and_scale(p):
    out = _mask(p)
    q = keep_probability(p)
    assert abs(q - (1 - p)) <= 1 / 65536
    kept = out != 0
    n = kept.numel()
    # the kept share is Binomial(n, q) / n: within 5 standard deviations
    assert abs(kept.float().mean().item() - q) < 5 * math.sqrt(q * (1 - q) / n)
    # kept elements are scaled by exactly 1 / q, so E[out] = x
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1.0 / q))


def test_elements_are_independent():
    # four elements share one 64-bit draw: neighbours must still be independent,
    # i.e. both kept with probability q**2 (a lane layout bug would correlate them)
    p = 0.5
    kept = (_mask(p, shape=(1 << 20,)) != 0).float()
    q = keep_probability(p)
    for lag in (1, 2, 3, 4):
        both = (kept[:-lag] * kept[lag:]).mean().item()
        assert abs(both - q * q) < 5 * math.sqrt(q * q * (1 - q * q) / kept.numel())


def test_int16_lanes_cover_the_whole_range():
    torch.manual_seed(0)
    v = random_int16(1 << 20).to(torch.int32)
    assert v.min().item() < -32000 and v.max().item() > 32000
    assert abs(v.float().mean().item()) < 5 * 65536 / math.sqrt(12 * v.numel())


def test_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(32, 10, 8, requires_grad=True)
    out = Dropout(0.3).train()(x)
    out.sum().backward()
    scale = 1.0 / keep_probability(0.3)
    kept = out.detach() != 0
    assert torch.equal(x.grad, kept.float() * scale)


def test_seeded_masks_repeat_and_differ_across_seeds():
    assert torch.equal(_mask(0.2, seed=3), _mask(0.2, seed=3))
    assert not torch.equal(_mask(0.2, seed=3), _mask(0.2, seed=4))


def test_identity_in_eval_and_edge_probabilities():
    x = torch.randn(4, 5)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_non_cpu_or_integer_or_inplace_use_torch(monkeypatch):
    calls = []
    real = F.dropout

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr("textclf.models.dropout.F.dropout", spy)
    Dropout(0.5, inplace=True).train()(torch.randn(3, 3))
    Dropout(0.5).train()(torch.randn(3, 3))  # the fast path: no call
    assert len(calls) == 1


def test_models_use_it_and_state_dicts_are_unchanged():
    model = TextClassifier(
        vocab_size=50,
        embedding_dim=8,
        num_classes=2,
        padding_idx=0,
        cell="lstm",
        hidden_size=8,
        layers=2,
        bidirectional=True,
        dropout=0.3,
        embedding_dropout=0.2,
        output_dropout=0.5,
        pooling="max",
    )
    kinds = {type(m) for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert kinds == {Dropout}
    # no parameters or buffers of its own: folders saved before load unchanged
    assert not any("dropout" in k for k in model.state_dict())
