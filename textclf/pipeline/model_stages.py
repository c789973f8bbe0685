"""The stages that belong to one (variant, seed): train → evaluate, or the TF-IDF baseline's fit + evaluate.

As in :mod:`textclf.pipeline.data_stages`, each stage takes a spec holding
exactly what it reads and returns a typed result whose files live in the
stage cache.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

from textclf.core.cache import StageCache
from textclf.models.config import EncoderConfig, TfidfConfig
from textclf.pipeline.stage import StageResult, key_of, run_stage
from textclf.text.config import EmbeddingConfig, TokenizerConfig
from textclf.training.config import TrainConfig


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluateSettings(_Spec):
    batch_size: int
    latency_samples: int


# --------------------------------------------------------------------------- train


class TrainSpec(_Spec):
    tokenizer: TokenizerConfig  # recorded in the model folder: serving truncates text as training did
    embedding: EmbeddingConfig
    encoder: EncoderConfig
    train: TrainConfig
    eval_batch_size: int  # validation after every epoch (batching can change float sums, hence the decision)
    init_from: dict[str, str] | None = None  # the source model's content hashes (encoder.init_from)
    data_parallel: int | None = None  # DDP matches one process within a tolerance, not bitwise


@dataclass
class Trained:
    history: list[dict[str, Any]]
    info: dict[str, Any]
    model_dir: Path
    epoch_times: dict[int, int] = field(default_factory=dict)  # epoch -> when it ended (Unix ms), for MLflow


def _epoch_clock(path: Path, on_epoch: Callable | None) -> Callable:
    """``on_epoch`` that also writes when each epoch ended to ``path`` (in the checkpoint folder, so a resumed
    training keeps the times of the epochs before the interruption), then calls ``on_epoch``."""

    def record(epoch: int, metrics: dict) -> None:
        times = json.loads(path.read_text()) if path.is_file() else {}
        times[str(epoch)] = int(time.time() * 1000)
        path.write_text(json.dumps(times))
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    return record


def build_model(spec: TrainSpec, vocab_size: int, num_classes: int, *, matrix: np.ndarray | None = None, source=None, frozen_rows: int = 0):
    """The classifier a train spec describes, its initial weights seeded by ``train.seed``."""
    import torch

    from textclf.models.classifier import TextClassifier
    from textclf.training.device import seed_everything

    emb, enc = spec.embedding, spec.encoder
    seed_everything(spec.train.seed)  # the initial weights depend on the seed
    model = TextClassifier(
        vocab_size=vocab_size,
        embedding_dim=emb.dim,
        num_classes=num_classes,
        padding_idx=0,
        cell=enc.cell,
        hidden_size=enc.hidden_size,
        layers=enc.layers,
        bidirectional=enc.bidirectional,
        dropout=enc.dropout if enc.layers > 1 else 0.0,
        embedding_dropout=emb.dropout,
        output_dropout=enc.output_dropout,
        pooling=enc.pooling,
        frozen_rows=source.folder["config"]["model"].get("frozen_rows", 0) if source is not None else frozen_rows,
    )
    if matrix is not None:
        model.embedding.load_matrix(torch.from_numpy(matrix))
        model.pretrained_embedding = True  # not decayed toward zero (see training.optim.param_groups)
    if source is not None:  # encoder.init_from: embedding + encoder from the source, new head
        from textclf.pipeline.transfer import load_pretrained

        load_pretrained(model, source, freeze=enc.freeze)
    if not emb.trainable:
        model.embedding.weight.requires_grad_(False)
    return model


def describe(spec: TrainSpec) -> str:
    e = spec.encoder
    return f"{'bi' if e.bidirectional else ''}{e.cell}-x{e.layers} seed={spec.train.seed}"


def train_stage(
    spec: TrainSpec, tok: StageResult, emb: StageResult | None, label_names: list[str], cache: StageCache, *,
    force: bool = False, on_epoch: Callable | None = None, log_fn: Callable | None = None, source=None,
) -> StageResult[Trained]:
    """Train (or resume, or reuse) the model; the entry holds the model folder and the history."""

    def compute(tmp: Path) -> dict[str, Any]:
        from textclf.models import folder
        from textclf.training.trainer import (
            Trainer,  # torch: only when something is trained
        )

        work = cache.scratch("train", key_of("train", spec, upstream))  # checkpoints survive a kill; resumed on re-run
        model = build_model(
            spec, tok.value.tokenizer.get_vocab_size(), len(label_names), matrix=emb.value.matrix if emb else None,
            source=source, frozen_rows=tok.value.stats.get("vocab_extension", 0),
        )
        clock = work / "epoch_times.json"
        trainer = Trainer(model, spec.train, checkpoint_dir=work, on_epoch=_epoch_clock(clock, on_epoch), eval_batch_size=spec.eval_batch_size, log=log_fn)
        result = trainer.fit(tok.value.splits["train"], tok.value.splits["validation"])
        info = result.to_dict()
        info.pop("history", None)
        info["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        info["params_total"] = sum(p.numel() for p in model.parameters())
        config = {"kind": "neural", **spec.model_dump(mode="json", include={"tokenizer", "embedding", "encoder", "train"})}
        folder.save_neural(
            tmp / "model", model=model, tokenizer=tok.value.tokenizer, label_names=label_names, config=config,
            extra={"init_from": source.describe()} if source is not None else None,
        )
        (tmp / "history.json").write_text(json.dumps(result.history, indent=1))
        (tmp / "train.json").write_text(json.dumps(info, indent=1, default=str))
        if clock.is_file():
            shutil.copyfile(clock, tmp / "epoch_times.json")
        shutil.rmtree(work, ignore_errors=True)
        return {"variant": describe(spec)}

    def load(path: Path) -> Trained:
        times = json.loads((path / "epoch_times.json").read_text()) if (path / "epoch_times.json").is_file() else {}
        return Trained(
            history=json.loads((path / "history.json").read_text()),
            info=json.loads((path / "train.json").read_text()),
            model_dir=path / "model",
            epoch_times={int(k): int(v) for k, v in times.items()},
        )

    upstream = [tok, emb]
    return run_stage(cache, "train", spec, upstream, compute=compute, load=load, force=force)


# --------------------------------------------------------------------------- evaluate


class EvaluateSpec(_Spec):
    evaluate: EvaluateSettings


@dataclass
class Evaluation:
    metrics: dict[str, float]  # val_*, test_*, train_accuracy, cost metrics
    dir: Path  # y_test.npy, proba_test.npy, plots, classification report

    def test_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.load(self.dir / "y_test.npy", allow_pickle=False), np.load(self.dir / "proba_test.npy", allow_pickle=False)


def _load_evaluation(path: Path) -> Evaluation:
    return Evaluation(metrics=json.loads((path / "metrics.json").read_text()), dir=path)


def evaluate_stage(spec: EvaluateSpec, trained: StageResult[Trained], tok: StageResult, data: StageResult, cache: StageCache, *, force: bool = False) -> StageResult[Evaluation]:
    """Metrics on validation, test and train, cost metrics, plots and the classification report."""

    def compute(out: Path) -> None:
        from textclf.analysis.plots import plot_learning_curves
        from textclf.models.predict import predict_proba
        from textclf.serving.classifier import Classifier

        clf = Classifier.from_folder(trained.value.model_dir)
        names = data.value.label_names
        splits = tok.value.splits
        probas = {s: predict_proba(clf.model, splits[s], batch_size=spec.evaluate.batch_size, device=clf.device) for s in ("validation", "test", "train")}
        title = json.loads((trained.path / "_entry.json").read_text()).get("variant", "")  # e.g. "bilstm-x2 seed=1"
        metrics = _score(probas, {s: splits[s].labels for s in probas}, names, out, title=title)
        plot_learning_curves(trained.value.history, out / "learning_curves.png", title=title)
        info = trained.value.info
        metrics.update(params=float(info["params"]), train_seconds=float(info["train_seconds"]), tokens_per_second=float(info["tokens_per_second"]))
        metrics.update(_cost(spec.evaluate, clf.predict_proba, data.value.splits["test"]["text"]))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    return run_stage(cache, "evaluate", spec, [trained], compute=compute, load=_load_evaluation, force=force)


def _score(probas: dict[str, np.ndarray], labels: dict[str, np.ndarray], names: list[str], out: Path, *, title: str) -> dict[str, float]:
    """Registered metrics on validation and test (and train accuracy); test arrays, report and confusion matrix into ``out``."""
    from textclf.analysis.plots import plot_confusion_matrix
    from textclf.core.metrics import (
        classification_metrics,
        classification_report_text,
        flatten_metrics,
    )

    metrics: dict[str, float] = {}
    for split, prefix in (("validation", "val_"), ("test", "test_")):
        m = classification_metrics(labels[split], probas[split], names)
        metrics.update(flatten_metrics(m, prefix=prefix))
        if split == "test":
            np.save(out / "y_test.npy", labels[split])
            np.save(out / "proba_test.npy", probas[split].astype(np.float32))
            (out / "classification_report.txt").write_text(classification_report_text(labels[split], probas[split].argmax(1), names))
            plot_confusion_matrix(m["confusion_matrix"], names, out / "confusion_matrix.png", title=f"{title}: test".strip(": "))
    if "train" in probas:
        metrics["train_accuracy"] = float(np.mean(probas["train"].argmax(1) == labels["train"]))
        metrics["generalization_gap"] = metrics["train_accuracy"] - metrics["val_accuracy"]
    return metrics


def _cost(settings: EvaluateSettings, predict_fn, texts) -> dict[str, float]:
    from textclf.analysis.cost import measure_latency

    if settings.latency_samples <= 0:
        return {}
    texts = texts[: max(256, settings.latency_samples)]
    return measure_latency(predict_fn, texts, n_single=settings.latency_samples, batch_size=256)


# --------------------------------------------------------------------------- the TF-IDF baseline


class TfidfSpec(_Spec):
    tfidf: TfidfConfig
    evaluate: EvaluateSettings


def tfidf_stage(spec: TfidfSpec, data: StageResult, cache: StageCache, *, force: bool = False) -> StageResult[Evaluation]:
    """Fit + evaluate TF-IDF + logistic regression (deterministic: no seed in the key); ``C`` is chosen on validation."""

    def compute(out: Path) -> dict[str, Any]:
        from textclf.models import folder
        from textclf.models.tfidf import TfidfBaseline

        d = data.value
        t = spec.tfidf
        t0 = time.perf_counter()
        b = TfidfBaseline(ngram_max=t.ngram_max, C=t.C, max_features=t.max_features, min_df=t.min_df)
        b.fit(d.texts("train"), d.labels("train"), d.texts("validation"), d.labels("validation"))
        seconds = time.perf_counter() - t0
        folder.save_tfidf(out / "model", baseline=b, label_names=d.label_names, config={"tfidf": t.model_dump(mode="json")})
        ev = out / "eval"
        ev.mkdir()
        probas = {s: b.predict_proba(d.texts(s)) for s in ("validation", "test", "train")}
        metrics = _score(probas, {s: d.labels(s) for s in probas}, d.label_names, ev, title="tfidf")
        metrics.update(params=float(b.num_parameters()), train_seconds=seconds, tfidf_C=float(b.C_))
        metrics.update(_cost(spec.evaluate, b.predict_proba, d.texts("test")))
        (ev / "metrics.json").write_text(json.dumps(metrics, indent=1))
        return {"variant": "tfidf"}

    return run_stage(cache, "tfidf", spec, [data], compute=compute, load=lambda p: _load_evaluation(p / "eval"), force=force)
