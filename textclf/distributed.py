"""Scaling out: pipeline tasks on Ray, one training data-parallel under torchrun.

Ray executor (``textclf run --executor ray``)
    Each (variant, seed) is one Ray task. The driver first computes the
    stages variants share (prepare → tokenize → embed) into the stage cache,
    so they run once; each task then trains and evaluates its variant into the
    same cache and returns only a few strings (which entry, computed or
    reused). The driver rebuilds the :class:`~textclf.runner.VariantOutput`
    from the cache (all hits, cheap) and does every MLflow call itself, so
    the parent/child run structure is the same as with the local executor.
    The cache must therefore be one directory every node sees (one machine,
    or a shared filesystem); its atomic entries and per-key locks make
    concurrent and retried tasks safe. A task whose worker process dies (OOM
    kill, lost node) is retried by Ray (``max_retries``); the retry resumes
    training from the checkpoint in ``<cache>/train/.work/<key>/`` and the
    driver records the (variant, seed) once. Exceptions raised by textclf
    itself (a bad config, a diverged training) are not retried: they would
    fail again.

Data-parallel training (``torchrun ... -m textclf train`` or ``textclf train --ddp``)
    Every rank runs the same command. Rank 0 computes prepare / tokenize /
    embed while the others wait at a barrier, then they read the cache. Rank 0
    runs the normal single-variant path (cache entry, MLflow run, model
    folder); the other ranks train in step with it through the same code, over
    a view of the cache in which the model stages are never found and never
    written (:class:`_RankCache`), and stop where rank 0 stores the result.
    The :class:`~textclf.train.Trainer` does the DDP work (see its module
    docstring). ``--ddp`` outside torchrun starts the processes on this
    machine with ``torch.multiprocessing`` and the same entry point.

``TEXTCLF_TEST_KILL_WORKER_DIR`` (tests only): when set, each Ray task
SIGKILLs its own worker once, after its first epoch's checkpoint was written
(a marker file in that directory remembers it), to exercise retry + resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

from textclf.cache import StageCache
from textclf.config import Config
from textclf.errors import ConfigError, TextclfError, TrainingError

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # attempts after the first when a Ray worker dies
KILL_ENV = "TEXTCLF_TEST_KILL_WORKER_DIR"
_MODEL_STAGES = ("train", "evaluate", "tfidf")  # what a (variant, seed) task computes itself


# --------------------------------------------------------------------------- shared upstream


def compute_upstream(configs: Iterable[Config], cache: StageCache, *, force: bool = False) -> None:
    """prepare → tokenize → embed for every config, each distinct entry once.

    Run before fanning out so parallel workers find these shared stages in the
    cache. With ``force`` each distinct entry is recomputed once (not once per
    variant); workers then run with ``reuse_upstream=True``.
    """
    from textclf.runner import embed_stage, tokenize_for
    from textclf.stages import prepare_stage

    forced: set[str] = set()

    def first(*parts: Any) -> bool:
        sig = json.dumps(parts, sort_keys=True, default=str)
        seen = sig in forced
        forced.add(sig)
        return force and not seen

    for cfg in configs:
        data_params = cfg.data.model_dump(mode="json")
        data = prepare_stage(cfg, cache, force=first("prepare", data_params))
        if cfg.kind != "neural":
            continue
        tok_force = first("tokenize", data_params, cfg.tokenizer.model_dump(mode="json"), cfg.encoder.init_from)
        embed_stage(cfg, tokenize_for(cfg, data, cache, force=tok_force), cache)


# --------------------------------------------------------------------------- Ray executor


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, an optional extra: pip install 'textclf[ray]' "
            "(in a checkout: pip install -e '.[ray]'). Or use --executor local [--jobs N]."
        ) from None
    return ray


def _ensure_ray(ray, address: str | None, quiet: bool) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS, as set by ``ray job submit``), else start a local instance."""
    if ray.is_initialized():  # e.g. a notebook or a test that started Ray itself
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not quiet, "logging_level": logging.WARNING}
    if address is None:
        opts["num_cpus"] = os.cpu_count()  # only a new local instance takes a size
    ray.init(address=address, **opts)


def ray_getters(
    tasks: list[tuple[Any, int]],
    cache_root: str,
    force: bool,
    quiet: bool,
    ray_address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
) -> list[Callable[[], Any]]:
    """Submit one Ray task per (variant, seed); return one zero-argument getter per task, in order.

    Each getter waits for its task and returns the :class:`VariantOutput`
    rebuilt in this process from the cache.
    """
    ray = _import_ray()
    if cpus_per_task <= 0 or gpus_per_task < 0:
        raise ConfigError(f"--cpus-per-task must be > 0 and --gpus-per-task >= 0. Got {cpus_per_task} and {gpus_per_task} instead.")
    cache = StageCache(Path(cache_root).resolve())  # workers may start in another directory
    compute_upstream({id(v): v.config for v, _ in tasks}.values(), cache, force=force)
    _ensure_ray(ray, ray_address, quiet)

    env = {"TOKENIZERS_PARALLELISM": "false"}  # tokenizers' own threads would fight the worker's
    if "mlflow" in sys.modules:  # encoder.init_from may name MLflow models: resolve them where the driver does
        env["MLFLOW_TRACKING_URI"] = sys.modules["mlflow"].get_tracking_uri()
    kill_dir = os.environ.get(KILL_ENV)
    remote = ray.remote(_ray_task)
    refs = []
    for variant, seed in tasks:
        label = f"{variant.key}-s{seed}"
        # Ray sets OMP_NUM_THREADS to the task's CPUs; train.num_threads: null follows it.
        opts = remote.options(
            name=f"textclf:{label}", num_cpus=cpus_per_task, num_gpus=gpus_per_task,
            max_retries=MAX_RETRIES, retry_exceptions=False, runtime_env={"env_vars": env},
        )
        refs.append(opts.remote(variant.for_seed(seed), label, str(cache.root), force, quiet, os.getcwd(), kill_dir))

    def getter(ref, variant, seed) -> Callable[[], Any]:
        def get():
            from textclf.runner import run_variant

            try:
                info = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, TextclfError):
                    raise exc.cause from None  # the worker's own message, no remote traceback
                raise
            except ray.exceptions.RayError as exc:
                raise TrainingError(
                    f"{variant.key} seed {seed}: the Ray task failed {MAX_RETRIES + 1} times "
                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})."
                ) from None
            if cache.get(info["stage"], info["key"]) is None:
                raise ConfigError(
                    f"{variant.key} seed {seed}: a Ray worker stored its result in {cache.root} on its node, "
                    "but this machine cannot see it. Put the stage cache on a filesystem every node mounts at "
                    "the same path (--cache-dir or TEXTCLF_CACHE_DIR)."
                )
            out = run_variant(variant.for_seed(seed), cache)  # every stage a cache hit
            return dataclasses.replace(out, cached=info["cached"])

        return get

    return [getter(ref, v, s) for ref, (v, s) in zip(refs, tasks)]


def _ray_task(cfg: Config, label: str, cache_root: str, force: bool, quiet: bool, cwd: str, kill_dir: str | None) -> dict[str, Any]:
    """One (variant, seed) in a Ray worker: train + evaluate into the cache; return where the result is."""
    import datasets

    from textclf.runner import run_variant

    datasets.disable_progress_bars()
    if os.path.isdir(cwd):  # relative data paths resolve as in the driver (same machine, or same mount)
        os.chdir(cwd)
    log_fn = None if quiet else (lambda line: print(f"  [{label}] {line}", file=sys.stderr, flush=True))
    on_epoch = _killer(Path(kill_dir) / label) if kill_dir else None
    out = run_variant(cfg, StageCache(cache_root), force=force, reuse_upstream=True, log_fn=log_fn, on_epoch=on_epoch)
    return {"stage": "tfidf" if cfg.kind == "tfidf" else "train", "key": out.stage_key, "cached": out.cached}


def _killer(marker: Path) -> Callable[[int, dict], None]:
    """on_epoch for tests: SIGKILL this worker once, at epoch 2 (epoch 1's checkpoint exists by then)."""

    def on_epoch(epoch: int, metrics: dict) -> None:
        if epoch == 2 and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return on_epoch


# --------------------------------------------------------------------------- data-parallel training


@dataclasses.dataclass(frozen=True)
class DDPContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str


_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def under_torchrun() -> bool:
    """True in a process started by torchrun (or anything that sets its environment variables)."""
    return all(k in os.environ for k in _TORCHRUN_ENV)


def init_process_group(device: str = "auto") -> DDPContext:
    """Join the process group described by torchrun's environment: gloo on CPU, nccl on CUDA."""
    import torch
    import torch.distributed as dist

    from textclf.train import resolve_device

    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = resolve_device(device)
    if dev.type == "mps":
        raise ConfigError("Data-parallel training runs on CPU (gloo) or CUDA (nccl), not on mps. Set train.device=cpu.")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev.index if dev.index is not None else local)  # one GPU per process
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DDPContext(rank=rank, world_size=world, local_rank=local, backend=backend)


def data_parallel_size() -> int:
    """Processes training together: the process group's size when one is initialised, else 1."""
    if "torch" not in sys.modules:  # no process group without torch; keep cached runs torch-free
        return 1
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class _RankDone(Exception):
    """A rank other than 0 reached the point where rank 0 stores the trained model."""


class _RankCache(StageCache):
    """The stage cache as ranks other than 0 see it.

    Upstream entries (prepare, tokenize, embed) come from the shared cache.
    The model stages belong to rank 0: here they are never found (so this rank
    trains, in step with rank 0), never locked (rank 0 holds the lock) and
    never written (storing ends this rank's part, by raising :class:`_RankDone`).
    """

    def __init__(self, shared: StageCache, scratch: Path):
        super().__init__(shared.root)
        self._scratch = scratch

    def get(self, stage: str, key: str) -> Path | None:
        return None if stage in _MODEL_STAGES else super().get(stage, key)

    def lock(self, stage: str, key: str):
        return contextlib.nullcontext() if stage in _MODEL_STAGES else super().lock(stage, key)

    def write(self, stage: str, key: str, meta: dict[str, Any] | None = None):
        if stage in _MODEL_STAGES:
            raise _RankDone()
        return super().write(stage, key, meta)

    def scratch(self, stage: str, key: str) -> Path:
        if stage in _MODEL_STAGES:  # rank 0 owns the checkpoints; keep out of its directory
            return self._scratch
        return super().scratch(stage, key)


def train_data_parallel(
    cfg: Config,
    *,
    cache: StageCache,
    nproc_per_node: int | None = None,
    console=None,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """Train ``cfg`` data-parallel; rank 0 returns what :func:`textclf.single.train_one` returns, other ranks None.

    Under torchrun this process is one rank. Otherwise ``nproc_per_node``
    processes (default: the visible GPUs, else 2) are started on this machine
    and rank 0's result is returned here. ``kwargs`` go to ``train_one``
    (``tracking_uri``, ``experiment``, ``output``, ``force``, ``quiet``).
    """
    if cfg.kind != "neural":
        raise ConfigError("Data-parallel training is for neural variants; kind: tfidf trains in one process (drop --ddp).")
    if under_torchrun():
        return _train_rank(cfg, cache=cache, console=console, **kwargs)
    return _spawn_local(cfg, cache=cache, nproc=nproc_per_node or _default_nproc(cfg), console=console is not None, kwargs=kwargs)


def _train_rank(cfg: Config, *, cache: StageCache, console=None, force: bool = False, **kwargs: Any) -> dict[str, Any] | None:
    import torch.distributed as dist

    from textclf.runner import run_variant
    from textclf.single import train_one
    from textclf.train import TrainingSkipped, skip_distributed_training

    ctx = init_process_group(cfg.train.device)
    try:
        if ctx.rank == 0:
            compute_upstream([cfg], cache, force=force)
        dist.barrier()  # the others read what rank 0 just stored
        if ctx.rank != 0:
            with tempfile.TemporaryDirectory(prefix=f"textclf-rank{ctx.rank}-") as tmp:
                try:
                    run_variant(cfg, _RankCache(cache, Path(tmp)), reuse_upstream=True)
                except (_RankDone, TrainingSkipped):
                    pass
            return None
        result = train_one(cfg, cache=cache, force=force, reuse_upstream=True, console=console, **kwargs)
        if result.get("cached"):  # nothing was trained: release the ranks waiting for it
            skip_distributed_training()
        result["world_size"] = ctx.world_size
        return result
    finally:
        destroy_process_group()


def _default_nproc(cfg: Config) -> int:
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() and cfg.train.device != "cpu" else 0
    return gpus or 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_local(cfg: Config, *, cache: StageCache, nproc: int, console: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Start ``nproc`` ranks on this machine (what ``torchrun --standalone`` does) and return rank 0's result."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ConfigError(f"--nproc-per-node must be >= 1. Got {nproc} instead.")
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(nproc)}
    with tempfile.TemporaryDirectory(prefix="textclf-ddp-") as tmp:
        out = Path(tmp)
        try:
            mp.spawn(_spawned_rank, args=(env, cfg, StageCache(cache.root.resolve()), console, kwargs, str(out)), nprocs=nproc, join=True)
        except mp.ProcessExitedException:
            errors = sorted(out.glob("error-*.json"))
            if not errors:
                raise
            err = json.loads(errors[0].read_text())
            import textclf.errors as E

            cls = getattr(E, err["type"], TextclfError)
            raise (cls if isinstance(cls, type) and issubclass(cls, TextclfError) else TextclfError)(err["message"]) from None
        return json.loads((out / "result.json").read_text())


def _spawned_rank(index: int, env: dict[str, str], cfg: Config, cache: StageCache, console: bool, kwargs: dict[str, Any], out: str) -> None:
    """Entry point of one process started by :func:`_spawn_local`."""
    os.environ.update(env, RANK=str(index), LOCAL_RANK=str(index))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # As torchrun does: don't let every rank use every core.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(env["WORLD_SIZE"]))))
    from textclf.cli import _setup_logging

    _setup_logging(bool(kwargs.get("quiet")))
    con = None
    if console and index == 0:
        from rich.console import Console

        con = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        result = _train_rank(cfg, cache=cache, console=con, **kwargs)
    except TextclfError as exc:
        Path(out, f"error-{index}.json").write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        sys.exit(exc.exit_code)
    if result is not None:
        Path(out, "result.json").write_text(json.dumps(result, default=str))
