"""The benchmarks' ``--device cuda`` mode: a clear stop without a GPU, and the smoke runs on one.

The CPU suite checks the stop (a machine without CUDA must not train on the
CPU while the JSON says cuda, nor fail deep inside torch); the smoke runs of
training and inference on the GPU run where one is present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCHES = ["inference", "train_throughput"]


def _bench(name: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has a CUDA GPU: the smoke runs below check the mode"
)
@pytest.mark.parametrize("name", BENCHES)
def test_device_cuda_without_a_gpu_stops_before_any_work(name, tmp_path):
    out = tmp_path / "r.json"
    res = _bench(name, "--smoke", "--device", "cuda", "--data", "builtin:reviews", "--json", str(out), timeout=120)
    assert res.returncode != 0
    assert "--device cuda: torch sees no CUDA GPU" in res.stderr and "use --device cpu" in res.stderr, res.stderr[
        -2000:
    ]
    assert "sgemm" not in res.stderr and not out.exists()  # stopped before measuring or writing anything


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
@pytest.mark.parametrize("name", BENCHES)
def test_device_cuda_smoke_runs_on_the_gpu(name, tmp_path):
    out = tmp_path / "r.json"
    res = _bench(name, "--smoke", "--device", "cuda", "--data", "builtin:reviews", "--json", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["setup"]["device"] == "cuda" and result["machine"]["gpu"]
    if name == "inference":
        assert result["precisions"]["fp32"]["texts_per_s_b256"] > 0
        assert "CPU only" in result["precisions"]["int8"]["error"]
    else:
        assert all(v["tokens_per_s"] > 0 for v in result["variants"].values())
