"""The MLflow store: which one, created and migrated safely, reachable, and retried on SQLite races.

The default store is SQLite at ``mlruns/mlflow.db``; ``--tracking-uri`` /
``MLFLOW_TRACKING_URI`` point elsewhere. The experiments textclf creates in a
SQLite store keep their artifacts beside the database
(``<folder of mlflow.db>/artifacts/<experiment>``), whatever the current
directory: MLflow's own default is ``./mlruns`` of the directory a process
happens to start in, which scatters one store's artifacts over many folders.

Two failures of a SQLite store are the user's to fix, and :func:`explain`
words them: another process holding the database locked for longer than
``TEXTCLF_STORE_TIMEOUT`` seconds (default 30; MLflow alone waits a fixed
20 s per statement), and a full disk. So that a run can still be marked
FAILED when the store's disk is full, a small reserve file
(``.textclf-reserve``) sits beside the database and is given up then
(:func:`release_reserve`); it is written again when space allows.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from textclf.core import disk
from textclf.core.errors import ConfigError, StoreLockedError, TextclfError

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
TIMEOUT_ENV = "TEXTCLF_STORE_TIMEOUT"
DEFAULT_TIMEOUT = 30.0  # seconds a write waits for another process's lock on the SQLite store
RESERVE = ".textclf-reserve"
RESERVE_BYTES = 512 * 1024  # ample for the few pages that mark runs FAILED


def store_timeout() -> float:
    """Seconds to wait for a SQLite store another process holds locked (``TEXTCLF_STORE_TIMEOUT``)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds >= 0 (default {DEFAULT_TIMEOUT:g}).")
    return value


def resolve_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_db(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, made absolute (a relative one is relative to the working folder)."""
    return Path(uri[len("sqlite:///") :]).resolve() if uri.startswith("sqlite:///") else None


def sqlite_run_state(db: Path, run_id: str) -> tuple[str, str] | None:
    """(status, lifecycle stage) of a run in a local SQLite store, read without loading MLflow; None when unknown.

    MLflow's import and store set-up take over a second, which is all a
    "nothing changed" answer would otherwise spend. This reads the ``runs``
    table read-only; a missing file, another schema or any error answers None
    and the caller asks MLflow instead.
    """
    import sqlite3

    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=store_timeout())
        try:
            row = con.execute("SELECT status, lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return (str(row[0]), str(row[1])) if row else ("MISSING", "deleted")


def _source(uri: str, explicit: str | None) -> str:
    """How the user gave ``uri``, for a message: the option or the variable."""
    return f"--tracking-uri {uri}" if explicit else f"MLFLOW_TRACKING_URI={uri}"


# The Python package that provides each SQLAlchemy driver module MLflow may need.
_DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
    "cx_Oracle": "cx_Oracle",
    "oracledb": "oracledb",
}
_DB_SCHEMES = ("postgresql", "postgres", "mysql", "mssql", "oracle")
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_uri(uri: str, explicit: str | None = None) -> None:
    """Refuse, before MLflow is touched, a tracking URI that cannot hold textclf's runs; each message names the fix.

    In-memory SQLite (the store is gone when the process exits, its artifacts
    orphaned in the working folder), MLflow's folder store (refused by MLflow
    3.13+ and without a model registry), a SQLite path that is a folder, a
    file of another kind, or a name too long for the filesystem, and a database
    scheme whose Python driver is missing.
    """
    from urllib.parse import urlparse

    where = _source(uri, explicit)
    fix = f"unset it for the local store {DEFAULT_TRACKING_URI}"
    scheme = urlparse(uri).scheme.lower()
    if uri in ("databricks", "databricks-uc", "uc"):  # MLflow's names for a Databricks workspace, not folders
        return
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:2] == ":"):  # a plain path (or a Windows drive letter)
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true", "yes"):
            return
        folder = Path(uri.removeprefix("file://"))
        raise ConfigError(
            f"{where}: a folder is MLflow's file store, which MLflow 3.13+ refuses and whose model registry cannot hold "
            f"textclf's models. Use a SQLite database in that folder: sqlite:///{folder.absolute() / 'mlflow.db'} (or {fix})."
        )
    if scheme == "sqlite":
        path = uri[len("sqlite:///") :].split("?", 1)[0] if uri.startswith("sqlite:///") else ""
        if path in ("", ":memory:") or "mode=memory" in uri:
            raise ConfigError(
                f"{where}: an in-memory store is gone when textclf exits, with every run id it printed, and its artifacts "
                f"are left in the working folder. Use a database file, e.g. sqlite:///mlruns/mlflow.db (the default when it is unset)."
            )
        db = Path(path).absolute()
        too_long = [part for part in db.parts if len(os.fsencode(part)) > 255]
        if too_long or len(os.fsencode(str(db))) > 4095:
            name = too_long[0] if too_long else str(db)
            raise ConfigError(
                f"{where}: the name {name[:40]}... ({len(name)} characters) is longer than the filesystem allows "
                f"(255 a name, 4095 a path). Use a shorter path, e.g. {DEFAULT_TRACKING_URI}."
            )
        if db.is_dir():
            raise ConfigError(
                f"{where}: {db} is a folder; the URI names the database file. Use sqlite:///{db / 'mlflow.db'} (or {fix})."
            )
        if db.is_file():
            try:
                with open(db, "rb") as fh:
                    head = fh.read(len(SQLITE_MAGIC))
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read {db} ({exc.strerror}). Make it readable, or {fix}.") from None
            if head and head != SQLITE_MAGIC:
                raise ConfigError(
                    f"{where}: {db} is not a SQLite database (it begins {head[:8]!r}); textclf never writes "
                    f"over another file. Name a new or existing MLflow database, e.g. sqlite:///{db.parent / 'mlflow.db'} (or {fix})."
                )
        parent = db.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(
                f"{where}: {parent} is a file, so the folder for {db} cannot be created. Choose another path (or {fix})."
            )
        return
    if scheme.split("+")[0] in _DB_SCHEMES:
        try:
            from sqlalchemy.engine import make_url

            make_url(uri).get_dialect().import_dbapi()
        except ImportError as exc:
            module = (getattr(exc, "name", None) or str(exc)).split(".")[0]
            package = _DRIVER_PACKAGES.get(module, module)
            raise ConfigError(
                f"{where}: a {scheme} store needs the Python driver {module!r}, which is not installed. "
                f"Install it (pip install {package}), or {fix}."
            ) from None
        except Exception as exc:  # noqa: BLE001 - sqlalchemy's errors for an unknown dialect or a malformed URL
            raise ConfigError(
                f"{where}: not a database URL SQLAlchemy can use ({str(exc).splitlines()[0]}); {fix}."
            ) from None


def setup(explicit: str | None = None) -> str:
    """Point MLflow at the store; create the local SQLite folder; fail fast on an unreachable server or an unusable URI."""
    import mlflow

    uri = resolve_uri(explicit)
    check_uri(uri, explicit)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    if not uri.startswith(("sqlite:", "http://", "https://")):
        _check_client(uri, explicit)
    # MLflow configures its own logger at import; its INFO lines (input-example
    # validation, store migrations) are noise in a comparison printout.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # It also logs every SQLite error with a traceback before raising it; the
    # raised error reaches us and is reported once (see explain).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    if uri.startswith("sqlite:///"):
        _wait_for_locks()
        _init_sqlite(Path(uri[len("sqlite:///") :]))
    return uri


def _check_client(uri: str, explicit: str | None) -> None:
    """Open MLflow's client on ``uri`` once: a scheme MLflow has no store for fails here, in words, not mid-run."""
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - MLflow's own errors for an unknown scheme or missing credentials
        first = " ".join(str(exc).split())[:300]
        raise ConfigError(
            f"{_source(uri, explicit)}: MLflow cannot use this store ({first}). Fix it, or unset it to use the "
            f"local store {DEFAULT_TRACKING_URI}."
        ) from None


def sqlite_path() -> Path | None:
    """The database file of the store MLflow uses now, when it is SQLite."""
    import sys

    if "mlflow" not in sys.modules:
        return None
    uri = sys.modules["mlflow"].get_tracking_uri()
    return Path(uri[len("sqlite:///") :]) if isinstance(uri, str) and uri.startswith("sqlite:///") else None


_wait_ms: int | None = None  # the busy timeout every SQLite statement gets (set by setup)


def _wait_for_locks() -> None:
    """Make every SQLite statement wait ``store_timeout()`` for a lock.

    MLflow sets ``PRAGMA busy_timeout = 20000`` at the start of every session,
    overriding anything set when connecting, so that statement is rewritten
    on its way to SQLite.
    """
    global _wait_ms
    first = _wait_ms is None
    _wait_ms = int(store_timeout() * 1000)  # read (and checked) here, where a bad value is a clean ConfigError
    if not first:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def rewrite(conn, cursor, statement, parameters, context, executemany):
        if conn.dialect.name == "sqlite" and statement.lstrip().upper().startswith("PRAGMA BUSY_TIMEOUT"):
            statement = f"PRAGMA busy_timeout = {_wait_ms};"
        return statement, parameters

    event.listen(Engine, "before_cursor_execute", rewrite, retval=True)


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
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = open(db.parent / ".textclf-store.lock", "w")  # noqa: SIM115 - closed by the with below
    except OSError as exc:  # a read-only folder, a file in the way, a name too long
        raise ConfigError(
            f"The MLflow store {db}: cannot create {exc.filename or db.parent} ({exc.strerror}). Point --tracking-uri / "
            "MLFLOW_TRACKING_URI at a sqlite:/// database in a folder you can write."
        ) from None
    with lock as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        MlflowClient().search_experiments(max_results=1)  # creates and migrates the schema
        with sqlite3.connect(db, timeout=store_timeout()) as con:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
        fcntl.flock(fh, fcntl.LOCK_UN)
    _keep_reserve(db.parent / RESERVE)
    _initialised.add(key)


def _keep_reserve(path: Path) -> None:
    """Write the reserve file when it is missing (given up after a full disk), if there is room for it."""
    try:
        if path.stat().st_size >= RESERVE_BYTES:
            return
    except FileNotFoundError:
        pass
    try:
        with open(path, "wb") as fh:
            fh.write(os.urandom(RESERVE_BYTES))  # random, so a compressing filesystem really sets the space aside
    except OSError:  # no room: try again next time
        try:
            path.unlink()
        except OSError:
            pass


_released = 0  # bytes of reserve this process gave up: free again, but not for data


def release_reserve() -> bool:
    """Give up the reserve beside the SQLite store in use (its disk is full); True when there was one."""
    global _released
    db = sqlite_path()
    if db is None:
        return False
    try:
        size = (db.parent / RESERVE).stat().st_size
        (db.parent / RESERVE).unlink()
    except OSError:
        return False
    _released += size
    return True


def explain(exc: BaseException) -> TextclfError | None:
    """What a user can do about a store failure: the store locked past the wait, or its disk full (else None)."""
    import errno

    db = sqlite_path()
    texts = [str(e).lower() for e in disk.chain(exc)]
    if any("database is locked" in t for t in texts):
        store, who = (
            (f"{db}: the MLflow store", f" (`fuser {db}` shows it)") if db is not None else ("The MLflow store", "")
        )
        return StoreLockedError(
            f"{store} is locked by another process; textclf waited {store_timeout():g} s for it ({TIMEOUT_ENV}, "
            f"default {DEFAULT_TIMEOUT:g}). Let the other process finish{who} and re-run, raise {TIMEOUT_ENV}, "
            "or use another store (--tracking-uri)."
        )
    if db is None:
        return None
    fix = f"Free space on the disk that holds {db.parent} (or use another store: --tracking-uri), then re-run the same command."
    free = disk.free_bytes(db)
    if free is not None:
        free = max(0, free - _released)
    found = disk.full_disk(exc)
    if found is None and any("disk i/o error" in t for t in texts):
        # SQLite says "disk I/O error" when it cannot grow its shared-memory file on a full
        # disk, and when a file-size limit (ulimit -f) stops a write.
        if free is not None and free < RESERVE_BYTES:
            exc, found = OSError(errno.ENOSPC, "No space left on device"), (errno.ENOSPC, None)
        elif _at_file_size_limit(db):
            exc, found = OSError(errno.EFBIG, "File too large"), (errno.EFBIG, None)
    if found is None or (found[1] is not None and not Path(found[1]).absolute().is_relative_to(db.parent.absolute())):
        return None  # not the store's disk (its database, or artifacts kept beside it)
    if found[1] is None:  # the database
        return disk.disk_full_error(
            exc, db, what="the MLflow store", fix="SQLite rolled that write back. " + fix, free=free
        )
    return disk.disk_full_error(exc, found[1], what="an artifact of the MLflow run", fix=fix, free=free)


def _at_file_size_limit(db: Path) -> bool:
    """Whether the database (or its journal) has reached this process's file-size limit."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    sizes = []
    for suffix in ("", "-wal", "-journal"):
        try:
            sizes.append(Path(f"{db}{suffix}").stat().st_size)
        except OSError:
            pass
    return any(size + 64 * 1024 >= limit for size in sizes)


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
    the other process's row and succeeds. A lock is retried only within
    :func:`store_timeout`: SQLite itself already waited that long for a lock
    that is simply held, and only a lock it gave up on at once is worth a retry.
    """
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + store_timeout()
    delay = 0.1
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            text = str(exc)
            race = any(s in text for s in ("UNIQUE constraint", "IntegrityError"))
            locked = "database is locked" in text and time.monotonic() + delay < deadline
            if attempt == attempts - 1 or not (race or locked):
                raise (explain(exc) or exc) from exc
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
