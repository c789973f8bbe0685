"""Cache identity includes textclf's own code: an edited install recomputes, an unchanged one reuses.

A copy of the package is put first on PYTHONPATH, and ``textclf train`` runs
from it three times: the second run (nothing edited) is all cache hits; after
a comment is added to one source file, the third recomputes, the built-in
corpus included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parents[1] / "textclf"


def _train(copy_root: Path, cache: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(copy_root), "TEXTCLF_CACHE_DIR": str(cache)}
    args = ["--set", "data.source=builtin:reviews", "--set", "data.options={size: 200}", "--set", "train.epochs=1",
            "--set", "encoder.hidden_size=4", "--set", "embedding.dim=4", "--set", "train.num_threads=1",
            "--set", "evaluate.latency_samples=0"]
    res = subprocess.run([sys.executable, "-m", "textclf", "train", "-q", "--no-track", *args, "--metrics-out", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(out.read_text())


def test_an_edited_install_recomputes_and_an_unchanged_one_reuses(tmp_path):
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "textclf", ignore=shutil.ignore_patterns("__pycache__"))
    probe = subprocess.run([sys.executable, "-c", "import textclf; print(textclf.__file__)"], env={**os.environ, "PYTHONPATH": str(root)},
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().startswith(str(root)), probe  # the copy is what runs
    cache = tmp_path / "cache"
    first = _train(root, cache, tmp_path / "a.json")
    corpora = sorted(p.name for p in (cache / "datasets" / "builtin").glob("*.parquet"))
    assert not first["cached"]
    again = _train(root, cache, tmp_path / "b.json")
    assert again["cached"] and again["model_dir"] == first["model_dir"]  # nothing edited: every stage a hit
    edited = root / "textclf" / "models" / "recurrent.py"
    edited.write_text(edited.read_text() + "\n# an edit that changes nothing but the code\n")
    third = _train(root, cache, tmp_path / "c.json")
    assert not third["cached"] and third["model_dir"] != first["model_dir"]
    assert len(list((cache / "datasets" / "builtin").glob("*.parquet"))) == len(corpora) + 1  # the built-in corpus too
