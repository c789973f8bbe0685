"""The fingerprint that decides whether a finished run already answers a pipeline (textclf.pipeline.unchanged).

The end-to-end behaviour (an unchanged re-run records nothing and shows the
first run's summary; --new-run records again) is in tests/test_pipeline.py.
Here: the fingerprint changes with everything that can change the answer,
and with nothing else.
"""

from __future__ import annotations

from pathlib import Path

from textclf.pipeline.spec import load_pipeline
from textclf.pipeline.unchanged import fingerprint

REPO = Path(__file__).resolve().parents[1]
COMPARE = REPO / "pipelines" / "compare.yaml"


def keyed(pipe, change: dict | None = None) -> list:
    """Made-up cache keys, one per (task, variant, seed); ``change`` replaces some."""
    out = [(v.task, v.name, s, f"key-{v.name}-{s}") for v in pipe.variants.values() for s in pipe.seeds]
    return [(t, n, s, (change or {}).get((n, s), k)) for t, n, s, k in out]


def test_same_inputs_same_fingerprint():
    a, b = load_pipeline(COMPARE), load_pipeline(COMPARE)
    assert fingerprint(a, keyed(a)) == fingerprint(b, keyed(b))
    # The order the models are listed in does not matter.
    assert fingerprint(a, keyed(a)[::-1]) == fingerprint(a, keyed(a))


def test_everything_that_decides_the_answer_changes_the_fingerprint(tmp_path):
    base = load_pipeline(COMPARE)
    fp = fingerprint(base, keyed(base))
    # one model retrained (its config, data or code changed: its cache key did)
    assert fingerprint(base, keyed(base, {("lstm", 2): "other"})) != fp
    # other seeds, a --set override, fewer variants
    seeds = load_pipeline(COMPARE, seeds=[4, 5, 6])
    assert fingerprint(seeds, keyed(seeds)) != fp
    override = load_pipeline(COMPARE, overrides=["train.lr=0.01"])
    assert fingerprint(override, keyed(override)) != fp
    fewer = load_pipeline(COMPARE, only=["rnn", "lstm"])
    assert fingerprint(fewer, keyed(fewer)) != fp
    # the comparison's own settings (baseline) and the description the parent run shows
    for old, new in (("baseline: rnn", "baseline: lstm"), ("description: RNN,", "description: Recurrent,")):
        edited = tmp_path / f"{len(old)}.yaml"
        edited.write_text(COMPARE.read_text().replace(old, new, 1))
        other = load_pipeline(edited)
        assert fingerprint(other, keyed(other)) != fp, new


def test_the_kept_answer_is_used_only_while_its_run_is_finished_and_not_deleted(tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.core.cache import StageCache
    from textclf.pipeline.unchanged import TAG, find_answer, remember
    from textclf.tracking import store

    monkeypatch.chdir(tmp_path)
    uri = store.setup(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    client = MlflowClient()
    exp = mlflow.create_experiment("p", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp, tags={"textclf.role": "parent", TAG: "fp1"})
    cache = StageCache(tmp_path / "cache")
    remember(cache, "fp1", uri, run.info.run_id, {"answer": 42})

    # RUNNING (or KILLED) is not an answer; the MLflow search agrees (it asks for FINISHED parents).
    assert find_answer(cache, "p", "fp1", uri) is None
    client.set_terminated(run.info.run_id, "FINISHED")
    assert find_answer(cache, "p", "fp1", uri) == (run.info.run_id, {"answer": 42}, uri)
    assert find_answer(cache, "p", "other", uri) is None  # another fingerprint
    # A deleted run answers nothing, though the cache still holds its record.
    client.delete_run(run.info.run_id)
    assert (cache.root / ".answers" / "fp1.json").is_file()
    assert find_answer(cache, "p", "fp1", uri) is None
    # Another store (another database) is never answered from this record.
    client.restore_run(run.info.run_id)
    other = store.setup(f"sqlite:///{tmp_path}/elsewhere/mlflow.db")
    assert find_answer(cache, "p", "fp1", other) is None
