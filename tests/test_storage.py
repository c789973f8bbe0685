"""Reliability round three: what happens to textclf's files on disk.

* damaged cache entries and downloaded models: recomputed (or downloaded
  again) with a warning, never used;
* a data file edited in place with its size and mtime restored: prepared again;

Every case drives the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import make_rows, write_csv

TINY = [
    "--set", "train.epochs=1", "--set", "embedding.dim=8", "--set", "encoder.hidden_size=8",
    "--set", "evaluate.latency_samples=2", "--set", "train.num_threads=1",
]


def cli(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textclf.cli", *args], capture_output=True, text=True, timeout=timeout, **kw)


def _folded(r: subprocess.CompletedProcess) -> str:
    return " ".join((r.stdout + r.stderr).split())


# --------------------------------------------------------------------------- 1. damaged cache entries


def _tensors(blob: bytes) -> dict[str, bytes]:
    """A safetensors file's tensors (its header's key order varies between writes)."""
    from safetensors.numpy import load

    return {k: v.tobytes() for k, v in load(blob).items()}


def test_damaged_cache_entries_and_downloads_are_recomputed_with_a_warning(tmp_path):
    """A flipped bit, a truncated Arrow file, a truncated model, an unreadable old entry: each recomputed, never used."""
    write_csv(tmp_path / "d.csv", make_rows(60))
    args = ["train", "--set", "data.source=d.csv", *TINY]
    r = cli(*args, "--metrics-out", "m1.json")
    assert r.returncode == 0, r.stderr
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

    r = cli(*args, "--no-track", "--metrics-out", "m2.json")
    text = _folded(r)
    assert r.returncode == 0, text
    assert "Traceback" not in text
    for entry, file in ((ids.parent.parent, "train/ids.npy"), (arrow.parents[2], "splits/train/"), (weights.parents[1], "model/model.safetensors")):
        assert f"stage-cache entry {entry} is damaged ({file}" in text, text
    assert f"stage-cache entry {evaluate} cannot be loaded (JSONDecodeError" in text, text
    assert ids.read_bytes() == good_ids
    assert _tensors(weights.read_bytes()) == _tensors(good_weights)  # retrained to the same weights
    again = json.loads((tmp_path / "m2.json").read_text())
    assert again["test_accuracy"] == first["test_accuracy"] and again["val_accuracy"] == first["val_accuracy"]

    # A model downloaded from MLflow into <cache>/models/ is checked the same way.
    ref = f"runs:/{first['run_id']}"
    r = cli("predict", "--model", ref, "good great superb")
    assert r.returncode == 0, r.stderr
    downloaded = next(cache.glob("models/*/model/model.safetensors"))
    downloaded.write_bytes(downloaded.read_bytes()[:300])
    r2 = cli("predict", "--model", ref, "good great superb")
    assert r2.returncode == 0, r2.stderr
    text = _folded(r2)
    assert f"downloaded model {downloaded.parents[1]} (" in text and "is damaged: model/model.safetensors" in text, text
    assert r2.stdout == r.stdout
    assert downloaded.stat().st_size == len(good_weights)


# --------------------------------------------------------------------------- 2. a data file edited in place


def test_a_data_file_edited_with_size_and_mtime_restored_is_prepared_again(tmp_path):
    """The prepare stage identifies a file by its content: an edit that keeps size and mtime still counts; a touch does not."""
    data = write_csv(tmp_path / "d.csv", make_rows(60))
    args = ["train", "--set", "data.source=d.csv", "--set", "kind=tfidf", "--set", "evaluate.latency_samples=2", "--no-track"]
    assert cli(*args).returncode == 0
    prepared = tmp_path / ".textclf" / "prepare"
    assert len(list(prepared.iterdir())) == 1

    st = data.stat()
    content = data.read_bytes()
    data.write_bytes(content.replace(b"awful", b"AWFUL", 1))  # same size
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    entries = list(prepared.iterdir())
    assert len(entries) == 2 and "(cached)" not in r.stdout
    edited = max(entries, key=lambda e: (e / "_entry.json").stat().st_mtime_ns)
    assert any(b"AWFUL" in f.read_bytes() for f in edited.rglob("*.arrow")), "the new entry holds the old text"

    os.utime(data)  # touched, unchanged
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert len(list(prepared.iterdir())) == 2 and "(cached)" in r.stdout
