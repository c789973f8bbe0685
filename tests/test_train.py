"""Tests of the trainer: determinism, learning, early stopping, checkpoints, resume, NaN, schedules."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from textclf.core.errors import ConfigError, TrainingError
from textclf.models.predict import predict_proba
from textclf.text.batching import EncodedSplit
from textclf.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from textclf.training.config import TrainConfig
from textclf.training.device import resolve_device, seed_everything
from textclf.training.optim import lr_lambda
from textclf.training.trainer import Trainer

TIMING_KEYS = ("epoch_seconds", "tokens_per_second")  # differ between identical runs

VOCAB = 20


class TinyRNN(nn.Module):
    """Embedding → LSTM → max over real positions → Linear; the trainer's model contract."""

    def __init__(self, vocab: int = VOCAB, dim: int = 8, hidden: int = 16, num_classes: int = 2):
        super().__init__()
        self.hparams = {"vocab": vocab, "dim": dim, "hidden": hidden, "num_classes": num_classes}
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, tokens, lengths, labels=None):
        h, _ = self.rnn(self.emb(tokens))  # (B, T, H)
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]  # (B, T)
        pooled = h.masked_fill(~mask[..., None], -1e4).max(dim=1).values  # (B, H)
        logits = self.head(self.drop(pooled))  # (B, C)
        return logits, (F.cross_entropy(logits, labels) if labels is not None else None)


def make_data(n: int, seed: int) -> EncodedSplit:
    """label = 1 iff token 3 appears; lengths 2..24."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for _ in range(n):
        seq = rng.integers(4, VOCAB, size=rng.integers(2, 25))
        label = int(rng.random() < 0.5)
        if label:
            seq[rng.integers(len(seq))] = 3
        seqs.append(seq.tolist())
        labels.append(label)
    return EncodedSplit.from_sequences(seqs, labels)


TRAIN, VAL = make_data(600, 0), make_data(200, 1)


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=32, lr=1e-2, seed=0, device="cpu", num_threads=1, patience=0, warmup_ratio=0.1)
    return TrainConfig(**{**base, **kw})


def fit(config: TrainConfig, *, model_cls=TinyRNN, **kw):
    seed_everything(config.seed)
    model = model_cls()
    result = Trainer(model, config, **kw).fit(TRAIN, VAL)
    return model, result


def metrics_only(history):
    return [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in history]


# --------------------------------------------------------------------------- device, schedules


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        for spec in ("cuda", "cuda:1"):
            with pytest.raises(ConfigError, match="train.device"):
                resolve_device(spec)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_lr_schedules(schedule):
    f = lr_lambda(schedule, total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1)  # warm-up starts low, never at 0
    assert f(9) == f(10) == 1.0  # peak at the end of warm-up
    mid, end = {"constant": (1.0, 1.0), "linear": (0.5, 0.0), "cosine": (0.5, 0.0)}[schedule]
    assert f(60) == pytest.approx(mid)
    assert f(110) == pytest.approx(end, abs=1e-12)
    values = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # non-increasing after warm-up


def test_trainer_schedule_ends_at_zero():
    seed_everything(0)
    trainer = Trainer(TinyRNN(), cfg(epochs=2, schedule="linear"))
    result = trainer.fit(TRAIN, VAL)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.0
    assert result.history[0]["lr"] > result.history[1]["lr"] > 0.0  # lr of each epoch's last step


# --------------------------------------------------------------------------- training behaviour


def test_learns_trivial_task_and_predicts_in_order():
    model, result = fit(cfg(epochs=6, lr=2e-2))
    assert result.history[-1]["val_accuracy"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert not model.training  # handed back in eval mode
    assert result.train_seconds > 0 and result.tokens_per_second > 0 and result.device == "cpu"
    assert set(result.history[0]) == {
        "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1",
        "lr", "epoch_seconds", "tokens_per_second",
    }  # fmt: skip
    probs = predict_proba(model, VAL, batch_size=17)
    assert probs.shape == (len(VAL), 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # Original order: row i agrees with a batch of just example i.
    for i in (0, 57, 199):
        single = predict_proba(model, VAL.subset([i]))
        np.testing.assert_allclose(probs[i], single[0], rtol=1e-4, atol=1e-6)
    acc = float((probs.argmax(1) == VAL.labels).mean())
    assert acc == result.history[result.best_epoch - 1]["val_accuracy"]


def test_same_seed_same_history_other_seed_differs():
    _, a = fit(cfg(epochs=2))
    _, b = fit(cfg(epochs=2))
    _, c = fit(cfg(epochs=2, seed=1))
    assert metrics_only(a.history) == metrics_only(b.history)  # bitwise: == on floats
    assert metrics_only(a.history) != metrics_only(c.history)


def test_early_stopping_restores_best_weights():
    class ScriptedTrainer(Trainer):
        """Validation scores are scripted; each call snapshots the weights it scored."""

        scores = [0.5, 0.8, 0.7, 0.6, 0.9]
        snapshots: list = []

        def evaluate(self, split):
            self.snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})
            s = self.scores[len(self.snapshots) - 1]
            return {"val_loss": 1 - s, "val_accuracy": s, "val_macro_f1": s}

    seed_everything(0)
    model = TinyRNN()
    result = ScriptedTrainer(model, cfg(epochs=5, patience=2)).fit(TRAIN, VAL)
    assert result.stopped_early and len(result.history) == 4
    assert (result.best_epoch, result.best_metric) == (2, 0.8)
    best = ScriptedTrainer.snapshots[1]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    assert not torch.equal(ScriptedTrainer.snapshots[3]["head.weight"], best["head.weight"])


def test_final_model_scores_best_metric():
    # Random training labels: the model can only memorise, so validation loss
    # gets worse after a few epochs and early stopping has to roll back.
    noisy = EncodedSplit(TRAIN.ids, TRAIN.offsets, np.random.default_rng(0).permutation(TRAIN.labels))
    seed_everything(0)
    model = TinyRNN()
    config = cfg(epochs=8, lr=0.02, weight_decay=0.0, schedule="constant", early_stopping_metric="loss", patience=2)
    result = Trainer(model, config).fit(noisy, VAL)
    assert result.stopped_early and result.best_epoch < len(result.history)
    assert result.best_metric == min(h["val_loss"] for h in result.history)
    assert Trainer(model, config).evaluate(VAL)["val_loss"] == result.best_metric


def _imbalanced(n: int, seed: int) -> EncodedSplit:
    """10% positives; token 3 is more frequent in positives (0.6) than in negatives (0.25): a weak signal."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for _ in range(n):
        label = int(rng.random() < 0.1)
        seq = rng.integers(4, VOCAB, size=int(rng.integers(3, 8)))
        if rng.random() < (0.6 if label else 0.25):
            seq[0] = 3
        seqs.append(seq.tolist())
        labels.append(label)
    return EncodedSplit.from_sequences(seqs, labels)


def test_balanced_class_weights_change_what_is_learned():
    """train.class_weights=balanced reweights the loss: on imbalanced data the minority class gets predicted."""
    from sklearn.utils.class_weight import compute_class_weight

    train, val = _imbalanced(800, 0), _imbalanced(400, 1)
    rates = {}
    for weights in ("none", "balanced"):
        seed_everything(0)
        trainer = Trainer(TinyRNN(), cfg(epochs=6, class_weights=weights, early_stopping_metric="macro_f1"))
        trainer.fit(train, val)
        rates[weights] = float(predict_proba(trainer.model, val).argmax(1).mean())
        if weights == "balanced":
            expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=train.labels)
            np.testing.assert_allclose(trainer.class_weight.numpy(), expected, rtol=1e-6)
        else:
            assert trainer.class_weight is None
    assert rates["none"] < 0.05  # the plain loss learns "always negative"
    assert rates["balanced"] > rates["none"] + 0.15


def test_a_registered_metric_is_computed_every_epoch_and_can_stop_early(monkeypatch):
    """Adding a metric is one registry entry: it shows up in every epoch's validation metrics."""
    from textclf.core import metrics

    monkeypatch.setitem(
        metrics.METRICS,
        "positives",
        metrics.Metric(lambda y, pred, proba, n: float((pred == 1).mean()), per_epoch=True),
    )
    calls = []
    _, result = fit(
        cfg(epochs=1, early_stopping_metric="positives"), on_epoch=lambda e, m: calls.append((e, m)), log=calls.append
    )
    assert "val_positives" in result.history[0] and result.metric == "val_positives"
    assert calls[0].startswith("epoch 1/1") and calls[1][0] == 1


def _scripted_validation(monkeypatch, accuracies):
    """Make every epoch's validation report the next of ``accuracies`` (the training itself still runs)."""
    scores = iter(accuracies)
    monkeypatch.setattr(
        Trainer, "evaluate", lambda self, split: {"val_loss": 1.0, "val_accuracy": next(scores), "val_macro_f1": 0.0}
    )


def test_a_plateau_before_min_epochs_is_not_stopped(monkeypatch):
    """Validation flat for 4 epochs, then better: with patience 3 the run must not stop at the plateau."""
    _scripted_validation(monkeypatch, [0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9])
    _, result = fit(cfg(epochs=10, patience=3))  # min_epochs null: half of the epochs
    assert result.best_epoch == 6 and result.best_metric == 0.9
    assert result.stopped_early and len(result.history) == 9  # 3 epochs without improvement after the best


def test_patience_counts_only_after_min_epochs(monkeypatch):
    _scripted_validation(monkeypatch, [0.6] + [0.5] * 9)
    _, result = fit(cfg(epochs=10, patience=2, min_epochs=4))
    assert result.stopped_early and len(result.history) == 6 and result.best_epoch == 1  # epochs 5 and 6 count
    _scripted_validation(monkeypatch, [0.6] + [0.5] * 9)
    _, result = fit(cfg(epochs=10, patience=2, min_epochs=0))
    assert len(result.history) == 3  # no minimum: the old behaviour


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_weights_only_and_complete(tmp_path):
    _, result = fit(cfg(epochs=2), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    assert result.checkpoint_path == str(path) and path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temp files left
    ckpt = torch.load(path, weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "rng", "epoch", "history", "best_metric",
                "best_epoch", "best_state", "bad_epochs", "hparams", "config"):  # fmt: skip
        assert key in ckpt
    assert ckpt["epoch"] == 2 and ckpt["finished"] and ckpt["hparams"]["hidden"] == 16
    assert ckpt["config"]["lr"] == 1e-2
    np.random.default_rng().bit_generator.state = ckpt["rng"]["numpy"]  # round-trips

    # A finished checkpoint resumes into "nothing left to do" with the same result.
    seed_everything(0)
    model = TinyRNN()
    again = Trainer(model, cfg(epochs=2), checkpoint_dir=tmp_path).fit(TRAIN, VAL)
    assert again.resumed_from_epoch == 2 and again.history == result.history
    assert all(torch.equal(v, ckpt["best_state"][k]) for k, v in model.state_dict().items())


def test_checkpoint_of_another_config_is_refused(tmp_path):
    fit(cfg(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(TrainingError, match=r"another run configuration \(differs in: train\.lr\)"):
        fit(cfg(epochs=1, lr=0.5), checkpoint_dir=tmp_path)
    fit(cfg(epochs=1, num_threads=2), checkpoint_dir=tmp_path)  # where to run is not part of the identity


class Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_crafted_pickle_checkpoint_is_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / CHECKPOINT_NAME
    if how == "torch.save":
        torch.save({"format": "textclf-train-checkpoint", "x": Evil(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(TrainingError, match="corrupt or not a textclf checkpoint") as err:
        fit(cfg(epochs=1), checkpoint_dir=tmp_path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_truncated_checkpoint_is_refused(tmp_path):
    fit(cfg(epochs=1), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(TrainingError, match=str(path)):
        load_checkpoint(path)


class NanAfter(TinyRNN):
    """Returns NaN logits from the 36th training forward on (epoch 2, step 17 at 19 steps/epoch)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, tokens, lengths, labels=None):
        logits, _ = super().forward(tokens, lengths)
        if self.training:
            self.calls += 1
            if self.calls >= 19 + 17:
                logits = logits * float("nan")
        return logits, (F.cross_entropy(logits, labels) if labels is not None else None)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match=r"Loss became nan at epoch 2, step 17 \(of 19\)") as err:
        fit(cfg(epochs=3), model_cls=NanAfter, checkpoint_dir=tmp_path)
    assert str(tmp_path / CHECKPOINT_NAME) in str(err.value) and "train.lr" in str(err.value)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


# --------------------------------------------------------------------------- resume after a kill

SCRIPT = """
import json, os, signal, sys
sys.path.insert(0, {tests!r})
from test_train import TinyRNN, TRAIN, VAL, cfg
from textclf.training.device import seed_everything
from textclf.training.trainer import Trainer

ckpt_dir, out = sys.argv[1], sys.argv[2]
kill_at = int(os.environ.get("KILL_AT_EPOCH", "0"))

def on_epoch(epoch, metrics):
    if epoch == kill_at:  # dies before this epoch's checkpoint is written
        os.kill(os.getpid(), signal.SIGKILL)

config = cfg(epochs=3, schedule="cosine", patience=0)
seed_everything(config.seed)
model = TinyRNN()
result = Trainer(model, config, checkpoint_dir=ckpt_dir, on_epoch=on_epoch).fit(TRAIN, VAL)
weights = {{k: v.tolist() for k, v in model.state_dict().items()}}
json.dump({{"result": result.to_dict(), "weights": weights}}, open(out, "w"))
"""


def run_script(script: Path, ckpt_dir: Path, out: Path, kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KILL_AT_EPOCH"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    if kill_at:
        env["KILL_AT_EPOCH"] = str(kill_at)
    return subprocess.run(
        [sys.executable, str(script), str(ckpt_dir), str(out)], env=env, capture_output=True, text=True, timeout=300
    )


def _fit_as_the_script_does(ckpt_dir: Path) -> dict:
    """SCRIPT's training, in this process: only the run that is killed needs a process of its own."""
    from textclf.training.device import seed_everything

    config = cfg(epochs=3, schedule="cosine", patience=0)
    seed_everything(config.seed)
    model = TinyRNN()
    result = Trainer(model, config, checkpoint_dir=ckpt_dir).fit(TRAIN, VAL)
    # through JSON, as the script writes it
    return json.loads(
        json.dumps({"result": result.to_dict(), "weights": {k: v.tolist() for k, v in model.state_dict().items()}})
    )


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(Path(__file__).resolve().parent))))

    a = _fit_as_the_script_does(tmp_path / "full")
    killed = run_script(script, tmp_path / "ckpt", tmp_path / "killed.json", kill_at=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_checkpoint(tmp_path / "ckpt" / CHECKPOINT_NAME)["epoch"] == 1
    b = _fit_as_the_script_does(tmp_path / "ckpt")

    assert a["result"]["resumed_from_epoch"] is None and b["result"]["resumed_from_epoch"] == 1
    assert metrics_only(b["result"]["history"]) == metrics_only(a["result"]["history"])
    assert len(a["result"]["history"]) == 3
    for key in ("best_epoch", "best_metric", "stopped_early"):
        assert a["result"][key] == b["result"][key]
    assert a["weights"] == b["weights"]


def test_pretrained_embeddings_are_not_decayed_toward_zero():
    from textclf.models.classifier import TextClassifier
    from textclf.training.optim import param_groups

    model = TextClassifier(50, 8, 2, hidden_size=8)
    decayed = lambda groups: {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}  # noqa: E731
    assert id(model.embedding.weight) in decayed(param_groups(model, 0.1))  # random init: regularised like any matrix
    model.pretrained_embedding = True
    groups = param_groups(model, 0.1)
    assert id(model.embedding.weight) not in decayed(groups)
    others = [p for name, p in model.named_parameters() if p.ndim == 2 and not name.startswith("embedding")]
    assert others and all(id(p) in decayed(groups) for p in others)  # the encoder and head still are
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
