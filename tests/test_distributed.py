"""Scaling out: the Ray executor, the local process pool and data-parallel (DDP) training.

Every executor must leave the same MLflow record as the default one (one
parent, one child per (variant, seed), the same tags and metrics), so the
executor tests compare against one baseline run of the local executor.
Training uses ``train.num_threads=1`` everywhere: with the same thread count
on the same machine, CPU training is deterministic, so metrics match exactly.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_pipeline import write_corpus, write_pipeline

from textclf.cli.main import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TIMING = {"epoch_seconds", "train_seconds", "tokens_per_second"}  # and latency_*, texts_per_s_*
STABLE_TAGS = (
    "variant",
    "seed",
    "textclf.kind",
    "cell",
    "layers",
    "bidirectional",
    "textclf.role",
    "textclf.stage_key",
    "textclf.cached",
)


@dataclass
class Project:
    root: Path
    pipeline: Path
    uri: str
    cache: Path
    snapshot: dict


def _is_timing(name: str) -> bool:
    return name.removeprefix("final_") in TIMING or name.startswith(("latency_", "texts_per_s"))


def snapshot(uri: str, parent_id: str) -> dict:
    """What must not depend on the executor: the parent, and per child its tags, params, metrics and curves."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    out: dict = {}
    for c in children:
        key = (c.data.tags["variant"], c.data.tags["seed"])
        assert key not in out, f"{key} recorded twice"
        curves = {
            m: [(p.step, p.value) for p in sorted(client.get_metric_history(c.info.run_id, m), key=lambda p: p.step)]
            for m in ("train_loss", "val_loss", "val_accuracy")
        }
        out[key] = {
            "status": c.info.status,
            "tags": {t: c.data.tags.get(t) for t in STABLE_TAGS},
            "tag_keys": sorted(c.data.tags),
            "params": dict(c.data.params),
            "metrics": {k: v for k, v in c.data.metrics.items() if not _is_timing(k)},
            "curves": curves,
        }
    return {"parent": {k: parent.data.tags.get(k) for k in ("textclf.role", "textclf.pipeline")}, "children": out}


def run_pipeline_cli(p: Project, *args: str) -> dict:
    summary = Path.cwd() / "summary.json"
    assert main(["run", str(p.pipeline), "-q", "--tracking-uri", p.uri, "--summary-out", str(summary), *args]) == 0
    return snapshot(p.uri, json.loads(summary.read_text())["parent_run_id"])


def assert_same_record(got: dict, want: dict, *, only: set | None = None) -> None:
    assert got["parent"] == want["parent"]
    expected = {k: v for k, v in want["children"].items() if only is None or k[0] in only}
    assert sorted(got["children"]) == sorted(expected)  # exactly one child per (variant, seed)
    for key, child in expected.items():
        assert got["children"][key] == child, key


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Project:
    """The tiny two-variant pipeline, run once with the default (local, one job) executor."""
    root = tmp_path_factory.mktemp("scale")
    pipe = write_pipeline(root / "tiny.yaml", write_corpus(root / "reviews.csv"))
    spec = yaml.safe_load(pipe.read_text())
    spec["seeds"] = [1]  # two variants x one seed keeps the file fast
    pipe.write_text(yaml.safe_dump(spec))
    p = Project(root, pipe, f"sqlite:///{root}/mlruns/mlflow.db", root / "cache", {})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HF_HUB_OFFLINE", "1")
        p.snapshot = run_pipeline_cli(p, "--cache-dir", str(p.cache))
    assert sorted(p.snapshot["children"]) == [("bilstm", "1"), ("rnn", "1")]
    assert all(
        c["tags"]["textclf.cached"] == "false" and c["status"] == "FINISHED" for c in p.snapshot["children"].values()
    )
    return p


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


# --------------------------------------------------------------------------- executors


def test_ray_executor_records_what_the_local_executor_does_even_when_a_worker_dies(
    baseline, ray_local, tmp_path, monkeypatch
):
    # One Ray run covers both: every task trains in a Ray worker, which is SIGKILLed at epoch 2; the
    # retry resumes, and the record is still exactly the local executor's (one child per task).
    kills = tmp_path / "kills"
    monkeypatch.setenv("TEXTCLF_TEST_KILL_WORKER_DIR", str(kills))
    cache = tmp_path / "cache"  # fresh: the driver prepares the shared stages, every task trains
    got = run_pipeline_cli(baseline, "--executor", "ray", "--cache-dir", str(cache), "--cpus-per-task", "1")
    assert sorted(p.name for p in kills.iterdir()) == ["bilstm-s1", "rnn-s1"]  # each task died once
    # The retry resumed from the epoch-1 checkpoint and ended exactly where an uninterrupted run does.
    infos = [json.loads(p.read_text()) for p in (cache / "train").glob("*/train.json")]
    assert [i["resumed_from_epoch"] for i in infos] == [1, 1]
    assert_same_record(got, baseline.snapshot)
    assert not list((cache / "train" / ".work").glob("*/checkpoint.pt"))  # finished work is cleaned up


def test_local_process_pool_records_what_one_job_does(baseline):
    got = run_pipeline_cli(baseline, "--jobs", "2", "--cache-dir", str(baseline.cache), "--force")
    assert_same_record(got, baseline.snapshot)


def test_fully_cached_run_starts_no_worker_pool(baseline, monkeypatch):
    # Every model is in the cache: a pool would only read cache hits, after seconds of process start-up.
    import concurrent.futures

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for a fully cached run")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    monkeypatch.chdir(baseline.root)
    got = run_pipeline_cli(baseline, "--jobs", "2", "--cache-dir", str(baseline.cache), "--new-run")
    assert all(c["tags"]["textclf.cached"] == "true" for c in got["children"].values())
    assert sorted(got["children"]) == sorted(baseline.snapshot["children"])


def test_ray_executor_without_ray_is_a_clear_error(baseline, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(
        [
            "run",
            str(baseline.pipeline),
            "-q",
            "--tracking-uri",
            baseline.uri,
            "--executor",
            "ray",
            "--cache-dir",
            str(baseline.cache),
        ]
    )
    assert code == 2
    assert "pip install 'textclf[ray]'" in capsys.readouterr().err


# --------------------------------------------------------------------------- data-parallel training

TRAIN_ARGS = [
    "train",
    "-q",
    "--set",
    "train.epochs=3",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "embedding.dim=8",
    "--set",
    "train.num_threads=1",
    "--set",
    "evaluate.latency_samples=2",
    "--set",
    "train.batch_size=16",
    # Without dropout, DDP with the same global batch is single-process training up to float summation order.
    "--set",
    "embedding.dropout=0",
    "--set",
    "encoder.output_dropout=0",
]


def _torchrun(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "textclf",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_torchrun_two_processes_match_one_and_only_rank_0_writes(tmp_path):
    from mlflow.tracking import MlflowClient

    data = write_corpus(tmp_path / "reviews.csv", n=200)
    args = [*TRAIN_ARGS, "--set", f"data.source={data}"]
    assert main([*args, "--no-track", "--cache-dir", "c1", "--metrics-out", "single.json"]) == 0
    single = json.loads(Path("single.json").read_text())

    proc = _torchrun(
        tmp_path, *args, "--cache-dir", "c2", "--experiment", "ddp", "--output", "model", "--metrics-out", "ddp.json"
    )
    ddp = json.loads(Path("ddp.json").read_text())
    assert proc.stdout.count("test_accuracy") == 1  # one metrics table: rank 0 reports, rank 1 does not
    for k in ("val_accuracy", "test_accuracy", "test_macro_f1", "train_accuracy"):
        assert ddp[k] == single[k], k
    for k in ("test_log_loss", "val_log_loss"):
        assert ddp[k] == pytest.approx(single[k], rel=1e-5), k
    h1 = json.loads(next(Path("c1/train").glob("*/history.json")).read_text())
    h2 = json.loads(next(Path("c2/train").glob("*/history.json")).read_text())
    assert [h["epoch"] for h in h2] == [1, 2, 3]
    np.testing.assert_allclose([h["train_loss"] for h in h2], [h["train_loss"] for h in h1], rtol=1e-5)
    np.testing.assert_allclose([h["val_loss"] for h in h2], [h["val_loss"] for h in h1], rtol=1e-5)

    # Only rank 0 wrote: one cache entry (made by 2 processes), no leftovers, one MLflow run, one model folder.
    entries = [p for p in Path("c2/train").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    assert json.loads((entries[0] / "train.json").read_text())["world_size"] == 2
    assert not list(Path("c2").rglob(".tmp-*")) and not list(Path("c2/train/.work").glob("*/*"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert [r.info.run_id for r in runs] == [ddp["run_id"]]
    assert runs[0].data.metrics["test_accuracy"] == ddp["test_accuracy"]
    assert sorted(p.name for p in Path("model").iterdir()) == [
        "config.json",
        "labels.json",
        "model.safetensors",
        "tokenizer.json",
    ]

    # Again, through `textclf train --ddp` (it starts the 2 ranks itself): rank 0 finds the
    # model cached and releases rank 1, which waits to train with it (no hang, nothing retrained).
    assert (
        main(
            [*args, "--ddp", "--nproc-per-node", "2", "--cache-dir", "c2", "--no-track", "--metrics-out", "again.json"]
        )
        == 0
    )
    again = json.loads(Path("again.json").read_text())
    assert again["cached"] is True and again["world_size"] == 2 and again["test_accuracy"] == ddp["test_accuracy"]


# --------------------------------------------------------------------------- the trainer under DDP


def _tiny_data(n: int, seed: int):
    from textclf.text.batching import EncodedSplit

    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(1, 12, size=rng.integers(2, 12))) for _ in range(n)]
    labels = [int(3 in s) for s in seqs]  # label = does token 3 occur
    return EncodedSplit.from_sequences(seqs, labels)


def _fit_tiny(ckpt: str | None) -> dict:
    """Train a tiny GRU classifier; data-parallel when called inside a process group."""
    from torch import nn

    from textclf.training.config import TrainConfig
    from textclf.training.device import seed_everything
    from textclf.training.trainer import Trainer

    class Tiny(nn.Module):  # no dropout: ranks and a single process compute the same thing
        def __init__(self):
            super().__init__()
            self.hparams = {"vocab": 12}
            self.emb = nn.Embedding(12, 6, padding_idx=0)
            self.rnn = nn.GRU(6, 8, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, tokens, lengths, labels=None):
            logits = self.head(self.rnn(self.emb(tokens))[0].max(1).values)
            return logits, (nn.functional.cross_entropy(logits, labels) if labels is not None else None)

    # 37 examples, batch 8: the last global batch has 5 (ranks get 3 and 2); weighted losses.
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, num_threads=1, seed=3, class_weights="balanced", device="cpu")
    seed_everything(3)
    model = Tiny()
    res = Trainer(model, cfg, checkpoint_dir=ckpt, eval_batch_size=16).fit(_tiny_data(37, 0), _tiny_data(20, 1))
    return {
        "history": res.history,
        "world": res.world_size,
        "resumed": res.resumed_from_epoch,
        "weights": {k: v.tolist() for k, v in model.state_dict().items()},
    }


def _ddp_worker(rank: int, world: int, port: int, out: str, ckpt: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        first = _fit_tiny(ckpt if rank == 0 else None)
        again = _fit_tiny(ckpt if rank == 0 else None)  # resumes the finished run from rank 0's checkpoint
        Path(out, f"rank{rank}.json").write_text(json.dumps({"first": first, "again": again}))
    finally:
        dist.destroy_process_group()


def test_trainer_ddp_gradients_equal_the_single_process_batch_mean(tmp_path):
    import torch.multiprocessing as mp

    from textclf.pipeline.ddp import free_port as _free_port

    single = _fit_tiny(None)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), str(tmp_path / "ckpt")), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert r["first"]["world"] == 2
        for got, want in zip(r["first"]["history"], single["history"]):
            assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
            assert got["train_accuracy"] == want["train_accuracy"]
            assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5)
            assert got["val_accuracy"] == want["val_accuracy"]
        for name, w in single["weights"].items():
            np.testing.assert_allclose(r["first"]["weights"][name], w, rtol=1e-4, atol=1e-6)
        # Rank 0 read its checkpoint and broadcast it: both ranks resumed, nothing left to train.
        assert r["again"]["resumed"] == 2 and r["again"]["history"] == ranks[0]["first"]["history"]
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()


def _worker_threads_seen() -> tuple[str, int]:
    from textclf.core.machine import thread_count

    return os.environ["OMP_NUM_THREADS"], thread_count()


def test_pool_workers_share_an_inherited_thread_budget(monkeypatch):
    # OMP_NUM_THREADS in the driver's environment is the whole run's budget: 2 workers under a budget of 4
    # get 2 threads each, not 4 each (oversubscribed OpenMP threads spin and stall whole epochs).
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from textclf.pipeline.pool import _pool_worker, worker_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert worker_threads(2) == "2" and worker_threads(3) == "1" and worker_threads(8) == "1"
    with ProcessPoolExecutor(
        max_workers=1, mp_context=mp.get_context("spawn"), initializer=_pool_worker, initargs=(worker_threads(2), True)
    ) as pool:
        assert pool.submit(_worker_threads_seen).result(timeout=120) == ("2", 2)
    monkeypatch.delenv("OMP_NUM_THREADS")
    from textclf.core.machine import cores

    assert worker_threads(2) == str(max(1, cores() // 2))
