"""The pipeline's driver does each piece of work once: one plan per (variant, seed), passed down to the tasks
(inline or in a worker), and each check of the run's options once, at the entry, before any run or stage."""

from __future__ import annotations

import collections
import importlib
from concurrent.futures import Future

import pytest
import yaml

from tests.conftest import make_rows, write_csv
from textclf.cli.main import main

VARIANTS = {"rnn": {"encoder": {"cell": "rnn"}}, "gru": {"encoder": {"cell": "gru"}}, "tfidf": {"kind": "tfidf"}}
SEEDS = [1, 2]


def write_pipeline(tmp_path) -> str:
    write_csv(tmp_path / "d.csv", make_rows(90))
    spec = {
        "name": "orch",
        "data": {"source": "d.csv"},
        "params": {
            "train": {"epochs": 1, "batch_size": 16, "num_threads": 1},
            "encoder": {"hidden_size": 8},
            "embedding": {"dim": 8},
            "tokenizer": {"min_frequency": 1},
            "evaluate": {"latency_samples": 2},
        },
        "seeds": SEEDS,
        "baseline": "rnn",
        "variants": VARIANTS,
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    return "p.yaml"


class InlinePool:
    """Stands in for the process pool: runs each task at once, in this process, where its calls can be counted."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, *args):
        f: Future = Future()
        f.set_result(fn(*args))
        return f

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def counting(monkeypatch, target: str, calls: list, record=lambda *a, **k: None):
    """Replace ``target`` by a wrapper that appends ``record(args)`` to ``calls`` and calls the original."""
    module, name = target.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)

    def wrapper(*args, **kwargs):
        calls.append(record(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, wrapper)
    return wrapper


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_each_variant_and_seed_is_planned_once_and_each_option_checked_once(tmp_path, monkeypatch, jobs):
    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", InlinePool)  # --jobs 2: workers in this process
    pipe = write_pipeline(tmp_path)
    plans: list[str] = []
    counting(monkeypatch, "textclf.pipeline.variant.plan", plans, lambda cfg, *a, **k: cfg.model_dump_json())
    checks: dict[str, list] = collections.defaultdict(list)
    counting(monkeypatch, "textclf.tracking.runs.require_system_metrics", checks["system"])
    # Bound by name where it is imported too: every call, wherever it is made from, lands in one list.
    wrapper = counting(monkeypatch, "textclf.pipeline.executors.check_executor", checks["executor"])
    monkeypatch.setattr("textclf.pipeline.experiment.check_executor", wrapper)

    assert main(["run", pipe, "-q", "--jobs", jobs, "--system-metrics", "--summary-out", "s.json"]) == 0
    # One plan per (variant, seed): the cache look-up, the shared stages and the training all use it.
    assert len(plans) == len(VARIANTS) * len(SEEDS)
    assert max(collections.Counter(plans).values()) == 1
    assert len(checks["system"]) == 1 and len(checks["executor"]) == 1


def test_train_checks_its_options_once_and_plans_once(tmp_path, monkeypatch):
    write_csv(tmp_path / "d.csv", make_rows(90))
    plans: list = []
    wrapper = counting(monkeypatch, "textclf.pipeline.variant.plan", plans)
    # train_one binds plan by name when it is first imported (maybe by an earlier test): count that binding too.
    monkeypatch.setattr("textclf.pipeline.train_one.plan", wrapper)
    system: list = []
    counting(monkeypatch, "textclf.tracking.runs.require_system_metrics", system)
    args = ["train", "--set", "data.source=d.csv", "--set", "train.epochs=1", "--set", "encoder.hidden_size=8"]
    args += ["--set", "embedding.dim=8", "--set", "evaluate.latency_samples=2", "-q", "--system-metrics"]
    assert main(args) == 0
    assert len(plans) == 1 and len(system) == 1
