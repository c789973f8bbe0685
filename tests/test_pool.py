"""The local process pool's scheduling (textclf.pipeline.pool): the longest trainings are submitted first,
results still come back in task order."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from textclf.core.cache import StageCache
from textclf.pipeline import executors
from textclf.pipeline.pool import expected_work
from textclf.pipeline.spec import load_pipeline

REPO = Path(__file__).resolve().parents[1]


def test_expected_work_orders_the_default_comparison_as_measured():
    # Measured seconds per epoch on 2 cores (bench/README.md): rnn 0.6 < gru 1.25 < lstm 1.4 < lstm-x2 2.3 ~ bilstm 2.3
    # < bilstm-x2 5.6; TF-IDF trains in a second.
    pipe = load_pipeline(REPO / "pipelines" / "compare.yaml")
    work = {name: expected_work(v.config) for name, v in pipe.variants.items()}
    assert work["tfidf"] == 0
    assert work["rnn"] < work["gru"] < work["lstm"] < min(work["lstm-x2"], work["bilstm"]) < work["bilstm-x2"]
    # Epochs scale the work: a variant trained twice as long costs twice as much.
    twice = load_pipeline(REPO / "pipelines" / "compare.yaml", overrides=["train.epochs=20"]).variants["rnn"].config
    assert expected_work(twice) == 2 * work["rnn"]


class RecordingPool:
    """Stands in for ProcessPoolExecutor: records the order of submissions, answers with the task's variant name."""

    submitted: list[str] = []

    def __init__(self, *args, **kwargs):
        RecordingPool.submitted = []

    def submit(self, fn, variant, seed, *args):
        RecordingPool.submitted.append((variant, seed))
        f: Future = Future()
        f.set_result(f"{variant.name}-s{seed}")
        return f

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def makespan(durations: list[float], workers: int) -> float:
    """When the last of ``durations`` ends, each started on the first free worker in the order given."""
    free = [0.0] * workers
    for d in durations:
        free[free.index(min(free))] += d
    return max(free)


def test_the_submission_order_keeps_the_slowest_trainings_from_running_alone_at_the_end(monkeypatch, tmp_path):
    import concurrent.futures

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", RecordingPool)
    pipe = load_pipeline(REPO / "pipelines" / "compare.yaml", seeds=[1, 2, 3])
    tasks = [(v, s) for v in pipe.variants.values() for s in pipe.seeds]
    getters = executors.execute(tasks, StageCache(tmp_path), force=False, quiet=True, jobs=2)
    names = [f"{v.name}-s{s}" for v, s in tasks]
    assert [get() for get in getters] == names  # task order, whatever the submission order
    getters.close()
    assert sorted(f"{v.name}-s{s}" for v, s in RecordingPool.submitted) == sorted(names)  # each once
    # What the order is for: with 2 workers and each training taking its expected work, the whole run ends
    # within Graham's bound for longest-first list scheduling (4/3 - 1/6 of the lower bound), and no later than
    # in task order, where the 2-layer BiLSTM, declared last, would run alone at the end.
    submitted = [expected_work(v.config) for v, _ in RecordingPool.submitted]
    in_task_order = [expected_work(v.config) for v, _ in tasks]
    lower_bound = max(sum(submitted) / 2, max(submitted))
    assert makespan(submitted, 2) <= (4 / 3 - 1 / 6) * lower_bound
    assert makespan(submitted, 2) < makespan(in_task_order, 2)


def test_results_are_read_as_they_end_not_in_task_order():
    # The driver reports each training as it ends; with the longest started first, task order would hold every
    # report back until the first task (often the quickest, started last) is done.
    import threading
    import time

    from textclf.pipeline.pool import Getters

    futures = [Future() for _ in range(4)]
    getters = Getters(lambda f=f: f.result() for f in futures)
    getters.futures = futures

    def finish():
        for i in (2, 0, 3, 1):
            time.sleep(0.05)
            futures[i].set_result(i)

    threading.Thread(target=finish).start()
    assert list(getters.completed()) == [2, 0, 3, 1]
    assert list(Getters([lambda: 0, lambda: 1]).completed()) == [0, 1]  # inline: task order
