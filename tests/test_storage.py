"""Reliability round three: what happens to textclf's files on disk.

* damaged cache entries and downloaded models: recomputed (or downloaded
  again) with a warning, never used;
* a data file edited in place with its size and mtime restored: prepared again;
* a full disk in the stage cache, a checkpoint, ``--output`` or the MLflow
  store: one message naming the path, exit 1, nothing half-written, the run FAILED;
* a SQLite store another process keeps locked: one message, after the wait
  ``TEXTCLF_STORE_TIMEOUT`` sets.

The CLI runs in-process where nothing needs a process of its own, and in a
subprocess for a file-size limit and a lock held by another process. A full disk is a real small
filesystem (a tmpfs, which needs root); elsewhere a file-size limit
(``RLIMIT_FSIZE``, so writes fail with EFBIG) stands in for it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_rows, write_csv

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

TINY = [
    "--set",
    "train.epochs=1",
    "--set",
    "embedding.dim=8",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "evaluate.latency_samples=2",
    "--set",
    "train.num_threads=1",
]
NO_SPACE = "no space left on device"
TOO_LARGE = "file too large"


def run(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """``textclf ARGS`` in a subprocess (the ``cli`` fixture runs it in this process)."""
    return subprocess.run(
        [sys.executable, "-m", "textclf.cli", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def _statuses(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT status FROM runs")]


def _half_written(cache: Path) -> list[str]:
    """Temporaries, entries without their _entry.json, partial checkpoints."""
    if not cache.is_dir():
        return []
    bad = [str(t) for t in cache.glob("*/.tmp-*")] + [str(t) for t in cache.glob("*/.work/*/.*.tmp-*")]
    for stage in (d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "datasets"):
        bad += [
            str(e)
            for e in stage.iterdir()
            if e.is_dir() and not e.name.startswith(".") and not (e / "_entry.json").is_file()
        ]
    return bad


def _folded(r) -> str:
    return " ".join((r.stdout + r.stderr).split())


# --------------------------------------------------------------------------- 1. damaged cache entries


def _tensors(blob: bytes) -> dict[str, bytes]:
    """A safetensors file's tensors (its header's key order varies between writes)."""
    from safetensors.numpy import load

    return {k: v.tobytes() for k, v in load(blob).items()}


def test_damaged_cache_entries_and_downloads_are_recomputed_with_a_warning(tmp_path, cli):
    """A flipped bit, a truncated Arrow file, a truncated model, an unreadable old entry: each recomputed, never used."""
    write_csv(tmp_path / "d.csv", make_rows(60))
    args = ["train", "--set", "data.source=d.csv", *TINY]
    r = cli(*args, "--metrics-out", "m1.json")  # in-process: the damage is found by the next process
    assert r.code == 0, r.output
    first = json.loads((tmp_path / "m1.json").read_text())
    cache = tmp_path / ".textclf"

    ids = next(cache.glob("tokenize/*/train/ids.npy"))
    good_ids = ids.read_bytes()
    flipped = bytearray(good_ids)
    flipped[-3] ^= 1  # one token id changes into a neighbouring one: loads fine, trains on wrong data
    ids.write_bytes(bytes(flipped))
    arrow = next(cache.glob("prepare/*/splits/train/*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:200])
    weights = next(cache.glob("train/*/model/model.safetensors"))
    good_weights = weights.read_bytes()
    weights.write_bytes(good_weights[:300])
    # An entry written before checksums existed, damaged: caught when it fails to load.
    evaluate = next(cache.glob("evaluate/*"))
    meta = json.loads((evaluate / "_entry.json").read_text())
    meta.pop("files", None)
    (evaluate / "_entry.json").write_text(json.dumps(meta))
    (evaluate / "metrics.json").write_text('{"val_accuracy": 0.')

    # A new process: one that has checked an entry trusts it for the rest of its life (checked once per process).
    r = run(*args, "--no-track", "--metrics-out", "m2.json")
    text = _folded(r)
    assert r.returncode == 0, text
    assert "Traceback" not in text
    for entry, file in (
        (ids.parent.parent, "train/ids.npy"),
        (arrow.parents[2], "splits/train/"),
        (weights.parents[1], "model/model.safetensors"),
    ):
        assert f"stage-cache entry {entry} is damaged ({file}" in text, text
    assert f"stage-cache entry {evaluate} cannot be loaded (JSONDecodeError" in text, text
    assert ids.read_bytes() == good_ids
    assert _tensors(weights.read_bytes()) == _tensors(good_weights)  # retrained to the same weights
    again = json.loads((tmp_path / "m2.json").read_text())
    assert again["test_accuracy"] == first["test_accuracy"] and again["val_accuracy"] == first["val_accuracy"]

    # A model downloaded from MLflow into <cache>/models/ is checked the same way.
    ref = f"runs:/{first['run_id']}"
    r = run("predict", "--model", ref, "good great superb")
    assert r.returncode == 0, r.stderr
    downloaded = next(cache.glob("models/*/model/model.safetensors"))
    downloaded.write_bytes(downloaded.read_bytes()[:300])
    r2 = run("predict", "--model", ref, "good great superb")
    assert r2.returncode == 0, r2.stderr
    text = _folded(r2)
    assert f"downloaded model {downloaded.parents[1]} (" in text and "is damaged: model/model.safetensors" in text, text
    assert r2.stdout == r.stdout
    assert downloaded.stat().st_size == len(good_weights)


# --------------------------------------------------------------------------- 2. a data file edited in place


def test_a_data_file_edited_with_size_and_mtime_restored_is_prepared_again(tmp_path, cli):
    """The prepare stage identifies a file by its content: an edit that keeps size and mtime still counts; a touch does not."""
    data = write_csv(tmp_path / "d.csv", make_rows(60))
    args = [
        "train",
        "--set",
        "data.source=d.csv",
        "--set",
        "kind=tfidf",
        "--set",
        "evaluate.latency_samples=2",
        "--no-track",
    ]
    assert cli(*args).code == 0
    prepared = tmp_path / ".textclf" / "prepare"
    assert len(list(prepared.iterdir())) == 1

    st = data.stat()
    content = data.read_bytes()
    data.write_bytes(content.replace(b"awful", b"AWFUL", 1))  # same size
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    r = cli(*args)
    assert r.code == 0, r.output
    entries = list(prepared.iterdir())
    assert len(entries) == 2 and "(cached)" not in r.stdout
    edited = max(entries, key=lambda e: (e / "_entry.json").stat().st_mtime_ns)
    assert any(b"AWFUL" in f.read_bytes() for f in edited.rglob("*.arrow")), "the new entry holds the old text"

    os.utime(data)  # touched, unchanged
    r = cli(*args)
    assert r.code == 0, r.output
    assert len(list(prepared.iterdir())) == 2 and "(cached)" in r.stdout


# --------------------------------------------------------------------------- 3. a full disk


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/textclf-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(probe)], capture_output=True
            ).returncode
            == 0
        )
        if ok:
            subprocess.run(["umount", str(probe)], capture_output=True)
        return ok
    finally:
        probe.rmdir()


TMPFS = _can_mount()


@pytest.fixture
def small_disk():
    """``mount(dir, kib)``: a tmpfs of that size at ``dir``; unmounted after the test."""
    mounted: list[Path] = []

    def mount(path: Path, kib: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)], check=True, capture_output=True
        )
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _file_size_limit(limit: int):
    def preexec() -> None:  # in the child: writes past `limit` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _make_store(tmp: Path) -> Path:
    code = "from textclf.tracking import store; store.setup(None); import mlflow; mlflow.create_experiment('train')"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    return tmp / "mlruns" / "mlflow.db"


def _fill(folder: Path, leave: int) -> None:
    """Leave about ``leave`` bytes free on ``folder``'s filesystem."""
    free = shutil.disk_usage(folder).free
    (folder / "filler").write_bytes(b"\1" * max(0, free - leave))


@pytest.mark.parametrize("where", ["cache", "checkpoint", "output", "store"])
def test_a_full_disk_is_one_message_and_leaves_nothing_half_written(where, tmp_path, small_disk):
    """ENOSPC (or EFBIG) anywhere textclf writes: the path in one message, exit 1, no temporaries, the run FAILED."""
    write_csv(tmp_path / "d.csv", make_rows(60))
    cache, db = tmp_path / ".textclf", tmp_path / "mlruns" / "mlflow.db"
    args = ["train", "--set", "data.source=d.csv", *TINY]
    preexec = None
    if where == "store":
        if TMPFS:  # room for the store and its reserve, then filled to ~160 KiB: it runs out mid-run, and marking the run FAILED needs the reserve
            small_disk(tmp_path / "mlruns", 4096)
            _make_store(tmp_path)
            _fill(tmp_path / "mlruns", 160 * 1024)
        else:
            preexec = _file_size_limit(256 * 1024)  # the new store's database outgrows it
        named = str(tmp_path / "mlruns")
    else:
        args.append("--no-track")
        if where == "cache":
            named = str(cache)
            if TMPFS:
                small_disk(cache, 64)
            else:
                preexec = _file_size_limit(1024)  # the first Arrow file of the prepared data is larger
        elif where == "checkpoint":
            named = str(cache / "train" / ".work")
            if TMPFS:
                small_disk(cache / "train" / ".work", 16)
            else:
                preexec = _file_size_limit(8 * 1024)  # every file before the checkpoint is smaller
        else:
            if not TMPFS:
                pytest.skip(
                    "needs a small filesystem (mount -t tmpfs, as root): a file-size limit cannot single out "
                    "--output, whose files are smaller than the plots written before it"
                )
            small_disk(tmp_path / "out", 4)
            args += ["--output", str(tmp_path / "out" / "model")]
            named = str(tmp_path / "out" / "model")

    r = run(*args, preexec_fn=preexec)
    text = _folded(r)
    assert r.returncode == 1, text
    assert "Traceback" not in text
    assert named in text and (
        NO_SPACE in text.lower() if TMPFS else (NO_SPACE in text.lower() or TOO_LARGE in text.lower())
    ), text
    if TMPFS:
        assert "free there" in text, text
    assert not _half_written(cache)
    for ckpt in cache.glob("train/.work/*/checkpoint.pt"):  # only ever a complete one
        assert ckpt.stat().st_size > 1000
    if where == "output":
        assert "needs about" in text
        assert not [p.name for p in (tmp_path / "out").iterdir()]  # no model, no temporary
    statuses = _statuses(db)
    assert "RUNNING" not in statuses, statuses
    if where == "store" and TMPFS:
        assert statuses == ["FAILED"], statuses


# --------------------------------------------------------------------------- 4. a locked store


_HOLD = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_store_locked_by_another_process_is_one_message_after_the_set_wait(tmp_path):
    """BEGIN EXCLUSIVE held elsewhere: exit 1 naming the database and the wait, no run RUNNING."""
    write_csv(tmp_path / "d.csv", make_rows(60))
    db = _make_store(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = run("train", "--set", "data.source=d.csv", *TINY, env={**os.environ, "TEXTCLF_STORE_TIMEOUT": "1"})
    finally:
        holder.communicate("", timeout=30)
    text = _folded(r)
    assert r.returncode == 1, text
    assert "Traceback" not in text
    assert f"{db}: the MLflow store is locked by another process; textclf waited 1 s" in text, text
    assert "TEXTCLF_STORE_TIMEOUT" in text
    assert "RUNNING" not in _statuses(db)


def test_the_set_wait_is_what_every_mlflow_session_waits_for_a_lock(tmp_path, monkeypatch):
    # MLflow starts every session with PRAGMA busy_timeout = 20000: the setting must replace it, or a
    # locked store would wait MLflow's 20 s per statement whatever TEXTCLF_STORE_TIMEOUT says.
    import sqlalchemy
    from mlflow.tracking._tracking_service.utils import _get_store

    from textclf.tracking import store

    monkeypatch.setattr(store, "_wait_ms", store._wait_ms)  # restored afterwards for the other tests
    for seconds in ("7", "0.25"):
        monkeypatch.setenv("TEXTCLF_STORE_TIMEOUT", seconds)
        uri = store.setup(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
        with _get_store(uri).ManagedSessionMaker() as session:
            waited = session.execute(sqlalchemy.text("PRAGMA busy_timeout")).scalar()
        assert waited == int(float(seconds) * 1000)
