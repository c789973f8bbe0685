"""The CUDA path: cuDNN on packed sequences, mixed precision, pinned batches — checked against the CPU path.

These run where a CUDA GPU is present and are skipped (with the reason) on a
machine without one; the packed computation itself is checked on the CPU in
tests/test_encoders.py::test_packed_path_matches_the_padded_path.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")

from textclf.models.classifier import TextClassifier  # noqa: E402
from textclf.models.recurrent import POOLINGS  # noqa: E402
from textclf.text.batching import EncodedSplit, collate  # noqa: E402

CONFIGS = list(itertools.product(["rnn", "gru", "lstm"], [1, 2], [False, True], POOLINGS)) + [("cnn", 1, False, "max")]


@pytest.fixture(autouse=True)
def exact_float32():
    """cuDNN may use TF32 by default: compare at full float32 precision."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _model(cell, layers, bidirectional, pooling):
    torch.manual_seed(0)
    return TextClassifier(
        vocab_size=60,
        embedding_dim=16,
        num_classes=3,
        cell=cell,
        hidden_size=24,
        layers=layers,
        bidirectional=bidirectional,
        pooling=pooling,
        dropout=0.0,
        embedding_dropout=0.0,
        output_dropout=0.0,
    ).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([17, 3, 1, 9, 12])
    tokens = torch.randint(1, 60, (5, 17), generator=g)
    tokens[torch.arange(17) >= lengths[:, None]] = 0
    return tokens, lengths


@pytest.mark.parametrize("cell,layers,bidirectional,pooling", CONFIGS)
def test_cuda_path_matches_cpu_path(cell, layers, bidirectional, pooling):
    model = _model(cell, layers, bidirectional, pooling)
    tokens, lengths = _batch()
    with torch.no_grad():
        expected = model(tokens, lengths)[0]
        model.cuda()
        got = model(tokens.cuda(), lengths)[0]  # lengths stay on the CPU, as collate leaves them
        got_dev_lengths = model(tokens.cuda(), lengths.cuda())[0]
    torch.testing.assert_close(got.cpu(), expected, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(got_dev_lengths.cpu(), expected, atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("gru", False), ("rnn", True)])
def test_cuda_gradients_match_cpu(cell, bidirectional):
    model = _model(cell, 2, bidirectional, "max")
    tokens, lengths = _batch()
    labels = torch.tensor([0, 1, 2, 1, 0])
    _, loss = model(tokens, lengths, labels)
    expected = torch.autograd.grad(loss, list(model.parameters()))
    model.cuda()
    _, loss = model(tokens.cuda(), lengths, labels.cuda())
    got = torch.autograd.grad(loss, list(model.parameters()))
    for a, b in zip(expected, got):
        torch.testing.assert_close(b.cpu(), a, atol=5e-4, rtol=5e-3)


def test_collate_pins_and_keeps_lengths_on_the_cpu():
    split = EncodedSplit.from_sequences([[3, 4, 5], [6], [7, 8]], [0, 1, 0])
    tokens, lengths, labels = collate(split, np.array([0, 1, 2]), 0, "cuda")
    assert tokens.is_cuda and labels.is_cuda and lengths.device.type == "cpu" and lengths.is_pinned()


def test_mixed_precision_training_on_cuda():
    from textclf.training.config import TrainConfig
    from textclf.training.trainer import Trainer

    rng = np.random.default_rng(0)
    seqs = [rng.integers(2, 60, size=int(rng.integers(3, 20))).tolist() for _ in range(300)]
    labels = [int(s[0] % 3) for s in seqs]
    split = EncodedSplit.from_sequences(seqs, labels)
    model = _model("lstm", 2, True, "max")
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, device="cuda", mixed_precision=True, seed=0, patience=0)
    trainer = Trainer(model, cfg)
    assert trainer.amp_dtype in (torch.bfloat16, torch.float16)
    result = trainer.fit(split, split)
    losses = [h["train_loss"] for h in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert result.device.startswith("cuda")
