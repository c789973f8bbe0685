"""MLflow runs as textclf records them: start / end (KILLED on interruption), tags, metrics in batches.

Layout (see the README): one experiment per pipeline, one parent run per
``textclf run``, one nested child run per (variant, seed). Params are logged
flattened with dotted names (``encoder.layers``) so MLflow's
parallel-coordinates chart works as is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import time
from typing import Any

log = logging.getLogger(__name__)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@contextlib.contextmanager
def start_run(**kwargs):
    """``mlflow.start_run`` that records an interruption (Ctrl-C, SIGTERM) as KILLED, a failure as FAILED.

    A failure means the run itself went wrong; an interrupted run did not, and
    re-running the same command continues it from the cache and checkpoints.
    (A SIGKILLed process cannot record anything: :func:`mark_stale_runs` marks
    its runs KILLED when the work resumes.) Recording the end may itself fail
    when the store's disk is full: the store's reserve is given up and the
    end recorded again; what still fails is logged, never raised over the
    error that ended the run.
    """
    import mlflow

    with mlflow.start_run(**kwargs) as run:
        try:
            yield run
        except BaseException as exc:
            # Ends this run (the innermost active one); mlflow's own exit then leaves it alone.
            _end(run.info.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise


def _end(run_id: str, status: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.core.errors import DiskFullError
    from textclf.tracking import store

    try:
        mlflow.end_run(status)  # pops the run off mlflow's stack before writing, so a retry goes through the client
        return
    except Exception as exc:
        error: Exception = exc
    if isinstance(store.explain(error), DiskFullError) and store.release_reserve():
        try:
            MlflowClient().set_terminated(run_id, status)
            return
        except Exception as exc:
            error = exc
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    log.warning("could not mark MLflow run %s %s (%s); the next textclf run or train in its experiment marks it KILLED", run_id, status, first)


def base_tags() -> dict[str, str]:
    from textclf._version import __version__

    tags = {"textclf_version": __version__, "textclf.host": socket.gethostname(), "textclf.pid": str(os.getpid())}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
    return tags


def mark_stale_runs(exp_id: str) -> int:
    """Runs left RUNNING by a killed textclf process on this host become KILLED.

    A process that is SIGKILLed cannot close its runs; we recognise them by the
    host/pid tags we set and a pid that is no longer alive.
    """
    from mlflow.tracking import MlflowClient

    from textclf.core.cache import pid_alive

    client = MlflowClient()
    host = socket.gethostname()
    n = 0
    for run in client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if tags.get("textclf.host") != host:
            continue
        try:
            pid = int(tags.get("textclf.pid", "0"))
        except ValueError:
            continue
        if pid and not pid_alive(pid):
            client.set_terminated(run.info.run_id, status="KILLED")
            n += 1
    if n:
        log.info("marked %d run(s) of killed processes as KILLED", n)
    return n


_SOURCES: dict[tuple[str, str], dict[str, str]] = {}  # (store, exp_id) -> {stage_key: first run that computed it}


def find_source_run(exp_id: str, stage_key: str) -> str | None:
    """The finished run that originally computed a cached result (tag ``stage_key``).

    One search per experiment and process answers every child of a cached
    re-run; a key not in it (computed since) falls back to its own search.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    finished = "tags.cached = 'false' and attributes.status = 'FINISHED'"
    client = MlflowClient()
    memo = (mlflow.get_tracking_uri(), exp_id)  # experiment ids repeat across stores
    if memo not in _SOURCES:
        found: dict[str, str] = {}
        for run in client.search_runs([exp_id], filter_string=finished, max_results=5000, order_by=["attributes.start_time DESC"]):
            key = run.data.tags.get("stage_key")
            if key:
                found[key] = run.info.run_id  # ascending overwrite order: the earliest wins
        _SOURCES[memo] = found
    if stage_key in _SOURCES[memo]:
        return _SOURCES[memo][stage_key]
    runs = client.search_runs(
        [exp_id], filter_string=f"tags.stage_key = '{stage_key}' and {finished}", max_results=1, order_by=["attributes.start_time ASC"]
    )
    return runs[0].info.run_id if runs else None


def flat_params(params: dict[str, Any]) -> dict[str, Any]:
    """Config values as MLflow params: nested values as JSON."""
    return {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in params.items()}


def run_metrics(history: list[dict[str, Any]], final: dict[str, float]) -> list:
    """Per-epoch metrics (step = epoch), then the final ones, as MLflow Metric entities.

    MLflow shows a metric's value at its highest step, then latest timestamp. Some
    final metrics share a name with a per-epoch one (``val_accuracy`` of the
    restored best epoch, not of the last), so they go at the last epoch's step with
    a later timestamp: the run shows the final value, the curve keeps every epoch.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key=k, value=float(v), timestamp=now, step=int(row["epoch"]))
        for row in history
        for k, v in row.items()
        if k != "epoch" and isinstance(v, (int, float)) and v == v
    ]
    last = max((int(row["epoch"]) for row in history), default=0)
    return metrics + [Metric(key=k, value=float(v), timestamp=now + 1, step=last) for k, v in final.items() if v == v]


def log_batch(client, run_id: str, *, params: dict[str, Any] | None = None, metrics: list | None = None) -> None:
    """Params and metrics in as few store transactions as MLflow's batch limits allow.

    (≤ 100 params and ≤ 1,000 entities per call; one call per child run instead
    of one per kind is most of what makes a fully cached re-run quick.)
    """
    from mlflow.entities import Param

    ps = [Param(k, str(v)) for k, v in (params or {}).items()]
    ms = list(metrics or [])
    while ps or ms:
        p_chunk, ps = ps[:100], ps[100:]
        room = 1000 - len(p_chunk)
        m_chunk, ms = ms[:room], ms[room:]
        client.log_batch(run_id, metrics=m_chunk, params=p_chunk)
