"""Run variants: one (variant, seed) end to end, and whole pipelines.

:func:`run_variant` chains the cached stages for one resolved config::

    prepare → tokenize → embed → train → evaluate        (neural)
    prepare → tfidf (fit + evaluate)                      (kind: tfidf)

and returns a :class:`VariantOutput` whose files live in the stage cache.
:func:`run_pipeline` runs every (variant, seed) of a pipeline, records each as
a nested MLflow child run under one parent run, and finishes with the compare
stage. MLflow logging happens in this process, after each variant's
computation, so a cached result and a fresh one are logged the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from textclf.cache import StageCache, stage_key
from textclf.config import Config
from textclf.stages import StageResult, prepare_stage, tokenize_stage

log = logging.getLogger(__name__)


@dataclass
class VariantOutput:
    config: Config
    kind: str
    metrics: dict[str, float]  # val_*, test_*, cost metrics
    history: list[dict[str, Any]]
    model_dir: Path
    eval_dir: Path
    stage_key: str  # the key of the stage that trained the model
    cached: bool
    data: StageResult
    tokenized: StageResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return self.data.value.label_names

    def test_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.load(self.eval_dir / "y_test.npy", allow_pickle=False),
            np.load(self.eval_dir / "proba_test.npy", allow_pickle=False),
        )


# --------------------------------------------------------------------------- embed / train / evaluate


def embed_stage(cfg: Config, tok: StageResult, cache: StageCache) -> StageResult | None:
    """Pretrained vectors aligned to the vocabulary; None for random initialisation."""
    if not cfg.embedding.pretrained:
        return None
    from textclf.embedding import pretrained_matrix, source_identity

    params = {**source_identity(cfg.embedding.pretrained), "dim": cfg.embedding.dim}
    key = stage_key("embed", params, [tok.key])
    with cache.lock("embed", key):
        hit = cache.get("embed", key)
        cached = hit is not None
        if hit is None:
            train = tok.value.splits["train"]
            counts = np.bincount(train.ids, minlength=tok.value.tokenizer.get_vocab_size())
            matrix, coverage = pretrained_matrix(
                cfg.embedding, tok.value.tokenizer.get_vocab(), counts, trained_size=tok.value.stats.get("trained_vocab_size")
            )
            with cache.write("embed", key, coverage) as tmp:
                np.save(tmp / "matrix.npy", matrix)
                (tmp / "coverage.json").write_text(json.dumps(coverage))
            hit = cache.get("embed", key)
    coverage = json.loads((hit / "coverage.json").read_text())
    return StageResult(key, hit, cached, {"matrix": np.load(hit / "matrix.npy", allow_pickle=False), "coverage": coverage})


def _build_model(cfg: Config, vocab_size: int, num_classes: int, emb: StageResult | None, source=None, frozen_rows: int = 0):
    import torch

    from textclf.model import TextClassifier
    from textclf.train import seed_everything

    seed_everything(cfg.train.seed)  # the initial weights depend on the seed
    model = TextClassifier(
        vocab_size=vocab_size,
        embedding_dim=cfg.embedding.dim,
        num_classes=num_classes,
        padding_idx=0,
        cell=cfg.encoder.cell,
        hidden_size=cfg.encoder.hidden_size,
        layers=cfg.encoder.layers,
        bidirectional=cfg.encoder.bidirectional,
        dropout=cfg.encoder.dropout if cfg.encoder.layers > 1 else 0.0,
        embedding_dropout=cfg.embedding.dropout,
        output_dropout=cfg.encoder.output_dropout,
        pooling=cfg.encoder.pooling,
        frozen_rows=source.folder["config"]["model"].get("frozen_rows", 0) if source is not None else frozen_rows,
    )
    if emb is not None:
        model.embedding.load_matrix(torch.from_numpy(emb.value["matrix"]))
        model.pretrained_embedding = True  # not decayed toward zero (see train.param_groups)
    if source is not None:  # encoder.init_from: embedding + encoder from the source, new head
        from textclf.transfer import load_pretrained

        load_pretrained(model, source, freeze=cfg.encoder.freeze)
    if not cfg.embedding.trainable:
        model.embedding.weight.requires_grad_(False)
    return model


def train_stage(cfg: Config, tok: StageResult, emb: StageResult | None, label_names: list[str], cache: StageCache, *, force=False, on_epoch=None, log_fn=None, source=None) -> StageResult:
    """Train (or resume, or reuse) the model; the entry holds the model folder and the history."""
    from textclf import artifacts
    from textclf.distributed import data_parallel_size

    params = {
        "embedding": cfg.embedding.model_dump(mode="json"),
        "encoder": cfg.encoder.model_dump(mode="json"),
        "train": cfg.train.model_dump(mode="json"),
    }
    if source is not None:  # the source's content, not its (movable) reference
        params["init_from"] = source.identity()
    if (world := data_parallel_size()) > 1:  # DDP matches one process within a tolerance, not bitwise
        params["data_parallel"] = world
    key = stage_key("train", params, [tok.key] + ([emb.key] if emb else []))
    with cache.lock("train", key):
        hit = None if force else cache.get("train", key)
        cached = hit is not None
        if hit is None:
            if force and cache.get("train", key):
                shutil.rmtree(cache.path("train", key), ignore_errors=True)
            from textclf.train import Trainer  # torch: only when something is trained

            work = cache.scratch("train", key)  # checkpoints survive a kill; resumed on re-run
            model = _build_model(
                cfg, tok.value.tokenizer.get_vocab_size(), len(label_names), emb, source,
                frozen_rows=tok.value.stats.get("vocab_extension", 0),
            )
            trainer = Trainer(model, cfg.train, checkpoint_dir=work, on_epoch=on_epoch, eval_batch_size=cfg.evaluate.batch_size, log=log_fn)
            result = trainer.fit(tok.value.splits["train"], tok.value.splits["validation"])
            info = result.to_dict()
            info.pop("history", None)
            info["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            info["params_total"] = sum(p.numel() for p in model.parameters())
            with cache.write("train", key, {"variant": _describe(cfg)}) as tmp:
                artifacts.save_neural(
                    tmp / "model", model=model, tokenizer=tok.value.tokenizer, label_names=label_names, config=cfg.to_dict(),
                    extra={"init_from": source.describe()} if source is not None else None,
                )
                (tmp / "history.json").write_text(json.dumps(result.history, indent=1))
                (tmp / "train.json").write_text(json.dumps(info, indent=1, default=str))
            shutil.rmtree(work, ignore_errors=True)
            hit = cache.get("train", key)
    return StageResult(key, hit, cached, {
        "history": json.loads((hit / "history.json").read_text()),
        "info": json.loads((hit / "train.json").read_text()),
        "model_dir": hit / "model",
    })


def _describe(cfg: Config) -> str:
    if cfg.kind == "tfidf":
        return "tfidf"
    e = cfg.encoder
    return f"{'bi' if e.bidirectional else ''}{e.cell}-x{e.layers} seed={cfg.train.seed}"


def evaluate_stage(cfg: Config, trained: StageResult, tok: StageResult, data: StageResult, cache: StageCache, *, force=False) -> StageResult:
    """Metrics on validation and test, cost metrics, plots and the classification report."""
    key = stage_key("evaluate", {"evaluate": cfg.evaluate.model_dump(mode="json")}, [trained.key])
    with cache.lock("evaluate", key):
        hit = None if force else cache.get("evaluate", key)
        cached = hit is not None
        if hit is None:
            if force and cache.get("evaluate", key):
                shutil.rmtree(cache.path("evaluate", key), ignore_errors=True)
            with cache.write("evaluate", key) as tmp:
                _evaluate_neural(cfg, trained, tok, data, tmp)
            hit = cache.get("evaluate", key)
    return StageResult(key, hit, cached, json.loads((hit / "metrics.json").read_text()))


def _evaluate_neural(cfg: Config, trained: StageResult, tok: StageResult, data: StageResult, out: Path) -> None:
    from textclf.evaluate import classification_metrics, classification_report_text, flatten_metrics, measure_latency
    from textclf.inference import Classifier
    from textclf.plots import plot_confusion_matrix, plot_learning_curves
    from textclf.train import predict_proba

    clf = Classifier.from_folder(trained.value["model_dir"])
    names = data.value.label_names
    splits = tok.value.splits
    metrics: dict[str, float] = {}
    bs = cfg.evaluate.batch_size
    report = {}
    for split, prefix in (("validation", "val_"), ("test", "test_"), ("train", "train_")):
        proba = predict_proba(clf.model, splits[split], batch_size=bs, device=clf.device)
        y = splits[split].labels
        m = classification_metrics(y, proba, names)
        if split == "train":
            metrics["train_accuracy"] = m["accuracy"]
            continue
        metrics.update(flatten_metrics(m, prefix=prefix))
        report[split] = m
        if split == "test":
            np.save(out / "y_test.npy", y)
            np.save(out / "proba_test.npy", proba.astype(np.float32))
            (out / "classification_report.txt").write_text(classification_report_text(y, proba.argmax(1), names))
            plot_confusion_matrix(m["confusion_matrix"], names, out / "confusion_matrix.png", title=f"{_describe(cfg)}: test")
    metrics["generalization_gap"] = metrics["train_accuracy"] - metrics["val_accuracy"]
    plot_learning_curves(trained.value["history"], out / "learning_curves.png", title=_describe(cfg))
    info = trained.value["info"]
    metrics.update(params=float(info["params"]), train_seconds=float(info["train_seconds"]), tokens_per_second=float(info["tokens_per_second"]))
    if cfg.evaluate.latency_samples > 0:
        texts = data.value.splits["test"]["text"][: max(256, cfg.evaluate.latency_samples)]
        metrics.update(measure_latency(clf.predict_proba, texts, n_single=cfg.evaluate.latency_samples, batch_size=256))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "details.json").write_text(json.dumps(report, indent=1, default=str))


def tfidf_stage(cfg: Config, data: StageResult, cache: StageCache, *, force=False) -> StageResult:
    """Fit + evaluate the TF-IDF + logistic-regression baseline (deterministic: the seed doesn't enter the key)."""
    key = stage_key("tfidf", {"tfidf": cfg.tfidf.model_dump(mode="json"), "evaluate": cfg.evaluate.model_dump(mode="json")}, [data.key])
    with cache.lock("tfidf", key):
        hit = None if force else cache.get("tfidf", key)
        cached = hit is not None
        if hit is None:
            if force and cache.get("tfidf", key):
                shutil.rmtree(cache.path("tfidf", key), ignore_errors=True)
            with cache.write("tfidf", key, {"variant": "tfidf"}) as tmp:
                _fit_tfidf(cfg, data, tmp)
            hit = cache.get("tfidf", key)
    return StageResult(key, hit, cached, json.loads((hit / "eval" / "metrics.json").read_text()))


def _fit_tfidf(cfg: Config, data: StageResult, out: Path) -> None:
    from textclf import artifacts
    from textclf.baseline import TfidfBaseline
    from textclf.evaluate import classification_metrics, classification_report_text, flatten_metrics, measure_latency
    from textclf.plots import plot_confusion_matrix

    d = data.value
    t = cfg.tfidf
    t0 = time.perf_counter()
    b = TfidfBaseline(ngram_max=t.ngram_max, C=t.C, max_features=t.max_features, min_df=t.min_df, seed=cfg.train.seed)
    b.fit(d.texts("train"), d.labels("train"), d.texts("validation"), d.labels("validation"))
    seconds = time.perf_counter() - t0
    artifacts.save_tfidf(out / "model", baseline=b, label_names=d.label_names, config=cfg.to_dict())
    ev = out / "eval"
    ev.mkdir()
    metrics: dict[str, float] = {}
    for split, prefix in (("validation", "val_"), ("test", "test_")):
        proba = b.predict_proba(d.texts(split))
        m = classification_metrics(d.labels(split), proba, d.label_names)
        metrics.update(flatten_metrics(m, prefix=prefix))
        if split == "test":
            np.save(ev / "y_test.npy", d.labels(split))
            np.save(ev / "proba_test.npy", proba.astype(np.float32))
            (ev / "classification_report.txt").write_text(classification_report_text(d.labels(split), proba.argmax(1), d.label_names))
            plot_confusion_matrix(m["confusion_matrix"], d.label_names, ev / "confusion_matrix.png", title="tfidf: test")
    train_acc = float(np.mean(b.predict(d.texts("train")) == d.labels("train")))
    metrics.update(train_accuracy=train_acc, generalization_gap=train_acc - metrics["val_accuracy"], params=float(b.num_parameters()), train_seconds=seconds, tfidf_C=float(b.C_))
    if cfg.evaluate.latency_samples > 0:
        texts = d.texts("test")[: max(256, cfg.evaluate.latency_samples)]
        metrics.update(measure_latency(b.predict_proba, texts, n_single=cfg.evaluate.latency_samples, batch_size=256))
    (ev / "metrics.json").write_text(json.dumps(metrics, indent=1))


def tokenize_for(cfg: Config, data: StageResult, cache: StageCache, *, force: bool = False, source=None) -> StageResult:
    """The tokenize stage for ``cfg``: train a tokenizer, or (encoder.init_from) encode with the source's."""
    if source is None and cfg.encoder.init_from:
        from textclf.transfer import source_for

        source = source_for(cfg)
    if source is not None:
        from textclf.transfer import tokenize_stage as transfer_tokenize_stage

        return transfer_tokenize_stage(cfg, data, source, cache, force=force)
    return tokenize_stage(cfg, data, cache, force=force)


def run_variant(cfg: Config, cache: StageCache, *, force: bool = False, on_epoch: Callable | None = None, log_fn: Callable | None = None, reuse_upstream: bool = False) -> VariantOutput:
    """One resolved config end to end, reusing every cached stage.

    ``reuse_upstream=True``: ``force`` recomputes only the model stages (train,
    evaluate, tfidf); the caller has already (re)computed prepare / tokenize /
    embed. Parallel workers use it: a forced upstream stage replaces an entry
    that other workers may be reading.
    """
    from textclf.transfer import source_for

    # encoder.init_from: resolved and checked against this config before any work; None from scratch.
    source = source_for(cfg) if cfg.kind == "neural" else None
    upstream_force = force and not reuse_upstream
    data = prepare_stage(cfg, cache, force=upstream_force)
    if cfg.kind == "tfidf":
        res = tfidf_stage(cfg, data, cache, force=force)
        return VariantOutput(
            config=cfg, kind="tfidf", metrics=res.value, history=[], model_dir=res.path / "model", eval_dir=res.path / "eval",
            stage_key=res.key, cached=res.cached, data=data,
        )
    tok = tokenize_for(cfg, data, cache, force=upstream_force, source=source)
    emb = embed_stage(cfg, tok, cache)
    trained = train_stage(cfg, tok, emb, data.value.label_names, cache, force=force, on_epoch=on_epoch, log_fn=log_fn, source=source)
    ev = evaluate_stage(cfg, trained, tok, data, cache, force=force and not trained.cached)
    extra = {"token_stats": tok.value.stats, "train_info": trained.value["info"]}
    if source is not None:
        extra["init_from"] = source.describe()
        extra["lineage_tags"] = source.lineage_tags()
    if emb is not None:
        extra["embedding_coverage"] = emb.value["coverage"]
    return VariantOutput(
        config=cfg, kind="neural", metrics=ev.value, history=trained.value["history"], model_dir=trained.value["model_dir"],
        eval_dir=ev.path, stage_key=trained.key, cached=trained.cached, data=data, tokenized=tok, extra=extra,
    )
