"""Reliability round two: user files are never destroyed, and the cache never pulls entries from under a live run.

Each test drives one failure a user can meet (an --output folder that holds
their files, a prune while a run is going, ...) and checks the promise the
README makes about it: a clear error and exit code, and nothing lost.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import make_rows, write_csv

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


def cli(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "textclf.cli", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def _model_folder(path: Path, marker: str = "old") -> Path:
    """A minimal folder that textclf recognises as one of its model folders."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(
        json.dumps({"format_version": 1, "kind": "neural", "model": {}, "marker": marker})
    )
    (path / "labels.json").write_text('["a", "b"]')
    (path / "model.safetensors").write_bytes(b"x" * 64)
    return path


# --------------------------------------------------------------------------- 1. output folders


def test_train_output_never_deletes_a_users_folder(tmp_path, cli):  # in-process: conftest's `cli`
    """`train --output DIR` on a folder holding other files: exit 2 before training, files untouched, even with --force."""
    write_csv(tmp_path / "d.csv", make_rows(60))
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    for extra in ([], ["--force"], ["--overwrite"]):
        r = cli("train", "--set", "data.source=d.csv", *TINY, "--no-track", "--output", str(mine), *extra)
        assert r.code == 2, r.output
        assert "not a textclf model" in r.stderr and "chapter1.tex" in r.stderr
        assert "Traceback" not in r.output
        assert (mine / "chapter1.tex").read_text() == "precious"
    assert not (tmp_path / ".textclf" / "train").exists()  # refused before any training


def test_train_output_replaces_a_model_folder_only_when_asked(tmp_path, cli):  # in-process: conftest's `cli`
    write_csv(tmp_path / "d.csv", make_rows(60))
    out = _model_folder(tmp_path / "model")
    r = cli("train", "--set", "data.source=d.csv", *TINY, "--no-track", "--output", str(out))
    assert r.code == 2 and "--force" in r.stderr
    assert json.loads((out / "config.json").read_text())["marker"] == "old"
    r = cli("train", "--set", "data.source=d.csv", *TINY, "--no-track", "--output", str(out), "--overwrite")
    assert r.code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert "marker" not in cfg and cfg["kind"] == "neural"
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "labels.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]  # no temporary or old copy left


def test_a_failed_copy_leaves_the_old_model_and_no_temporary(tmp_path, monkeypatch):
    """A write that fails half-way (a full disk) never leaves a half-written model where the old one was."""
    import shutil

    from textclf.models import folder as artifacts

    src = _model_folder(tmp_path / "src", marker="new")
    (src / "tokenizer.json").write_text("{}")
    out = _model_folder(tmp_path / "out", marker="old")
    real = shutil.copy2
    calls = {"n": 0}

    def full_disk(a, b, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(b))
        return real(a, b, **kw)

    monkeypatch.setattr(shutil, "copy2", full_disk)
    from textclf.core.errors import DiskFullError

    with pytest.raises(DiskFullError, match=f"{out}: no space left on device"):
        artifacts.copy_model(src, out, force=True)
    assert json.loads((out / "config.json").read_text())["marker"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_export_refuses_a_users_folder_even_with_force(tmp_path):
    from textclf.core.errors import ModelError
    from textclf.models import folder as artifacts

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep")
    with pytest.raises(ModelError, match="not a textclf model"):
        artifacts.check_output(mine, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="file"):
        artifacts.check_output(tmp_path / "file", force=True)
    assert artifacts.check_output(tmp_path / "new", force=False) == tmp_path / "new"


# --------------------------------------------------------------------------- 2. prune vs a live run

_HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from textclf.core.cache import StageCache
    cache = StageCache(sys.argv[1])
    with cache.lock("train", "k1"):
        with cache.write("train", "k1") as tmp:
            (tmp / "weights").write_text("w")
    cache.get("train", "k1")
    # a temporary of this (live) writer, and a checkpoint folder of a training in progress
    (cache.root / "train" / f".tmp-k2-{os.getpid()}-abcdef").mkdir(parents=True)
    work = cache.scratch("train", "k2")
    (work / "checkpoint.pt").write_text("c")
    with cache.lock("train", "k2"):
        print("ready", flush=True)
        sys.stdin.read()  # hold everything until the test closes stdin
    """
)


def test_prune_all_never_touches_what_a_live_process_uses(tmp_path):
    root = tmp_path / "cache"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        # an entry nobody uses, and a temporary of a dead writer
        from textclf.core.cache import StageCache

        other = StageCache(root)
        with other.write("prepare", "old") as tmp:
            (tmp / "x").write_text("x")
        other.close()
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        (root / "prepare" / f".tmp-zz-{dead}-abcdef").mkdir()

        r = cli("cache", "prune", "--all", "--cache-dir", str(root))
        assert r.returncode == 0, r.stderr
        assert "removed 1 entries" in r.stdout and "kept 1 entries" in r.stdout and "train/k1" in r.stdout
        assert (root / "train" / "k1" / "weights").is_file()
        assert [p.name for p in (root / "train").glob(".tmp-k2-*")]
        assert (root / "train" / ".work" / "k2" / "checkpoint.pt").is_file()
        assert not (root / "prepare" / "old").exists()
        assert not list((root / "prepare").glob(".tmp-*"))
    finally:
        holder.communicate("", timeout=30)
    # the process is gone: now everything may go
    r = cli("cache", "prune", "--all", "--cache-dir", str(root))
    assert r.returncode == 0 and "removed 1 entries" in r.stdout, r.stdout
    assert not (root / "train" / "k1").exists()
    assert not list((root / "train").glob(".tmp-*"))
    assert not (root / "train" / ".work" / "k2").exists()


def test_prune_keeps_entries_of_a_running_pipeline_until_it_ends(tmp_path):
    """In-process: a cache object that used an entry keeps it from prune until it is closed."""
    from textclf.core.cache import StageCache

    user, pruner = StageCache(tmp_path / "c"), StageCache(tmp_path / "c")
    with user.lock("tokenize", "k"):
        with user.write("tokenize", "k") as tmp:
            (tmp / "ids").write_text("1")
    assert pruner.prune(everything=True).in_use == ["tokenize/k"]
    assert user.get("tokenize", "k") is not None
    user.close()
    res = pruner.prune(everything=True)
    assert res.removed == 1 and not res.in_use and user.get("tokenize", "k") is None
