"""MLflow runs as textclf records them: start / end (KILLED on interruption), tags, metrics in batches.

Runs a SIGKILLed process left RUNNING become KILLED, and the models it left
PENDING become FAILED, the next time work starts in their experiment.

Layout (see docs/mlflow.md, "Experiments, runs and params"): one experiment per pipeline, one parent run per
``textclf run``, one nested child run per (variant, seed). Params are logged
flattened with dotted names (``encoder.layers``) so MLflow's
parallel-coordinates chart works as is.

Tags live in one namespace, ``textclf.*`` (``textclf.role``,
``textclf.stage_key``, ``textclf.model_uri``, ...), except ``variant``,
``seed``, ``cell``, ``layers`` and ``bidirectional``: those stay bare because
the MLflow UI's "Group by" menu and the runs table read them by those names,
and a reviewer groups by them all the time.
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


SYSTEM_EXTRA = "--system-metrics needs psutil, which comes with textclf's optional extra 'system': pip install 'textclf[system]' (in a checkout: pip install -e '.[system]')."


def require_system_metrics() -> None:
    """Fail before any run starts when ``--system-metrics`` cannot work (MLflow samples CPU/memory with psutil)."""
    import importlib.util

    from textclf.core.errors import ConfigError

    if importlib.util.find_spec("psutil") is None:
        raise ConfigError(SYSTEM_EXTRA)


@contextlib.contextmanager
def start_run(*, system_metrics: bool = False, **kwargs):
    """``mlflow.start_run`` that records an interruption (Ctrl-C, SIGTERM) as KILLED, a failure as FAILED.

    A failure means the run itself went wrong; an interrupted run did not, and
    re-running the same command continues it from the cache and checkpoints.
    (A SIGKILLed process cannot record anything: :func:`mark_stale_runs` marks
    its runs KILLED when the work resumes.) Recording the end may itself fail
    when the store's disk is full: the store's reserve is given up and the
    end recorded again; what still fails is logged, never raised over the
    error that ended the run.

    ``system_metrics``: CPU / memory / disk / network sampled into the run
    (``system/...``). The monitor is started *inside* the run: MLflow's own
    ``log_system_metrics=True`` starts it after creating the run but before
    handing it back, so a failure there (psutil missing) leaves a run
    RUNNING that no ``with`` block will ever end.
    """
    import mlflow

    with mlflow.start_run(**kwargs) as run:
        monitor = None
        try:
            if system_metrics:
                monitor = _system_monitor(run.info.run_id)
            yield run
        except BaseException as exc:
            # Ends this run (the innermost active one); mlflow's own exit then leaves it alone.
            _end(run.info.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            if monitor is not None:
                monitor.finish()  # flushes the last samples while the run is still open


def _system_monitor(run_id: str):
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id)
    monitor.start()
    return monitor


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
    log.warning(
        "could not mark MLflow run %s %s (%s); the next textclf run or train in its experiment marks it KILLED",
        run_id,
        status,
        first,
    )


def base_tags() -> dict[str, str]:
    """Version, host and pid (for :func:`mark_stale_runs`) and the git commit, under MLflow's own name."""
    from textclf._version import __version__

    tags = {"textclf.version": __version__, "textclf.host": socket.gethostname(), "textclf.pid": str(os.getpid())}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
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
    mark_stale_models(exp_id)
    return n


def mark_stale_models(exp_id: str) -> int:
    """LoggedModels left PENDING by a process killed while logging them become FAILED.

    MLflow creates the LoggedModel (PENDING) before it uploads the files and
    marks it READY after; a kill in between leaves it PENDING for ever. One
    whose source run has ended (FINISHED, FAILED, KILLED: :func:`mark_stale_runs`
    has just ended those of dead processes) can no longer be finished: FAILED,
    as MLflow itself marks a model whose logging raised. A RUNNING run's
    model may still be uploading and is left alone.
    """
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    pending = []
    token = None
    try:
        while True:
            # The SQL store keeps the status as its number: the filter takes that.
            page = client.search_logged_models(
                [exp_id],
                filter_string=f"status = {LoggedModelStatus.PENDING.to_int()}",
                max_results=100,
                page_token=token,
            )
            pending += [m for m in page if str(m.status) == "PENDING"]
            token = page.token
            if not token:
                break
    except MlflowException as exc:  # a store that cannot search models: nothing to mark
        log.debug("could not search logged models of experiment %s (%s)", exp_id, exc)
        return 0
    ended: dict[str, bool] = {}
    n = 0
    for model in pending:
        rid = model.source_run_id
        if rid and rid not in ended:
            try:
                ended[rid] = client.get_run(rid).info.status != "RUNNING"
            except MlflowException:  # the run is gone: nothing will finish its model
                ended[rid] = True
        if not rid or ended[rid]:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            n += 1
    if n:
        log.info("marked %d MLflow model(s) left PENDING by killed processes as FAILED", n)
    return n


_SOURCES: dict[tuple[str, str], dict[str, str]] = {}  # (store, exp_id) -> {stage_key: first run that computed it}


def find_source_run(exp_id: str, stage_key: str) -> str | None:
    """The finished run that originally computed a cached result (tag ``textclf.stage_key``).

    One search per experiment and process answers every child of a cached
    re-run; a key not in it (computed since) falls back to its own search.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    finished = "tags.`textclf.cached` = 'false' and attributes.status = 'FINISHED'"
    client = MlflowClient()
    memo = (mlflow.get_tracking_uri(), exp_id)  # experiment ids repeat across stores
    if memo not in _SOURCES:
        found: dict[str, str] = {}
        for run in client.search_runs(
            [exp_id], filter_string=finished, max_results=5000, order_by=["attributes.start_time DESC"]
        ):
            key = run.data.tags.get("textclf.stage_key")
            if key:
                found[key] = run.info.run_id  # ascending overwrite order: the earliest wins
        _SOURCES[memo] = found
    if stage_key in _SOURCES[memo]:
        return _SOURCES[memo][stage_key]
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`textclf.stage_key` = '{stage_key}' and {finished}",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return runs[0].info.run_id if runs else None


def flat_params(params: dict[str, Any]) -> dict[str, str]:
    """Config values as MLflow params (strings): text as is, everything else as JSON.

    A null stays ``null`` (not Python's ``None``; dropping it would lose that the
    value *is* null), booleans are ``true`` / ``false``, lists and dicts JSON.
    """
    return {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in params.items()}


# The config sections a run of each kind reads; the others would be noise (a
# neural run's tfidf.C, a TF-IDF run's encoder.layers).
PARAM_SECTIONS = {
    "neural": ("kind", "data", "tokenizer", "embedding", "encoder", "train", "evaluate"),
    "tfidf": ("kind", "data", "tfidf", "evaluate"),
}


def run_params(kind: str, flat: dict[str, Any]) -> dict[str, str]:
    """The flattened config params a run of ``kind`` uses, as MLflow strings."""
    sections = PARAM_SECTIONS.get(kind)
    keep = {k: v for k, v in flat.items() if sections is None or k.split(".", 1)[0] in sections}
    return flat_params(keep)


def epoch_metrics(row: dict[str, Any], timestamp_ms: int | None = None, model_id: str | None = None) -> list:
    """One history row (one epoch) as MLflow metrics at step = epoch."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
    step = int(row["epoch"])
    return [
        Metric(key=k, value=float(v), timestamp=ts, step=step, model_id=model_id)
        for k, v in row.items()
        if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    ]


def history_metrics(history: list[dict[str, Any]], times_ms: dict[int, int] | None = None) -> list:
    """Every epoch's metrics, each at its own step and, where known, the time the epoch ended."""
    now = int(time.time() * 1000)
    times = times_ms or {}
    return [m for row in history for m in epoch_metrics(row, times.get(int(row["epoch"]), now))]


def final_metrics(final: dict[str, float], history: list[dict[str, Any]], model_id: str | None = None) -> list:
    """The final metrics (of the restored best epoch's model, test, cost), one value each.

    A final metric whose name is also a per-epoch curve (``val_accuracy``,
    ``train_accuracy``, ``tokens_per_second``) is logged as ``final_<name>``:
    logging it under the curve's name would put a second value at one step and
    break the curve. ``--metrics-out`` and summary.json keep the plain names.
    """
    from mlflow.entities import Metric

    curves = {k for row in history for k in row if k != "epoch"}
    last = max((int(row["epoch"]) for row in history), default=0)
    now = int(time.time() * 1000)
    return [
        Metric(key=f"final_{k}" if k in curves else k, value=float(v), timestamp=now, step=last, model_id=model_id)
        for k, v in final.items()
        if v == v
    ]


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


def description_tag(description: str | None) -> dict[str, str]:
    """A pipeline's ``description:`` as the run's Description (MLflow shows the tag ``mlflow.note.content``, Markdown)."""
    return {"mlflow.note.content": description.strip()} if description and description.strip() else {}


class LiveMetrics:
    """``on_epoch`` for a training that runs inside its MLflow run: each epoch's metrics logged as it ends.

    A user watching the MLflow UI sees the curves grow while a variant trains.
    Best effort: a failed call (a busy store) is logged and skipped, never
    raised into the training loop; the record afterwards logs every epoch not
    in :attr:`logged`.
    """

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self.logged: set[int] = set()

    def __call__(self, epoch: int, metrics: dict[str, Any]) -> None:
        from textclf.tracking.store import retry

        try:
            retry(self.client.log_batch, self.run_id, metrics=epoch_metrics({**metrics, "epoch": epoch}))
            self.logged.add(int(epoch))
        except Exception as exc:  # noqa: BLE001 - tracking must not stop a training
            log.warning("epoch %s metrics not logged live (%s); they are logged when the run is recorded", epoch, exc)


def comparison_table(summary: dict[str, Any]):
    """The comparison as a DataFrame, one row per variant (for ``mlflow.log_table``: the UI shows it as a table)."""
    import pandas as pd

    rows = []
    for name, row in summary.get("variants", {}).items():
        flat: dict[str, Any] = {"variant": name}
        for k, v in row.items():
            if isinstance(v, dict):
                flat.update({f"{k}_{sub}": x for sub, x in v.items() if not isinstance(x, (dict, list))})
            elif isinstance(v, list):
                flat[k] = json.dumps(v)
            else:
                flat[k] = v
        rows.append(flat)
    return pd.DataFrame(rows)
