"""One (variant, seed) end to end: its stage specs, and the run through the cached stages.

:func:`plan` is the one place a resolved :class:`~textclf.pipeline.config.Config`
is turned into stage specs, so each stage's cache key is built from exactly
the config it reads::

    prepare ← data            tokenize ← tokenizer (+ embedding.extend_vocab, or the init_from tokenizer)
    embed   ← embedding.pretrained / dim          train ← tokenizer, embedding, encoder, train (+ init_from)
    evaluate ← evaluate       tfidf ← tfidf, evaluate

:func:`upstream` is the one chain of the shared stages (``prepare → tokenize →
embed``, or ``prepare`` alone for TF-IDF); :func:`run_variant` continues it
(``→ train → evaluate``, or ``→ tfidf``) and returns a :class:`VariantOutput`
whose files live in the stage cache. A pipeline plans each (variant, seed) once,
in its driver (:func:`planned`), and hands the plan to every step down to the
worker that trains it. Nothing here logs to MLflow or prints, and nothing
measures cost: callers record, report and time (:func:`with_cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textclf.core.cache import StageCache
from textclf.pipeline.config import Config, extends_vocabulary
from textclf.pipeline.data_stages import (
    EmbedSpec,
    PrepareSpec,
    TokenizeSpec,
    VocabExtension,
    embed_stage,
    prepare_spec,
    prepare_stage,
    tokenize_stage,
    warn_data,
)
from textclf.pipeline.model_stages import (
    CostSpec,
    EvaluateSettings,
    EvaluateSpec,
    TfidfSpec,
    TrainSpec,
    cost_stage,
    evaluate_stage,
    test_predictions,
    tfidf_stage,
    train_stage,
)
from textclf.pipeline.stage import StageResult, key_of


@dataclass(frozen=True)
class Plan:
    """The stage specs of one resolved config (None where a stage does not run)."""

    prepare: PrepareSpec
    tokenize: TokenizeSpec | None = None
    embed: EmbedSpec | None = None
    train: TrainSpec | None = None
    evaluate: EvaluateSpec | None = None
    tfidf: TfidfSpec | None = None


def plan(cfg: Config, cache: StageCache, *, source=None) -> Plan:
    """Stage specs for ``cfg`` (``source``: the resolved ``encoder.init_from`` model, if any)."""
    from textclf.training.ddp import world_size

    prepare = prepare_spec(cfg.data, cache.root)
    settings = EvaluateSettings(**cfg.evaluate.model_dump())
    if cfg.kind == "tfidf":
        return Plan(prepare=prepare, tfidf=TfidfSpec(tfidf=cfg.tfidf, evaluate=settings))
    vectors = None
    if cfg.embedding.pretrained:
        from textclf.text.embedding import source_identity

        vectors = source_identity(cfg.embedding.pretrained, cache.root)
    if source is not None:
        tokenize = TokenizeSpec(tokenizer=cfg.tokenizer, source_tokenizer=source.tokenizer_sha256)
    else:
        extend = (
            VocabExtension(vectors=vectors, spec=cfg.embedding.pretrained, limit=cfg.embedding.extend_vocab)
            if extends_vocabulary(cfg)
            else None
        )
        tokenize = TokenizeSpec(tokenizer=cfg.tokenizer, extend=extend)
    embed = (
        EmbedSpec(vectors=vectors, spec=cfg.embedding.pretrained, dim=cfg.embedding.dim)
        if vectors is not None
        else None
    )
    world = world_size()
    train = TrainSpec(
        tokenizer=cfg.tokenizer,
        embedding=cfg.embedding,
        encoder=cfg.encoder,
        train=cfg.train,
        eval_batch_size=cfg.evaluate.batch_size,
        init_from=source.identity() if source is not None else None,
        data_parallel=world if world > 1 else None,
    )
    return Plan(prepare=prepare, tokenize=tokenize, embed=embed, train=train, evaluate=EvaluateSpec(evaluate=settings))


def planned(cfg: Config, cache: StageCache, p: Plan | None = None) -> tuple[Plan, Any]:
    """(``cfg``'s plan, or ``p`` when the caller planned it; its resolved ``encoder.init_from`` source or None)."""
    from textclf.pipeline.transfer import source_for

    # Resolved and checked against this config before any work (a neural config without init_from checks freeze);
    # a worker given the driver's plan still needs the source model's weights.
    source = source_for(cfg, cache_dir=cache.root) if cfg.kind == "neural" else None
    return p or plan(cfg, cache, source=source), source


def is_trained(cfg: Config, cache: StageCache) -> bool:
    """Whether ``cfg``'s model is in the cache already, told from the specs alone (nothing is loaded or computed).

    Used to skip the memory check of models that will not be built; any doubt
    (init_from, a spec that cannot be made yet) answers False.
    """
    return trained_key(cfg, cache) is not None


def trained_key(cfg: Config, cache: StageCache, *, p: Plan | None = None) -> str | None:
    """The cache key of ``cfg``'s trained model (train or tfidf stage) when it is in the cache, else None.

    The keys follow the chain :func:`run_variant` runs (prepare → tokenize →
    embed → train, or prepare → tfidf), so this is the ``stage_key`` the run
    would report; any doubt (init_from, a spec that cannot be made yet) answers None.
    ``p``: ``cfg``'s plan when the caller has it.
    """
    from textclf.core.cache import META
    from textclf.core.errors import TextclfError

    if cfg.kind == "neural" and cfg.encoder.init_from:
        return None
    try:
        p = p or plan(cfg, cache)
    except TextclfError:
        return None
    prepare = key_of("prepare", p.prepare)
    if p.tfidf is not None:
        stage, key = "tfidf", key_of("tfidf", p.tfidf, [prepare])
    else:
        tok = key_of("tokenize", p.tokenize, [prepare])
        upstream = [tok] + ([key_of("embed", p.embed, [tok])] if p.embed is not None else [])
        stage, key = "train", key_of("train", p.train, upstream)
    return key if (cache.path(stage, key) / META).is_file() else None


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
        """(true labels, predicted classes) of the test split."""
        return test_predictions(self.eval_dir)


@dataclass
class Upstream:
    """The shared stages of one config: what training starts from (tok and emb None for TF-IDF)."""

    plan: Plan
    data: StageResult
    tok: StageResult | None
    emb: StageResult | None
    source: Any  # textclf.pipeline.transfer.Source or None


def upstream(
    cfg: Config,
    cache: StageCache,
    *,
    force: bool = False,
    p: Plan | None = None,
    source=None,
    forced: set | None = None,
) -> Upstream:
    """prepare → tokenize → embed for ``cfg`` (prepare only for TF-IDF), each a cache hit when computed before.

    ``p`` and ``source``: from :func:`planned`, when the caller has them. ``forced``: the
    (stage, key) pairs this run forced already, shared by the calls of one run, so that with
    ``force`` each distinct entry is recomputed once, not once per variant.
    """
    if p is None:
        p, source = planned(cfg, cache)

    def again(stage: str, spec, ups) -> bool:
        if not force or forced is None:
            return force
        key = (stage, key_of(stage, spec, ups))
        first = key not in forced
        forced.add(key)
        return first

    data = prepare_stage(p.prepare, cache, force=again("prepare", p.prepare, []))
    if p.tokenize is None:
        return Upstream(plan=p, data=data, tok=None, emb=None, source=source)
    tok = tokenize_stage(
        p.tokenize,
        data,
        cache,
        force=again("tokenize", p.tokenize, [data]),
        source_tokenizer=source.tokenizer if source is not None else None,
    )
    emb = embed_stage(p.embed, tok, cache, force=again("embed", p.embed, [tok])) if p.embed is not None else None
    return Upstream(plan=p, data=data, tok=tok, emb=emb, source=source)


def run_variant(
    cfg: Config,
    cache: StageCache,
    *,
    force: bool = False,
    on_epoch: Callable | None = None,
    log_fn: Callable | None = None,
    reuse_upstream: bool = False,
    p: Plan | None = None,
) -> VariantOutput:
    """One resolved config end to end, reusing every cached stage; ``p``: its plan, when the caller has it.

    ``reuse_upstream=True``: ``force`` recomputes only the model stages (train,
    evaluate, tfidf); the caller has already (re)computed prepare / tokenize /
    embed and said what they found (:func:`~textclf.pipeline.data_stages.warn_data`).
    Parallel workers use it: a forced upstream stage replaces an entry that other
    workers may be reading. Latency and throughput are left out: the caller adds
    them with :func:`with_cost`, one model at a time.
    """
    p, source = planned(cfg, cache, p)
    up = upstream(cfg, cache, force=force and not reuse_upstream, p=p, source=source)
    if not reuse_upstream:
        warn_data(cfg, up.data, up.tok)
    if cfg.kind == "tfidf":
        res = tfidf_stage(up.plan.tfidf, up.data, cache, force=force)
        return VariantOutput(
            config=cfg,
            kind="tfidf",
            metrics=res.value.metrics,
            history=[],
            model_dir=res.path / "model",
            eval_dir=res.value.dir,
            stage_key=res.key,
            cached=res.cached,
            data=up.data,
        )
    trained = train_stage(
        up.plan.train,
        up.tok,
        up.emb,
        up.data.value.label_names,
        cache,
        force=force,
        on_epoch=on_epoch,
        log_fn=log_fn,
        source=source,
    )
    ev = evaluate_stage(up.plan.evaluate, trained, up.tok, up.data, cache, force=force and not trained.cached)
    extra: dict[str, Any] = {
        "token_stats": up.tok.value.stats,
        "train_info": trained.value.info,
        "epoch_times": trained.value.epoch_times,
    }
    if source is not None:
        extra["init_from"] = source.describe()
        extra["lineage_tags"] = source.lineage_tags()
    if up.emb is not None:
        extra["embedding_coverage"] = up.emb.value.coverage
    return VariantOutput(
        config=cfg,
        kind="neural",
        metrics=ev.value.metrics,
        history=trained.value.history,
        model_dir=trained.value.model_dir,
        eval_dir=ev.value.dir,
        stage_key=trained.key,
        cached=trained.cached,
        data=up.data,
        tokenized=up.tok,
        extra=extra,
    )


def with_cost(out: VariantOutput, cache: StageCache, *, force: bool = False) -> VariantOutput:
    """``out`` with its latency and throughput metrics, measured now (one model at a time) or read from the cache.

    The one place cost is measured: ``textclf train`` right after its training, a pipeline's driver
    after each training (inline) or after all of them (trained side by side); ``force`` re-measures
    only a model trained again (``force and not out.cached``).
    """
    from types import SimpleNamespace

    from textclf.core.machine import thread_count

    # Timed with the threads this process may use (all cores in the driver's quiet pass).
    spec = CostSpec(
        latency_samples=out.config.evaluate.latency_samples, threads=thread_count(out.config.train.num_threads)
    )
    model = SimpleNamespace(key=out.stage_key)  # the cost of a model: keyed by the stage that trained it
    res = cost_stage(spec, model, out.model_dir, out.data.value.texts("test"), cache, force=force and not out.cached)
    out.metrics = {**out.metrics, **res.value.metrics}
    return out
