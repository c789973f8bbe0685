"""The benchmarks must not rot: every one runs its seconds-long ``--smoke`` version and writes its JSON.

Their numbers mean nothing here (tiny data, one repetition, cores shared with
the rest of the suite); the full runs and their tables are in docs/benchmarks.md.
Running them inside the suite lets the test workers overlap them with other
tests instead of CI running them alone afterwards on one core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

REPO = Path(__file__).resolve().parents[1]


def test_every_benchmark_runs_its_smoke_version_and_writes_its_json(tmp_path):
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TEXTCLF_CACHE_DIR")}
    # builtin data: a test never depends on the benchmark files beside the repository
    res = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--data", "builtin:reviews", "--results", str(results)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    assert sorted(p.stem for p in results.glob("*.json")) == sorted(BENCHMARKS)
    for name in BENCHMARKS:
        result = json.loads((results / f"{name}.json").read_text())
        assert isinstance(result, dict) and result, name
    assert "rt_train.csv" not in res.stderr  # --data reached every benchmark that reads a dataset
