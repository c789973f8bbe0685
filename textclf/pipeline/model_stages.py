"""The stages that belong to one (variant, seed): train → evaluate, or the TF-IDF baseline's fit + evaluate.

As in :mod:`textclf.pipeline.data_stages`, each stage takes a spec holding
exactly what it reads and returns a typed result whose files live in the
stage cache.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from textclf.core.cache import StageCache
from textclf.models.config import EncoderConfig, TfidfConfig
from textclf.pipeline.stage import StageResult, key_of, run_stage
from textclf.text.config import EmbeddingConfig, TokenizerConfig
from textclf.training.config import TrainConfig

log = logging.getLogger(__name__)


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


def build_model(
    spec: TrainSpec,
    vocab_size: int,
    num_classes: int,
    *,
    matrix: np.ndarray | None = None,
    source=None,
    frozen_rows: int = 0,
):
    """The classifier a train spec describes, its initial weights seeded by ``train.seed``."""
    import torch

    from textclf.models.classifier import TextClassifier
    from textclf.pipeline.resources import model_hparams
    from textclf.training.device import seed_everything

    emb, enc = spec.embedding, spec.encoder
    seed_everything(spec.train.seed)  # the initial weights depend on the seed
    model = TextClassifier(
        **model_hparams(
            emb,
            enc,
            vocab_size=vocab_size,
            num_classes=num_classes,
            frozen_rows=frozen_rows_of(source, frozen_rows),
            max_length=spec.tokenizer.max_length,
        )
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


def frozen_rows_of(source, frozen_rows: int) -> int:
    """Frozen embedding rows: the init_from model's own, else the tokenize stage's vocabulary extension."""
    return source.folder["config"]["model"].get("frozen_rows", 0) if source is not None else frozen_rows


def describe(spec: TrainSpec) -> str:
    e = spec.encoder
    return f"{'bi' if e.bidirectional else ''}{e.cell}-x{e.layers} seed={spec.train.seed}"


def train_stage(
    spec: TrainSpec,
    tok: StageResult,
    emb: StageResult | None,
    label_names: list[str],
    cache: StageCache,
    *,
    force: bool = False,
    on_epoch: Callable | None = None,
    log_fn: Callable | None = None,
    source=None,
) -> StageResult[Trained]:
    """Train (or resume, or reuse) the model; the entry holds the model folder and the history."""

    def compute(tmp: Path) -> dict[str, Any]:
        from textclf.models import folder
        from textclf.pipeline.resources import check_model
        from textclf.training.trainer import (
            Trainer,  # torch: only when something is trained
        )

        work = cache.scratch("train", key_of("train", spec, upstream))  # checkpoints survive a kill; resumed on re-run
        vocab, frozen = tok.value.tokenizer.get_vocab_size(), tok.value.stats.get("vocab_extension", 0)
        lengths = tok.value.splits["train"].lengths
        # The real vocabulary, class count and longest text are known now: check again before building.
        check_model(
            spec,
            vocab_size=vocab,
            num_classes=len(label_names),
            frozen_rows=frozen_rows_of(source, frozen),
            longest=int(lengths.max()) if len(lengths) else 1,
            what=f"Training {describe(spec)}",
            frozen_encoder=source is not None and spec.encoder.freeze,
        )
        model = build_model(
            spec, vocab, len(label_names), matrix=emb.value.matrix if emb else None, source=source, frozen_rows=frozen
        )
        step = getattr(log_fn, "step", None)  # progress within an epoch, where the log function reports it
        clock = work / "epoch_times.json"
        trainer = Trainer(
            model,
            spec.train,
            checkpoint_dir=work,
            on_epoch=_epoch_clock(clock, on_epoch),
            eval_batch_size=spec.eval_batch_size,
            log=log_fn,
            progress=(lambda e, s, n: step(e, spec.train.epochs, s, n)) if step else None,
        )
        result = trainer.fit(tok.value.splits["train"], tok.value.splits["validation"])
        info = result.to_dict()
        info.pop("history", None)
        info["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        info["params_total"] = sum(p.numel() for p in model.parameters())
        config = {
            "kind": "neural",
            **spec.model_dump(mode="json", include={"tokenizer", "embedding", "encoder", "train"}),
        }
        folder.save_neural(
            tmp / "model",
            model=model,
            tokenizer=tok.value.tokenizer,
            label_names=label_names,
            config=config,
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


# Rows × classes kept as a full probability matrix (128 MiB of float32); past it a split is
# scored from its top classes (TopProba) and the test split stores those, not the matrix.
DENSE_PROBA_ELEMENTS = 2**25
TOP_K = 5


def test_predictions(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted classes) of the test split: all the comparison needs."""
    y = np.load(directory / "y_test.npy", allow_pickle=False)
    if (directory / "pred_test.npy").is_file():
        return y, np.load(directory / "pred_test.npy", allow_pickle=False)
    return y, np.load(directory / "proba_test.npy", allow_pickle=False).argmax(
        1
    )  # an entry written before pred_test.npy


@dataclass
class Evaluation:
    metrics: dict[str, float]  # val_*, test_*, train_accuracy, cost metrics
    dir: Path  # y_test.npy, pred_test.npy, proba_test.npy (or top_test.npz), plots, classification report

    def test_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(true labels, predicted classes) of the test split."""
        return test_predictions(self.dir)


def _load_evaluation(path: Path) -> Evaluation:
    return Evaluation(metrics=json.loads((path / "metrics.json").read_text()), dir=path)


def evaluate_stage(
    spec: EvaluateSpec,
    trained: StageResult[Trained],
    tok: StageResult,
    data: StageResult,
    cache: StageCache,
    *,
    force: bool = False,
) -> StageResult[Evaluation]:
    """Metrics on validation, test and train, cost metrics, plots and the classification report."""

    def compute(out: Path) -> None:
        from textclf.analysis.plots import plot_learning_curves
        from textclf.models.predict import predict_proba, predict_top
        from textclf.serving.classifier import Classifier

        clf = Classifier.from_folder(trained.value.model_dir)
        names = data.value.label_names
        splits = tok.value.splits
        probas = {}
        for s in ("validation", "test", "train"):  # train: only its accuracy is needed, never the matrix
            dense = s != "train" and len(splits[s]) * len(names) <= DENSE_PROBA_ELEMENTS
            predict = predict_proba if dense else partial(predict_top, k=TOP_K)
            probas[s] = predict(clf.model, splits[s], batch_size=spec.evaluate.batch_size, device=clf.device)
        title = json.loads((trained.path / "_entry.json").read_text()).get("variant", "")  # e.g. "bilstm-x2 seed=1"
        metrics = _score(probas, {s: splits[s].labels for s in probas}, names, out, title=title)
        plot_learning_curves(trained.value.history, out / "learning_curves.png", title=title)
        info = trained.value.info
        metrics.update(
            params=float(info["params"]),
            train_seconds=float(info["train_seconds"]),
            tokens_per_second=float(info["tokens_per_second"]),
        )
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    return run_stage(cache, "evaluate", spec, [trained], compute=compute, load=_load_evaluation, force=force)


def _score(
    probas: dict[str, np.ndarray], labels: dict[str, np.ndarray], names: list[str], out: Path, *, title: str
) -> dict[str, float]:
    """Registered metrics on validation and test (and train accuracy); test arrays, report and confusion matrix into ``out``."""
    from textclf.analysis.plots import plot_confusion_matrix
    from textclf.core.metrics import (
        PER_CLASS_METRICS_MAX,
        TopProba,
        classification_metrics,
        classification_report_text,
        flatten_metrics,
    )

    def pred(p) -> np.ndarray:
        return p.pred if isinstance(p, TopProba) else p.argmax(1)

    metrics: dict[str, float] = {}
    for split, prefix in (("validation", "val_"), ("test", "test_")):
        m = classification_metrics(labels[split], probas[split], names)
        metrics.update(flatten_metrics(m, prefix=prefix))
        if split == "test":
            p = probas[split]
            np.save(out / "y_test.npy", labels[split])
            np.save(out / "pred_test.npy", pred(p))
            if isinstance(p, TopProba):
                np.savez(out / "top_test.npz", classes=p.classes, proba=p.proba)
            else:
                np.save(out / "proba_test.npy", p.astype(np.float32))
            (out / "classification_report.txt").write_text(classification_report_text(labels[split], pred(p), names))
            if m["confusion_matrix"] is not None:
                plot_confusion_matrix(
                    m["confusion_matrix"], names, out / "confusion_matrix.png", title=f"{title}: test".strip(": ")
                )
    if len(names) > PER_CLASS_METRICS_MAX:
        log.warning(
            "%s classes: per-class metrics are not logged to MLflow (more than %d); classification_report.txt has them.",
            f"{len(names):,}",
            PER_CLASS_METRICS_MAX,
        )
    if "train" in probas:
        metrics["train_accuracy"] = float(np.mean(pred(probas["train"]) == labels["train"]))
        metrics["generalization_gap"] = metrics["train_accuracy"] - metrics["val_accuracy"]
    return metrics


# --------------------------------------------------------------------------- cost


class CostSpec(_Spec):
    latency_samples: int  # batch-1 calls timed
    threads: int  # torch threads while timing: latency depends on them


@dataclass
class Cost:
    metrics: dict[str, float]  # latency_p50_ms, latency_p95_ms, texts_per_s_b256


def cost_stage(
    spec: CostSpec, model: StageResult, model_dir: Path, texts: list[str], cache: StageCache, *, force: bool = False
) -> StageResult[Cost]:
    """Batch-1 latency and batch-256 throughput of a trained model on test texts.

    A stage of its own, so it can run apart from training: with several
    trainings side by side (``--jobs N``) the driver times each model alone,
    afterwards, on a quiet machine, instead of while other trainings compete
    for the cores.
    """

    def compute(out: Path) -> None:
        import torch

        from textclf.analysis.cost import measure_latency
        from textclf.serving.classifier import Classifier
        from textclf.training.device import set_num_threads

        before = torch.get_num_threads()
        set_num_threads(spec.threads)
        try:
            clf = Classifier.from_folder(model_dir)
            sample = texts[: max(256, spec.latency_samples)]
            metrics = (
                measure_latency(clf.predict_proba, sample, n_single=spec.latency_samples, batch_size=256)
                if spec.latency_samples > 0
                else {}
            )
        finally:
            set_num_threads(before)
        metrics["cost_threads"] = float(spec.threads)
        (out / "cost.json").write_text(json.dumps(metrics, indent=1))

    return run_stage(
        cache,
        "cost",
        spec,
        [model],
        compute=compute,
        load=lambda p: Cost(json.loads((p / "cost.json").read_text())),
        force=force,
    )


# --------------------------------------------------------------------------- the TF-IDF baseline


class TfidfSpec(_Spec):
    tfidf: TfidfConfig
    evaluate: EvaluateSettings


def tfidf_stage(
    spec: TfidfSpec, data: StageResult, cache: StageCache, *, force: bool = False
) -> StageResult[Evaluation]:
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
        folder.save_tfidf(
            out / "model", baseline=b, label_names=d.label_names, config={"tfidf": t.model_dump(mode="json")}
        )
        ev = out / "eval"
        ev.mkdir()
        labels = {s: d.labels(s) for s in ("validation", "test", "train")}
        probas = {
            s: _tfidf_proba(
                b, d.texts(s), y, dense=s != "train" and len(y) * len(d.label_names) <= DENSE_PROBA_ELEMENTS
            )
            for s, y in labels.items()
        }
        metrics = _score(probas, labels, d.label_names, ev, title="tfidf")
        metrics.update(params=float(b.num_parameters()), train_seconds=seconds, tfidf_C=float(b.C_))
        (ev / "metrics.json").write_text(json.dumps(metrics, indent=1))
        return {"variant": "tfidf"}

    return run_stage(
        cache, "tfidf", spec, [data], compute=compute, load=lambda p: _load_evaluation(p / "eval"), force=force
    )


def _tfidf_proba(baseline, texts: list[str], y: np.ndarray, *, dense: bool, rows: int = 4096):
    """The baseline's (N, C) probabilities, or (``dense=False``) their top classes, a block of rows at a time."""
    from textclf.core.metrics import TopProba

    if dense:
        return baseline.predict_proba(texts)
    return TopProba.concat(
        [
            TopProba.from_dense(baseline.predict_proba(texts[i : i + rows]), y[i : i + rows], TOP_K)
            for i in range(0, len(texts), rows)
        ]
    )
