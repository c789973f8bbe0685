"""The local process pool of ``--jobs N``: its workers, their share of the cores, the order tasks go in, and stopping it.

Workers are spawned (not forked: torch and MLflow hold threads and locks a
fork would copy mid-use) and run one single-threaded training at a time by
default. A pool ends with its run: on success once the results are read, on
Ctrl-C / SIGTERM / an error at once (:func:`stop_pool`), and when the driver
itself is killed, its workers notice and exit (:func:`_exit_with_parent`).
"""

from __future__ import annotations

import os
from typing import Any

from textclf.pipeline.config import Config


def _pool_worker(threads: str, quiet: bool, registered: list | None = None) -> None:
    """Pool initializer: torch threads per worker (train.num_threads: null follows OMP_NUM_THREADS), logging, exit with
    the driver, and the encoders / metrics the driver registered (:func:`textclf.core.registry.registered`)."""
    from textclf.core.logs import setup_logging
    from textclf.core.registry import register_again

    # Set, not setdefault: an OMP_NUM_THREADS inherited from the driver is the whole run's budget, and
    # workers each keeping it oversubscribe the cores (2 workers x 2 spinning OpenMP threads on 2 cores
    # slowed some epochs by an order of magnitude: docs/benchmarks.md, "Pool workers and threads").
    os.environ["OMP_NUM_THREADS"] = threads
    setup_logging(quiet)
    register_again(registered or [])
    _exit_with_parent()


def worker_threads(jobs: int) -> str:
    """Torch threads of each of ``jobs`` pool workers: the run's thread budget (OMP_NUM_THREADS, else the cores) shared out."""
    from textclf.core.machine import thread_count

    return str(max(1, thread_count() // jobs))


def _exit_with_parent(poll_s: float = 0.5) -> None:
    """End this worker soon after its driver dies.

    A driver killed outright (SIGKILL, the OOM killer) cannot shut its pool
    down, and an idle worker waits on the task queue forever: it would keep
    its memory and the driver's stdout/stderr open (a shell pipeline or a
    ``subprocess.run`` reading them never ends). What a dying worker leaves
    half-written is a ``.tmp-*`` folder the next run removes.
    """
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # re-parented (to init or a subreaper) once the driver is gone
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="textclf-exit-with-driver", daemon=True).start()


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def expected_work(cfg: Config) -> float:
    """A rough relative cost of training ``cfg``, to schedule the longest first: the recurrent multiply-adds per
    token (directions x gates x hidden x (input + hidden), summed over layers) times the epochs; TF-IDF ~0.

    It orders the default comparison's variants as their measured training times do (rnn < gru < lstm <
    lstm-x2 ~ bilstm < bilstm-x2; docs/benchmarks.md, "The default comparison"); other encoders count as an
    LSTM of their width.
    """
    if cfg.kind != "neural":
        return 0.0
    enc = cfg.encoder
    directions = 2 if enc.bidirectional else 1
    gates = _GATES.get(enc.cell, 4)
    width, total = float(cfg.embedding.dim or 100), 0.0
    for _ in range(enc.layers):
        total += directions * gates * enc.hidden_size * (width + enc.hidden_size)
        width = directions * enc.hidden_size
    return total * cfg.train.epochs


class Getters(list):
    """The getters :func:`execute` returns, and the process pool behind them, if any: :meth:`close` it when done."""

    pool: Any = None
    futures: list[Any] | None = None  # the pool's futures, in task order

    def completed(self):
        """Task indices as their results become ready (task order when nothing runs in the background)."""
        if not self.futures:
            yield from range(len(self))
            return
        from concurrent.futures import as_completed

        index = {id(f): i for i, f in enumerate(self.futures)}
        for f in as_completed(self.futures):
            yield index[id(f)]

    def close(self, interrupted: bool = False) -> None:
        """Release the workers: once their results are read, or at once (``interrupted``) after Ctrl-C, SIGTERM or an error."""
        if self.pool is not None:
            stop_pool(self.pool, interrupted)
            self.pool = None


def stop_pool(pool: Any, interrupted: bool) -> None:
    """Shut a process pool down; ``interrupted``: cancel what is queued and end the trainings under way.

    Without this an interrupted run would go on: Python's exit joins the pool,
    which finishes every queued task first (all the remaining trainings). A
    worker ended mid-training leaves what a SIGKILL does, a checkpoint and
    ``.tmp-*`` folders that the next run resumes from or removes.
    """
    if not interrupted:
        pool.shutdown(wait=True)
        return
    # No public handle on the workers before Python 3.14; shutdown() drops this one, so take it first.
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for w in workers:
        if w.is_alive():
            w.terminate()
    for w in workers:
        w.join(timeout=10)
