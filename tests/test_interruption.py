"""Interruption: SIGINT and SIGKILL during tokenization, training and a multi-variant run.

Each case runs the real CLI in a subprocess through a small launcher that
sends the signal to its own process at a chosen point (after the train split
is tokenized, after epoch 1's checkpoint, after the second child run is
logged). Then the same command runs again (in the test's process: only the
interrupted run needs one of its own) and must:

* complete with the same final metrics as an uninterrupted run;
* leave no MLflow run RUNNING: the interrupted runs end KILLED (recorded by
  the process on Ctrl-C, by the next run after a SIGKILL);
* give the new parent exactly one child per (variant, seed);
* leave no half-written stage-cache entry or temporary behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import make_rows, run_cli, seed_mlflow_store, working_in, write_csv

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

# The whole launcher sits under the __main__ guard: `--jobs auto` trains in a spawned
# process pool whose workers import this file again as __mp_main__, and must not re-run it.
LAUNCHER = "if __name__ == '__main__':\n" + textwrap.indent(
    textwrap.dedent(
        """
    import os, signal, sys

    # A shell starts background jobs with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: give this process the Ctrl-C of a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    point = os.environ.get("KILL_POINT")  # unset: a plain, uninterrupted run
    sig, after = getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL")), int(os.environ.get("KILL_AFTER", "0"))
    calls = [0]

    def wrap(module, name):
        original = getattr(module, name)

        def patched(*args, **kwargs):
            out = original(*args, **kwargs)
            calls[0] += 1
            if calls[0] == after:
                os.kill(os.getpid(), sig)
            return out

        setattr(module, name, patched)

    if point == "tokenize":
        import textclf.text.tokenize as m
        wrap(m, "encode_dataset")  # after the train split is encoded, before validation
    elif point == "train":
        import textclf.training.trainer as m
        wrap(m.Trainer, "_save_checkpoint")  # right after an epoch's checkpoint
    elif point == "children":
        import textclf.pipeline.experiment as m
        wrap(m, "log_child")  # the name run_pipeline calls  # after a child run's params, metrics and model are logged

    from textclf.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
    ),
    "    ",
)

TINY = [
    "--set",
    "embedding.dim=8",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "evaluate.latency_samples=2",
    "--set",
    "train.num_threads=1",
    "--set",
    "train.patience=0",
]
TRAIN = ["train", "--set", "data.source=data.csv", "--set", "train.epochs=3", *TINY, "--metrics-out", "metrics.json"]
PIPELINE = """\
name: p
data: {source: data.csv}
seeds: [1, 2]
baseline: rnn
params: {train.epochs: 2}
variants:
  rnn: {encoder.cell: rnn}
  lstm: {encoder.cell: lstm}
"""
RUN = ["run", "p", *TINY, "--summary-out", "summary.json"]
# What must not change between an uninterrupted and an interrupted-then-resumed run.
FINAL = ("val_accuracy", "test_accuracy", "test_macro_f1", "test_log_loss", "test_ece", "train_accuracy", "params")


def prepare(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    write_csv(d / "data.csv", make_rows(90))
    (d / "pipelines").mkdir(exist_ok=True)
    (d / "pipelines" / "p.yaml").write_text(PIPELINE)
    (d / "launch.py").write_text(LAUNCHER)
    seed_mlflow_store(d / "mlruns" / "mlflow.db")  # the store's tables, without seconds of migrations per command


def environment(d: Path) -> dict[str, str]:
    """The variables a command in work folder ``d`` runs with: its own cache and store, nothing from the hub."""
    return dict(
        TEXTCLF_CACHE_DIR=str(d / ".textclf"),
        MLFLOW_TRACKING_URI=f"sqlite:///{d}/mlruns/mlflow.db",
        HF_DATASETS_CACHE=str(d / "hf-datasets"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    )


def cli(d: Path, args: list[str], kill: tuple[str, str, int] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILL_")}
    env.update(environment(d))
    if kill:
        env.update(KILL_POINT=kill[0], KILL_SIGNAL=kill[1], KILL_AFTER=str(kill[2]))
    return subprocess.run(
        [sys.executable, str(d / "launch.py"), *args], cwd=d, env=env, capture_output=True, text=True, timeout=600
    )


def runs(d: Path) -> list[dict]:
    with sqlite3.connect(d / "mlruns" / "mlflow.db") as con:
        rows = con.execute("SELECT run_uuid, status FROM runs").fetchall()
        tags = {}
        for run_id, key, value in con.execute("SELECT run_uuid, key, value FROM tags"):
            tags.setdefault(run_id, {})[key] = value
    return [{"id": r, "status": s, **tags.get(r, {})} for r, s in rows]


def half_written(d: Path) -> list[str]:
    root = d / ".textclf"
    bad = [str(t) for t in root.glob("*/.tmp-*")]
    for stage in (s for s in root.iterdir() if s.is_dir() and not s.name.startswith(".") and s.name != "datasets"):
        bad += [
            str(e)
            for e in stage.iterdir()
            if e.is_dir() and not e.name.startswith(".") and not (e / "_entry.json").is_file()
        ]
    return bad


@pytest.fixture
def rerun(cli):
    """``rerun(d, args)``: the command again, in this process, in work folder ``d``; a :class:`conftest.CliResult`."""

    def run(d: Path, args: list[str]):
        with working_in(d, environment(d)):
            return cli(*args)

    return run


def final_train(d: Path) -> dict:
    m = json.loads((d / "metrics.json").read_text())
    return {k: m.get(k) for k in FINAL}


def final_pipeline(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    return {
        name: {k: row[k] for k in ("seeds", "test_accuracy", "test_macro_f1", "delta_accuracy")}
        for name, row in s["variants"].items()
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    # The reference runs need no signal, so they run in this process: two fresh interpreters cost ~20 s more.
    d = tmp_path_factory.mktemp("uninterrupted")
    prepare(d)
    with working_in(d, environment(d)):
        for args in (TRAIN, RUN):
            assert run_cli(*args) == 0
    return {"train": final_train(d), "pipeline": final_pipeline(d)}


EXPECTED_EXIT = {"SIGINT": 130, "SIGKILL": -signal.SIGKILL}


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("point,after", [("tokenize", 1), ("train", 1)])
def test_interrupted_train_resumes_to_the_same_metrics(point, after, sig, uninterrupted, rerun, tmp_path):
    d = tmp_path / "w"
    prepare(d)
    killed = cli(d, TRAIN, kill=(point, sig, after))
    assert killed.returncode == EXPECTED_EXIT[sig], killed.stderr
    if sig == "SIGINT":
        assert "interrupted; re-run the same command" in killed.stdout + killed.stderr
        assert "Traceback" not in killed.stderr
        assert [r["status"] for r in runs(d)] == ["KILLED"]  # recorded by the process itself
    else:
        assert [r["status"] for r in runs(d)] == ["RUNNING"]  # nobody could record anything
    if point == "train":  # epoch 1's checkpoint is there to resume from
        assert list((d / ".textclf" / "train" / ".work").glob("*/checkpoint.pt"))

    again = rerun(d, TRAIN)
    assert again.code == 0, again.output
    assert final_train(d) == uninterrupted["train"]
    if point == "train":
        assert "resuming from" in again.stderr and "after epoch 1" in again.stderr
    statuses = sorted(r["status"] for r in runs(d))
    assert statuses == ["FINISHED", "KILLED"], statuses
    assert not half_written(d)
    assert not list((d / ".textclf" / "train" / ".work").glob("*/checkpoint.pt"))  # finished: scratch removed


# Ctrl-C with a process pool training (the default on a machine with several cores), SIGKILL in one process.
@pytest.mark.parametrize("sig,jobs", [("SIGINT", "2"), ("SIGKILL", "1")])
def test_interrupted_pipeline_resumes_without_duplicate_children(sig, jobs, uninterrupted, rerun, tmp_path):
    d = tmp_path / "w"
    prepare(d)
    killed = cli(d, [*RUN, "--jobs", jobs], kill=("children", sig, 2))  # after 2 of the 4 (variant, seed) children
    assert killed.returncode == EXPECTED_EXIT[sig], killed.stderr
    first = runs(d)
    assert len(first) == 3  # parent + two children (the second was being closed)

    again = rerun(d, RUN)
    assert again.code == 0, again.output
    assert final_pipeline(d) == uninterrupted["pipeline"]

    after = runs(d)
    assert not [r for r in after if r["status"] == "RUNNING"]
    old_parent = next(r for r in first if r.get("textclf.role") == "parent")
    assert next(r for r in after if r["id"] == old_parent["id"])["status"] == "KILLED"
    new_parent = json.loads((d / "summary.json").read_text())["parent_run_id"]
    children = [r for r in after if r.get("mlflow.parentRunId") == new_parent]
    pairs = [(r["variant"], r["seed"]) for r in children]
    assert sorted(pairs) == sorted({(v, s) for v in ("rnn", "lstm") for s in ("1", "2")})  # each exactly once
    assert all(r["status"] == "FINISHED" for r in children)
    # The two finished before the interruption are reused from the cache, not trained again.
    assert sum(r.get("textclf.cached") == "true" for r in children) >= 1
    assert not half_written(d)


POOL_DRIVER = textwrap.dedent(
    """
    import sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    from textclf.pipeline.pool import _pool_worker

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn"), initializer=_pool_worker, initargs=("1", True))
        for f in [pool.submit(time.sleep, 0.5) for _ in range(4)]:  # overlapping tasks: both workers start
            f.result()
        print(" ".join(map(str, sorted(set(pool._processes)))), flush=True)
        time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an exited child its parent has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_pool_workers_exit_when_the_driver_is_killed(tmp_path):
    # A SIGKILLed driver cannot shut its pool down: idle workers must notice and exit on their own,
    # else they keep their memory and the driver's stdout open for ever.
    import time

    (tmp_path / "driver.py").write_text(POOL_DRIVER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        workers = [int(p) for p in driver.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        driver.kill()
        driver.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), f"pool workers {workers} outlived their driver"
        assert driver.stdout.read() == ""  # EOF: no worker holds the driver's stdout any more
    finally:
        driver.kill()
        for p in workers if "workers" in locals() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


LONG_PIPELINE = """\
name: long
data: {source: data.csv}
seeds: [1, 2, 3, 4]
params: {train.epochs: 3000, train.patience: 0}
variants:
  rnn: {encoder.cell: rnn}
  lstm: {encoder.cell: lstm}
"""


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process trees from /proc (Linux)")
def test_sigterm_stops_a_parallel_run_at_once(tmp_path):
    # `kill PID` (a scheduler, a container stop) reaches only the driver. Its pool must stop with it: before the fix,
    # Python's exit joined the pool, which first ran every queued training (here 8 of 3,000 epochs, many minutes).
    import time

    d = tmp_path / "w"
    prepare(d)
    (d / "pipelines" / "long.yaml").write_text(LONG_PIPELINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILL_")}
    env.update(environment(d))
    driver = subprocess.Popen(
        [sys.executable, str(d / "launch.py"), "run", "long", *TINY, "--jobs", "2"],
        cwd=d,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not list((d / ".textclf" / "train" / ".work").glob("*/checkpoint.pt")) and time.monotonic() < deadline:
            assert driver.poll() is None, driver.stderr.read()
            time.sleep(0.2)
        workers = _children(driver.pid)
        assert workers, "no pool workers under the driver"
        driver.send_signal(signal.SIGTERM)
        # A hang guard, not a timing: a driver that joined its pool would run the queued trainings (3,000 epochs
        # each) for many minutes; one that stops them ends its runs KILLED (checked below).
        driver.wait(timeout=120)
        assert driver.returncode == 130, driver.stderr.read()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), f"workers {workers} still training after the driver ended"
        statuses = [r["status"] for r in runs(d)]
        assert "RUNNING" not in statuses and "KILLED" in statuses, statuses
    finally:
        driver.kill()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
