"""Inference cost: batch-1 latency and batched throughput of any ``predict_fn(list[str])``.

Every model (neural or TF-IDF) is timed by the same function, so the cost
columns of a comparison mean the same thing for every variant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def measure_latency(
    predict_fn: Callable[[list[str]], object],
    texts: Sequence[str],
    *,
    n_single: int = 100,
    batch_size: int = 256,
    warmup: int = 5,
) -> dict[str, float]:
    """Time ``predict_fn`` at batch size 1 and at ``batch_size``.

    Call sequence: ``warmup`` single-text calls and (if ``warmup > 0``) one
    call with the first ``batch_size`` texts, so lazy initialisation and
    allocator growth are not timed; then ``n_single`` timed single-text calls
    cycling through ``texts``; then one timed pass over all ``texts`` in
    chunks of ``batch_size``.

    Returns ``latency_p50_ms`` and ``latency_p95_ms`` (per single-text call)
    and ``texts_per_s_b256`` (throughput of the batched pass; the key keeps
    that name whatever ``batch_size`` is, so runs stay comparable in MLflow).
    """
    texts = list(texts)
    if not texts:
        raise ValueError("measure_latency needs at least one text")
    if n_single < 1 or batch_size < 1 or warmup < 0:
        raise ValueError("n_single and batch_size must be >= 1 and warmup >= 0")

    n = len(texts)
    for i in range(warmup):
        predict_fn([texts[i % n]])
    if warmup > 0:
        predict_fn(texts[:batch_size])

    times_ms = np.empty(n_single, dtype=np.float64)
    for i in range(n_single):
        start = time.perf_counter()
        predict_fn([texts[i % n]])
        times_ms[i] = (time.perf_counter() - start) * 1000.0

    start = time.perf_counter()
    for lo in range(0, n, batch_size):
        predict_fn(texts[lo : lo + batch_size])
    elapsed = time.perf_counter() - start
    # A no-op predict_fn on a tiny set can finish below the timer's resolution.
    elapsed = max(elapsed, 1e-9)

    return {
        "latency_p50_ms": float(np.percentile(times_ms, 50)),
        "latency_p95_ms": float(np.percentile(times_ms, 95)),
        "texts_per_s_b256": float(n / elapsed),
    }
