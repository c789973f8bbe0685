"""train.cpu_bf16: bf16 training steps on the CPU, float32 weights and evaluation, LSTM only in bf16."""

from __future__ import annotations

import pytest
import torch
from test_train import VOCAB, make_data

from textclf.core.errors import ConfigError
from textclf.models.classifier import TextClassifier
from textclf.models.fast_rnn import _FastMixin
from textclf.training import device as device_mod
from textclf.training.config import TrainConfig
from textclf.training.device import amp_dtype, cpu_has_native_bf16
from textclf.training.trainer import Trainer

native = pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (avx512_bf16 / AMX)")
CPU = torch.device("cpu")


def _model(cell: str, seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)
    return TextClassifier(
        vocab_size=VOCAB,
        embedding_dim=8,
        num_classes=2,
        padding_idx=0,
        cell=cell,
        hidden_size=16,
        layers=1,
        bidirectional=cell == "lstm",
        embedding_dropout=0.1,
        output_dropout=0.1,
        pooling="max",
    )


def _cfg(cpu_bf16: bool) -> TrainConfig:
    return TrainConfig(epochs=4, batch_size=16, lr=0.02, seed=0, patience=0, num_threads=1, cpu_bf16=cpu_bf16)


def test_cpu_autocast_dtype_only_when_asked():
    assert amp_dtype(CPU, True) is None  # mixed_precision alone is CUDA-only
    assert amp_dtype(CPU, False, cpu_bf16=False) is None


def test_refused_without_native_bf16(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="train.cpu_bf16=false"):
        amp_dtype(CPU, True, cpu_bf16=True)


@native
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_training_steps_in_bf16_evaluation_and_weights_in_float32(cell, monkeypatch):
    assert amp_dtype(CPU, True, cpu_bf16=True) is torch.bfloat16
    plans = []
    real_plan = _FastMixin._fast_plan
    monkeypatch.setattr(
        _FastMixin,
        "_fast_plan",
        lambda self, x, hx: plans.append((self.training, x.size(1), real_plan(self, x, hx))) or plans[-1][2],
    )
    model = _model(cell)
    seen: list[tuple[bool, torch.dtype]] = []
    recurrent = [m for m in model.modules() if isinstance(m, torch.nn.RNNBase)]
    for m in recurrent:
        m.register_forward_hook(lambda mod, args, out: seen.append((mod.training, out[0].dtype)))
    result = Trainer(model, _cfg(True)).fit(make_data(200, 1), make_data(80, 2))
    train_dtypes = {d for training, d in seen if training}
    eval_dtypes = {d for training, d in seen if not training}
    # oneDNN's bf16 kernel for the LSTM; the tanh RNN and GRU stay on the float32 fast path
    assert train_dtypes == ({torch.bfloat16} if cell == "lstm" else {torch.float32})
    assert eval_dtypes == {torch.float32}
    if cell != "lstm":  # and on textclf's fast path, not torch's per-step loop (its autocast fallback)
        steps = [plan for training, length, plan in plans if training and length >= _FastMixin.min_steps]
        assert steps and all(plan is not None for plan in steps)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.best_metric > 0.8  # validation accuracy: it still learns the task


@native
def test_bf16_training_is_reproducible_and_not_the_float32_run():
    def run(cpu_bf16: bool):
        model = _model("lstm")
        Trainer(model, _cfg(cpu_bf16)).fit(make_data(200, 1), make_data(80, 2))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    a, b, fp32 = run(True), run(True), run(False)
    assert torch.equal(a, b)
    assert not torch.equal(a, fp32)
