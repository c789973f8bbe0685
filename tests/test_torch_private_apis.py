"""A torch release without the private APIs textclf uses degrades to a public path, with the same results.

textclf calls two things torch does not promise to keep: ``torch._VF``'s fused
packed-sequence ops (the GPU path of the recurrent encoder) and functorch's
wrapped-tensor probe (which keeps the CPU fast RNN path out of vmap / grad
transforms). Each is looked up when used; here each is taken away.
"""

from __future__ import annotations

import logging

import pytest
import torch

from textclf.models import fast_rnn, recurrent
from textclf.models.registry import build_encoder


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_without_torch_vf_the_packed_path_falls_back_to_the_padded_one(cell, monkeypatch, caplog):
    torch.manual_seed(0)
    enc = (
        build_encoder(cell, input_size=4, hidden_size=5, layers=2, bidirectional=True, pooling="max", dropout=0.0)
        .double()
        .eval()
    )
    x, lengths = torch.randn(3, 6, 4, dtype=torch.float64), torch.tensor([6, 2, 4])
    padded = enc(x, lengths)
    enc.packed = True
    assert recurrent._fused_call(cell) is not None
    monkeypatch.setattr(torch, "_VF", object())  # a torch without the private module
    monkeypatch.setattr(recurrent, "_warned_fused", [])
    with caplog.at_level(logging.WARNING, logger="textclf.models.recurrent"):
        out = enc(x, lengths)
        enc(x, lengths)
    torch.testing.assert_close(out, padded)
    notes = [r for r in caplog.records if "torch._VF" in r.getMessage()]
    assert len(notes) == 1  # one line, not one per batch


def test_without_the_functorch_probe_the_fast_rnn_steps_aside(monkeypatch):
    torch.manual_seed(0)
    rnn = fast_rnn.FastRNN(4, 8, batch_first=True)
    x = torch.randn(2, 40, 4)
    assert rnn._fast_plan(x, None) is not None  # the fast path takes this input...
    monkeypatch.setattr(torch._C, "_functorch", object())  # ...until the probe is gone
    assert rnn._fast_plan(x, None) is None
    torch.testing.assert_close(rnn(x)[0], torch.nn.RNN.forward(rnn, x)[0])
