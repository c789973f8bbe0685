"""One variant trained by several processes (``textclf train --ddp`` or under ``torchrun``).

Every rank runs the same command. Rank 0 computes prepare / tokenize / embed
while the others wait at a barrier, then runs the normal single-variant path
(:func:`textclf.pipeline.train_one.train_one`: cache entry, MLflow run, model
folder), whose trainer joins the process group. The other ranks read the
shared stages from the cache, build the same model from the same seed and
train in step with rank 0; they write nothing. If rank 0 finds the model
already trained, it releases them (:func:`textclf.training.ddp.skip_training`).

Outside torchrun, ``--ddp`` starts the processes on this machine with
``torch.multiprocessing`` (what ``torchrun --standalone`` does).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from textclf.core.cache import StageCache
from textclf.core.errors import ConfigError, TextclfError
from textclf.pipeline.config import Config
from textclf.training import ddp


def train_data_parallel(
    cfg: Config, *, cache: StageCache, nproc_per_node: int | None = None, **kwargs: Any
) -> dict[str, Any] | None:
    """Train ``cfg`` data-parallel; rank 0 returns what ``train_one`` returns, other ranks None.

    Under torchrun this process is one rank. Otherwise ``nproc_per_node``
    processes (default: the visible GPUs, else 2) are started on this machine
    and rank 0's result is returned here. ``kwargs`` go to ``train_one``
    (``tracking_uri``, ``experiment``, ``output``, ``force``, ``overwrite``, ``quiet``).
    """
    from textclf.pipeline.train_one import check_train

    if cfg.kind != "neural":
        raise ConfigError(
            "Data-parallel training is for neural variants; kind: tfidf trains in one process (drop --ddp)."
        )
    check_train(cfg, cache, **kwargs)  # once, before any process starts (each rank holds a whole model)
    if ddp.under_torchrun():
        return _train_rank(cfg, cache=cache, **kwargs)
    return _spawn_local(cfg, cache=cache, nproc=nproc_per_node or _default_nproc(cfg), kwargs=kwargs)


def _train_rank(cfg: Config, *, cache: StageCache, force: bool = False, **kwargs: Any) -> dict[str, Any] | None:
    from textclf.pipeline.train_one import train_one
    from textclf.pipeline.variant import upstream

    ctx = ddp.init_process_group(cfg.train.device)
    try:
        if ctx.rank == 0:
            from textclf.pipeline.data_stages import warn_data

            up = upstream(cfg, cache, force=force)
            warn_data(cfg, up.data, up.tok)  # rank 0 only: one warning, not one per process
        ddp.barrier()  # the others read what rank 0 just stored
        if ctx.rank != 0:
            _follow(cfg, cache)
            return None
        result = train_one(cfg, cache=cache, force=force, reuse_upstream=True, checked=True, **kwargs)
        if result.get("cached"):  # nothing was trained: release the ranks waiting for it
            ddp.skip_training()
        result["world_size"] = ctx.world_size
        return result
    finally:
        ddp.destroy_process_group()


def _follow(cfg: Config, cache: StageCache) -> None:
    """A rank other than 0: train in step with rank 0 on the shared stages, keep nothing."""
    from textclf.pipeline.model_stages import build_model
    from textclf.pipeline.variant import upstream
    from textclf.training.trainer import Trainer

    up = upstream(cfg, cache)  # cache hits: rank 0 computed them before the barrier
    spec = up.plan.train
    model = build_model(
        spec,
        up.tok.value.tokenizer.get_vocab_size(),
        len(up.data.value.label_names),
        matrix=up.emb.value.matrix if up.emb else None,
        source=up.source,
        frozen_rows=up.tok.value.stats.get("vocab_extension", 0),
    )
    try:
        Trainer(model, spec.train, eval_batch_size=spec.eval_batch_size, distributed=True).fit(
            up.tok.value.splits["train"], up.tok.value.splits["validation"]
        )
    except ddp.TrainingSkipped:
        pass


def _default_nproc(cfg: Config) -> int:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() and cfg.train.device != "cpu" else 0
    return gpus or 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_local(cfg: Config, *, cache: StageCache, nproc: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Start ``nproc`` ranks on this machine and return rank 0's result."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ConfigError(f"--nproc-per-node must be >= 1. Got {nproc} instead.")
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(nproc)}
    with tempfile.TemporaryDirectory(prefix="textclf-ddp-") as tmp:
        out = Path(tmp)
        try:
            mp.spawn(
                _spawned_rank,
                args=(env, cfg, StageCache(cache.root.resolve()), kwargs, str(out)),
                nprocs=nproc,
                join=True,
            )
        except mp.ProcessExitedException:
            errors = sorted(out.glob("error-*.json"))
            if not errors:
                raise
            err = json.loads(errors[0].read_text())
            import textclf.core.errors as E

            cls = getattr(E, err["type"], TextclfError)
            raise (cls if isinstance(cls, type) and issubclass(cls, TextclfError) else TextclfError)(
                err["message"]
            ) from None
        return json.loads((out / "result.json").read_text())


def _spawned_rank(
    index: int, env: dict[str, str], cfg: Config, cache: StageCache, kwargs: dict[str, Any], out: str
) -> None:
    """Entry point of one process started by :func:`_spawn_local`."""
    import sys

    from textclf.core.logs import setup_logging

    os.environ.update(env, RANK=str(index), LOCAL_RANK=str(index))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # As torchrun does: don't let every rank use every core.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(env["WORLD_SIZE"]))))
    setup_logging(bool(kwargs.get("quiet")))
    try:
        result = _train_rank(cfg, cache=cache, **kwargs)
    except TextclfError as exc:
        Path(out, f"error-{index}.json").write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        sys.exit(exc.exit_code)
    if result is not None:
        Path(out, "result.json").write_text(json.dumps(result, default=str))
