"""Shared fixtures: an isolated working directory and tiny data files.

Every test runs inside its own ``tmp_path`` with the stage cache, the MLflow
store and the Hugging Face datasets cache pointed there, and with the hub in
offline mode, so no test reads or writes the repository or the network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Three classes, each with its own words, so a stratified split and a
# tokenizer both have something to find. Row i has label LABELS[i % 3].
LABELS = ("neg", "neu", "pos")
WORDS = {
    "neg": ["bad", "awful", "dull", "boring", "weak"],
    "neu": ["okay", "plain", "average", "fine", "usual"],
    "pos": ["good", "great", "superb", "lovely", "fun"],
}


def make_rows(n: int = 60, labels: tuple[str, ...] = LABELS) -> list[dict[str, str]]:
    """``n`` rows of {text, label}; deterministic, every text distinct."""
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = WORDS.get(label, WORDS["neu"])
        text = " ".join(words[(i + k) % len(words)] for k in range(3 + i % 4)) + f" movie{i}"
        rows.append({"text": text, "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = ("text", "label"), sep: str = ",") -> Path:
    import pandas as pd

    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False, sep=sep)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def pytest_configure(config):
    """Under ``pytest -n N``, each worker process runs on its own share of the cores.

    A worker then sees the machine a user with that many cores sees:
    ``--jobs auto`` and the training threads follow the affinity mask
    (:func:`textclf.core.machine.cores`), so two workers on two cores train
    in-process on one core each instead of starting two more processes each
    and fighting over the cores. Tests of the process pool ask for it
    (``--jobs 2``).
    """
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    index = int(worker[2:])
    share = cpus[index::count] if count <= len(cpus) else [cpus[index % len(cpus)]]
    os.sched_setaffinity(0, share)


_STORE_TEMPLATE: list[Path] = []  # the migrated empty SQLite store, once built
_MIGRATE: list = []  # MLflow's own _initialize_tables, kept by the session fixture below


def _migrated_template(initialize) -> Path:
    if not _STORE_TEMPLATE:
        import tempfile

        import sqlalchemy

        path = Path(tempfile.mkdtemp(prefix="textclf-mlflow-template-")) / "mlflow.db"
        engine = sqlalchemy.create_engine(f"sqlite:///{path}")
        initialize(engine)
        engine.dispose()
        _STORE_TEMPLATE.append(path)
    return _STORE_TEMPLATE[0]


@pytest.fixture(scope="session", autouse=True)
def mlflow_schema_from_template():
    """A new SQLite MLflow store gets its tables by copying a migrated empty one, not by migrating again.

    MLflow creates the tables of a new database by replaying every schema
    migration since its first release: 2-8 s per store, paid by every test
    that opens its own store. The first store of the session is migrated the
    real way and kept as the template; every later empty SQLite database is
    given a copy of it (same schema, same alembic revision, no rows). Only
    the moment the tables appear changes: a store is still created only when
    the code under test opens one.
    """
    import mlflow.store.db.utils as db_utils
    import mlflow.store.model_registry.sqlalchemy_store as registry_store

    original = db_utils._initialize_tables
    _MIGRATE.append(original)

    def initialize(engine):
        path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        if not path or path == ":memory:" or (os.path.exists(path) and os.path.getsize(path) > 0):
            return original(engine)
        template = _migrated_template(original)
        engine.dispose()  # the empty file's pooled connections must not outlive the copy
        shutil.copyfile(template, path)

    patch = pytest.MonkeyPatch()
    patch.setattr(db_utils, "_initialize_tables", initialize)
    patch.setattr(registry_store, "_initialize_tables", initialize)
    yield
    patch.undo()
    for path in _STORE_TEMPLATE:
        shutil.rmtree(path.parent, ignore_errors=True)


def seed_mlflow_store(db: Path) -> None:
    """Give the SQLite store a subprocess is about to create its tables now (the template's copy).

    The subprocess would otherwise migrate a new database itself, seconds per
    command; what the tests check of its runs is unchanged.
    """
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_template(_MIGRATE[0]), db)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in tmp_path; caches, MLflow store and HF cache live there; the hub is offline."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(tmp_path / ".textclf"))
    # textclf.tracking.store creates the mlruns/ folder when it first opens the store.
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    if "mlflow" in sys.modules:  # an earlier test may have set mlflow's process-wide URI and experiment
        sys.modules["mlflow"].set_tracking_uri(uri)
        monkeypatch.setattr(sys.modules["mlflow.tracking.fluent"], "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("TEXTCLF_DEBUG", raising=False)
    # datasets / huggingface_hub read these once, at import: set them for this process too.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()
    from textclf.core import code

    monkeypatch.setattr(code, "_noted", set())  # data sources / formats another test registered count in no key here
    return tmp_path


@pytest.fixture(autouse=True)
def root_logging_restored():
    """Drop the root handlers a test's in-process ``main(...)`` call installed (``basicConfig(force=True)``).

    Left behind, such a handler writes to that test's captured stderr, closed
    by then: torch's exit hook logging through it prints "Logging error" at the
    end of the session. pytest's own capture handlers are left to pytest.
    """
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    root.handlers[:] = [h for h in root.handlers if h in before or type(h).__module__.startswith("_pytest")]
    root.setLevel(level)


@pytest.fixture
def rows():
    return make_rows(60)


@pytest.fixture
def csv_file(tmp_path, rows):
    return write_csv(tmp_path / "reviews.csv", rows)


@pytest.fixture
def tsv_file(tmp_path, rows):
    return write_csv(tmp_path / "reviews.tsv", rows, sep="\t")


@pytest.fixture
def jsonl_file(tmp_path, rows):
    return write_jsonl(tmp_path / "reviews.jsonl", rows)


@pytest.fixture
def parquet_file(tmp_path, rows):
    return write_parquet(tmp_path / "reviews.parquet", rows)


@dataclass
class CliResult:
    """What one in-process ``textclf`` call left: its exit code and everything it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def folded(self) -> str:
        """The output lower-cased on one line: rich wraps long messages wherever the console width falls."""
        return " ".join(self.output.lower().split())


@contextlib.contextmanager
def process_state_restored():
    """Undo what one CLI call sets process-wide, so in-process calls cannot leak into later tests.

    A verb configures logging (``basicConfig(force=True)`` replaces the root
    handlers, pytest's included), sets environment variables and MLflow's
    tracking URI, torch's thread count, and ``main`` installs a SIGTERM handler.
    An MLflow run still active afterwards is a bug of the CLI, not state to
    tidy: it is ended (so later tests start clean) and reported.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: lg.level for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    environ, cwd, sigterm = dict(os.environ), os.getcwd(), signal.getsignal(signal.SIGTERM)
    streams = (sys.stdout, sys.stderr)
    import torch  # imported before the call, so its thread count before the call is known

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level
        loggers = [root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
        for lg in loggers:
            if lg.name in levels:  # a library imported during the call keeps the level it gave itself
                lg.setLevel(levels[lg.name])
            # A handler made during the call (by a library imported then: torch, say) may hold the call's captured
            # stream, closed after the test; point it at the process's own stream instead.
            for h in lg.handlers:
                if vars(h).get("stream") in streams:  # not a handler that looks the stream up as it writes
                    h.setStream(sys.__stdout__ if h.stream is streams[0] else sys.__stderr__)
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        signal.signal(signal.SIGTERM, sigterm)
        torch.set_num_threads(threads)
        mlflow = sys.modules.get("mlflow")
        leaked = mlflow.active_run() if mlflow is not None else None
        if mlflow is not None:
            while mlflow.active_run() is not None:
                mlflow.end_run("KILLED")
            if "MLFLOW_TRACKING_URI" in os.environ:
                mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        assert leaked is None, f"the CLI left MLflow run {leaked.info.run_id} active in its process"


@pytest.fixture
def cli(capfd):
    """``cli(*argv)``: the real ``textclf`` entry point, run in this process; returns a :class:`CliResult`.

    The file descriptors are captured, so output written through a handler
    bound to the original stderr (MLflow's, a library's warning) is seen too.
    Seconds faster per call than a subprocess; keep subprocesses for what
    only a process shows (exit by signal, the console script itself).
    """

    def run(*argv: str) -> CliResult:
        capfd.readouterr()  # what the test's own setup printed is not the command's output
        code = run_cli(*argv)
        out = capfd.readouterr()
        return CliResult(code, out.out, out.err)

    return run


def imported_after(statements: str, watched: tuple[str, ...], cwd: Path | None = None) -> tuple[list[str], str]:
    """Which of ``watched`` a fresh interpreter has imported after ``statements``, and what it printed first.

    Which modules a command imports is the state of one process, so each check
    runs in its own. The statements must succeed (their traceback fails the test).
    """
    code = f"{statements}\nimport json, sys\nprint(json.dumps(sorted(m for m in {tuple(watched)!r} if m in sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    *printed, last = proc.stdout.strip().splitlines()
    return json.loads(last), "\n".join(printed)


@contextlib.contextmanager
def working_in(folder: Path, env: dict[str, str]):
    """In-process commands run in ``folder`` with the variables ``env``; all of it is undone afterwards."""
    with process_state_restored():
        os.environ.update(env)
        os.chdir(folder)
        yield


def run_cli(*argv: str) -> int:
    """The exit code of ``textclf ARGV`` run in this process, its process-wide settings undone afterwards."""
    from textclf.cli.main import main

    with process_state_restored():
        return main([str(a) for a in argv])


def pytest_collection_modifyitems(config, items):
    """Files holding ``slow`` tests first, each file's tests in their own order.

    ``--dist loadfile --no-loadscope-reorder`` hands whole files to the
    workers in this order, so the longest files start first and the short ones
    fill in around them. xdist's own order (most tests first) put the long
    files, which hold few tests each, last, where one worker ran them alone.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: files stay whole and in order
