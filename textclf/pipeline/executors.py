"""Where the (variant, seed) tasks of a pipeline run: inline, a local process pool, or Ray.

The caller first computes the stages variants share (prepare → tokenize →
embed; :func:`compute_upstream`) into the stage cache, once, in this process
— so a data problem of any task stops the run before the first training;
each task then trains and evaluates one (variant, seed) into the same cache. The driver reads the
results back (all cache hits, cheap) and does every MLflow call itself, so
every executor leaves the same record. :func:`execute` returns one getter per
task, in task order; ``get(on_epoch=None)`` returns its VariantOutput.
``on_epoch`` reaches the training only where it runs in this process (the
inline executor), so MLflow shows its curves grow live; a worker's epochs are
logged by the driver afterwards, with the times they ended.

Local, one job (``--jobs 1``)
    Tasks run lazily in this process, in order, so output streams as it goes.
Local, several jobs (``--jobs N``)
    A spawn-based process pool; each worker gets its share of the cores
    (``OMP_NUM_THREADS``; ``train.num_threads: null`` follows it).
Ray (``--executor ray``)
    One Ray task per (variant, seed). The cache must be one directory every
    node sees (one machine, or a shared filesystem); its atomic entries and
    per-key locks make concurrent and retried tasks safe. A task whose worker
    process dies (OOM kill, lost node) is retried by Ray (``max_retries``);
    the retry resumes training from the checkpoint in
    ``<cache>/train/.work/<key>/`` and the driver records the (variant, seed)
    once. Exceptions raised by textclf itself (a bad config, a diverged
    training) are not retried: they would fail again.

``TEXTCLF_TEST_KILL_WORKER_DIR`` (tests only): when set, each Ray task
SIGKILLs its own worker once, after its first epoch's checkpoint was written
(a marker file in that directory remembers it), to exercise retry + resume.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textclf.core.cache import StageCache
from textclf.core.errors import ConfigError, TextclfError, TrainingError
from textclf.core.registry import registered
from textclf.pipeline.config import Config
from textclf.pipeline.pool import Getters, _pool_worker, expected_work, stop_pool, worker_threads

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # attempts after the first when a Ray worker dies
KILL_ENV = "TEXTCLF_TEST_KILL_WORKER_DIR"
EXECUTORS = ("local", "ray")


def compute_upstream(planned: Iterable[tuple[Config, Any]], cache: StageCache, *, force: bool = False) -> None:
    """prepare → tokenize → embed for every (config, (plan, source)), each distinct entry once, and what they found.

    Run before fanning out so parallel workers find these shared stages in the
    cache. With ``force`` each distinct entry is recomputed once (not once per
    variant); tasks then run with ``reuse_upstream=True``.
    """
    from textclf.pipeline.data_stages import warn_data
    from textclf.pipeline.variant import upstream

    forced: set = set()
    for cfg, (p, source) in planned:
        up = upstream(cfg, cache, force=force, p=p, source=source, forced=forced)
        warn_data(cfg, up.data, up.tok)


def compute(variant, seed: int, p, cache_root: str, force: bool, quiet: bool, on_epoch: Callable | None = None):
    """One (variant, seed) with its plan ``p`` (None: planned here): the task every local executor runs.

    The shared stages were computed (and forced) by :func:`compute_upstream`; the
    driver measures the cost (:func:`~textclf.pipeline.variant.with_cost`).
    """
    from textclf.core.logs import progress_logger
    from textclf.pipeline.variant import run_variant

    log_fn = None if quiet else progress_logger(f"{variant.name} s{seed}")
    return run_variant(
        variant.for_seed(seed),
        StageCache(cache_root),
        force=force,
        log_fn=log_fn,
        reuse_upstream=True,
        on_epoch=on_epoch,
        p=p,
    )


def resolve_jobs(jobs: int | str, tasks: int) -> int:
    """``--jobs``: a number, or ``auto`` = one single-threaded worker per core (never more than the tasks).

    Small recurrent batches use two cores poorly inside one training, while
    side-by-side one-thread trainings use them fully (docs/benchmarks.md, "The default comparison's work").
    """
    from textclf.core.machine import cores

    if jobs == "auto":
        return max(1, min(cores(), tasks))
    try:
        n = int(jobs)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigError(f"--jobs must be a positive number or auto. Got {jobs!r} instead.")
    return n


def check_executor(executor: str, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0) -> None:
    """A known executor whose extra is installed, with sizes it can take: checked once, before any work.

    (``--executor ray`` without Ray, or ``--cpus-per-task 0``, stops here rather than inside the parent run.)
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}. Got {executor!r} instead.")
    if executor == "ray":
        _import_ray()
        if cpus_per_task <= 0 or gpus_per_task < 0:
            raise ConfigError(
                f"--cpus-per-task must be > 0 and --gpus-per-task >= 0. Got {cpus_per_task} and {gpus_per_task} instead."
            )


def execute(
    tasks,
    cache: StageCache,
    *,
    plans: list | None = None,
    force: bool,
    quiet: bool,
    executor: str = "local",
    jobs: int = 1,
    ray_address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
) -> list[Callable[..., Any]]:
    """One getter per (variant, seed) task, in task order (see the module docstring).

    A getter takes an optional ``on_epoch`` callback, which hears each epoch as
    it ends where training runs in this process (inline). ``plans``: each task's
    plan, planned once by the driver (None: each task plans itself).

    The executor was checked (:func:`check_executor`) and the shared stages computed
    (:func:`compute_upstream`, honouring ``force``): tasks only train and evaluate
    (forced too, but never upstream). ``jobs`` is resolved already (:func:`resolve_jobs`).
    Outputs come without cost metrics: the driver adds them (:func:`~textclf.pipeline.variant.with_cost`).
    """
    root = str(cache.root)
    plans = plans or [None] * len(tasks)
    if executor == "ray":
        return Getters(ray_getters(tasks, plans, root, force, quiet, ray_address, cpus_per_task, gpus_per_task))
    if jobs <= 1:
        return Getters(
            lambda on_epoch=None, v=v, s=s, p=p: compute(v, s, p, root, force, quiet, on_epoch=on_epoch)
            for (v, s), p in zip(tasks, plans)
        )
    pool = _local_pool(jobs, quiet)
    # Longest first: the slowest trainings (a stacked BiLSTM takes several times an RNN's time) would otherwise come last and
    # run alone while the other workers idle. Each training's result does not depend on the order.
    first = sorted(range(len(tasks)), key=lambda i: -expected_work(tasks[i][0].config))
    submitted = {i: pool.submit(compute, *tasks[i], plans[i], root, force, quiet) for i in first}
    futures = [submitted[i] for i in range(len(tasks))]
    getters = Getters(
        lambda on_epoch=None, f=f: f.result() for f in futures
    )  # trained in a worker: nothing to hear live
    getters.pool, getters.futures = pool, futures
    return getters


class Runner:
    """Runs batches of calls of a module-level function on one executor: :meth:`map` returns their results in order.

    The tuning search (:mod:`textclf.pipeline.tune`) runs each batch of trials
    it asked Optuna for through one Runner: in this process (``jobs=1``), a
    spawn-based process pool kept for the whole search (``--jobs N``), or Ray
    tasks (retried when a worker dies, like the (variant, seed) tasks).
    :attr:`width` is how many calls run at once.
    """

    def __init__(
        self,
        *,
        executor: str = "local",
        jobs: int = 1,
        ray_address: str | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        quiet: bool = False,
    ) -> None:
        self.executor, self.jobs, self.quiet = executor, max(1, jobs), quiet
        self._pool = self._ray = None
        self._opts: dict[str, Any] = {}
        if executor == "ray":
            self._ray = _import_ray()
            _ensure_ray(self._ray, ray_address, quiet)
            self._opts = _ray_options(cpus_per_task, gpus_per_task)
            cpus = self._ray.cluster_resources().get("CPU", 1)
            self.width = max(1, int(cpus // cpus_per_task))
        else:
            self.width = self.jobs

    def map(self, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]:
        if self._ray is not None:
            ray = self._ray
            remote = ray.remote(fn)
            refs = [remote.options(**self._opts).remote(*args) for args in calls]
            return [_ray_get(ray, ref) for ref in refs]
        if self.jobs <= 1:
            return [fn(*args) for args in calls]
        if self._pool is None:
            self._pool = _local_pool(self.jobs, self.quiet)
        futures = [self._pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            stop_pool(self._pool, interrupted=True)  # after an interruption: do not wait for running trials
            self._pool = None


def _local_pool(jobs: int, quiet: bool):
    """A spawn-based process pool of ``jobs`` workers, each with its share of the cores."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # tokenizers' own threads would fight the workers'
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=mp.get_context("spawn"),
        initializer=_pool_worker,
        initargs=(worker_threads(jobs), quiet, registered()),  # what registration calls added reaches the workers
    )


# --------------------------------------------------------------------------- Ray


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


def _ray_options(cpus_per_task: float, gpus_per_task: float) -> dict[str, Any]:
    """The options of every textclf Ray task: its size, retries when its worker dies, and its environment."""
    env = {"TOKENIZERS_PARALLELISM": "false"}  # tokenizers' own threads would fight the worker's
    if "mlflow" in sys.modules:  # encoder.init_from may name MLflow models: resolve them where the driver does
        env["MLFLOW_TRACKING_URI"] = sys.modules["mlflow"].get_tracking_uri()
    # Ray sets OMP_NUM_THREADS to the task's CPUs; train.num_threads: null follows it.
    return dict(
        num_cpus=cpus_per_task,
        num_gpus=gpus_per_task,
        max_retries=MAX_RETRIES,
        retry_exceptions=False,
        runtime_env={"env_vars": env},
    )


def _ray_get(ray, ref):
    """A Ray task's result; an error textclf raised in the worker comes back as itself, without the remote traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, TextclfError):
            raise exc.cause from None
        raise


def ray_getters(
    tasks: list[tuple[Any, int]],
    plans: list,
    cache_root: str,
    force: bool,
    quiet: bool,
    ray_address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
) -> list[Callable[[], Any]]:
    """Submit one Ray task per (variant, seed); return one getter per task, in order.

    Each getter waits for its task and returns the :class:`VariantOutput`
    rebuilt in this process from the cache.
    """
    ray = _import_ray()
    cache = StageCache(Path(cache_root).resolve())  # workers may start in another directory
    _ensure_ray(ray, ray_address, quiet)

    kill_dir = os.environ.get(KILL_ENV)
    remote = ray.remote(_ray_task)
    options = _ray_options(cpus_per_task, gpus_per_task)
    refs = []
    for (variant, seed), p in zip(tasks, plans):
        label = f"{variant.key}-s{seed}"
        opts = remote.options(name=f"textclf:{label}", **options)
        refs.append(opts.remote(variant.for_seed(seed), p, label, str(cache.root), force, quiet, os.getcwd(), kill_dir))

    def getter(ref, variant, seed, p) -> Callable[[], Any]:
        def get(on_epoch=None):  # trained in a worker: nothing to hear live
            from textclf.pipeline.variant import run_variant

            try:
                info = _ray_get(ray, ref)
            except ray.exceptions.RayTaskError:  # an error of the task's own code: as it was raised
                raise
            except ray.exceptions.RayError as exc:  # the worker died, each time
                raise TrainingError(
                    f"{variant.key} seed {seed}: the Ray task failed {MAX_RETRIES + 1} times "
                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})."
                ) from None
            if not cache.has(info["stage"], info["key"]):
                raise ConfigError(
                    f"{variant.key} seed {seed}: a Ray worker stored its result in {cache.root} on its node, "
                    "but this machine cannot see it. Put the stage cache on a filesystem every node mounts at "
                    "the same path (--cache-dir or TEXTCLF_CACHE_DIR)."
                )
            out = run_variant(variant.for_seed(seed), cache, reuse_upstream=True, p=p)  # every stage a cache hit
            return dataclasses.replace(out, cached=info["cached"])

        return get

    return [getter(ref, v, s, p) for ref, (v, s), p in zip(refs, tasks, plans)]


def _ray_task(
    cfg: Config, p, label: str, cache_root: str, force: bool, quiet: bool, cwd: str, kill_dir: str | None
) -> dict[str, Any]:
    """One (variant, seed) in a Ray worker: train + evaluate into the cache; return where the result is."""
    from textclf.pipeline.variant import run_variant

    if os.path.isdir(cwd):  # relative data paths resolve as in the driver (same machine, or same mount)
        os.chdir(cwd)
    from textclf.core.logs import progress_logger, setup_logging

    setup_logging(quiet)
    log_fn = progress_logger(label)
    on_epoch = _killer(Path(kill_dir) / label) if kill_dir else None
    out = run_variant(
        cfg,
        StageCache(cache_root),
        force=force,
        reuse_upstream=True,
        log_fn=log_fn,
        on_epoch=on_epoch,
        p=p,
    )
    return {"stage": "tfidf" if cfg.kind == "tfidf" else "train", "key": out.stage_key, "cached": out.cached}


def _killer(marker: Path) -> Callable[[int, dict], None]:
    """on_epoch for tests: SIGKILL this worker once, at epoch 2 (epoch 1's checkpoint exists by then)."""

    def on_epoch(epoch: int, metrics: dict) -> None:
        if epoch == 2 and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return on_epoch
