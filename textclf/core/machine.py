"""What this process may use of the machine: how many threads torch gets (no torch import needed to know)."""

from __future__ import annotations

import os


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_count(num_threads: int | None = None) -> int:
    """``train.num_threads``, or by default ``OMP_NUM_THREADS`` when set, else every core this process may use.

    Ray sets ``OMP_NUM_THREADS`` to a task's CPUs, torchrun to 1 per process and
    textclf's process pool to each worker's share, so parallel workers never
    oversubscribe the cores.
    """
    if num_threads is not None:
        return num_threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else cores()
