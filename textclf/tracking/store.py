"""The MLflow store: which one, created and migrated safely, reachable, and retried on SQLite races.

The default store is SQLite at ``mlruns/mlflow.db``; ``--tracking-uri`` /
``MLFLOW_TRACKING_URI`` point elsewhere. The experiments textclf creates in a
SQLite store keep their artifacts beside the database
(``<folder of mlflow.db>/artifacts/<experiment>``), whatever the current
directory: MLflow's own default is ``./mlruns`` of the directory a process
happens to start in, which scatters one store's artifacts over many folders.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from textclf.core.errors import TextclfError

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


def resolve_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def setup(explicit: str | None = None) -> str:
    """Point MLflow at the store; create the local SQLite folder; fail fast on an unreachable server."""
    import mlflow

    uri = resolve_uri(explicit)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    # MLflow configures its own logger at import; its INFO lines (input-example
    # validation, store migrations) are noise in a comparison printout.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    if uri.startswith("sqlite:///"):
        _init_sqlite(Path(uri[len("sqlite:///") :]))
    return uri


_initialised: set[str] = set()


def _init_sqlite(db: Path) -> None:
    """Create / migrate the SQLite store once, under a file lock, and switch it to WAL.

    Two processes opening a new store at once would both run MLflow's schema
    migrations and one fails ("table already exists"). WAL lets readers and
    one writer work concurrently, so parallel runs don't hit "database is locked".
    """
    import fcntl
    import sqlite3

    from mlflow.tracking import MlflowClient

    key = str(db.resolve())
    if key in _initialised:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / ".textclf-store.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        MlflowClient().search_experiments(max_results=1)  # creates and migrates the schema
        with sqlite3.connect(db, timeout=60) as con:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
        fcntl.flock(fh, fcntl.LOCK_UN)
    _initialised.add(key)


def _check_server(uri: str, timeout: float = 5.0) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TextclfError(
            f"Cannot reach the MLflow tracking server at {uri} ({getattr(exc, 'reason', exc)}). Start it "
            f"(`mlflow server ...`), fix --tracking-uri / MLFLOW_TRACKING_URI, or unset it to use the local "
            f"store {DEFAULT_TRACKING_URI}."
        ) from None


def retry(fn, *args, attempts: int = 6, **kwargs):
    """Call an MLflow client function, retrying the races of a shared SQLite store.

    Concurrent runs can collide on "database is locked" or on a UNIQUE insert
    (two processes logging the same dataset digest); the second attempt sees
    the other process's row and succeeds.
    """
    from mlflow.exceptions import MlflowException

    delay = 0.1
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            text = str(exc)
            if attempt == attempts - 1 or not any(s in text for s in ("database is locked", "UNIQUE constraint", "IntegrityError")):
                raise
            time.sleep(delay)
            delay *= 2


def artifact_location(name: str, uri: str | None = None) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite database; the server's choice otherwise (None)."""
    import re

    import mlflow

    uri = uri or mlflow.get_tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    folder = re.sub(r"[^\w.-]+", "_", name).strip("._") or "experiment"
    return (Path(uri[len("sqlite:///") :]).resolve().parent / "artifacts" / folder).as_uri()


def experiment_id(name: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location(name))
    except Exception:  # created concurrently by another process
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


