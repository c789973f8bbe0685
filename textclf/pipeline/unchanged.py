"""Whether a finished pipeline run already answers this one: nothing changed, nothing to record again.

A re-run of the same pipeline on the same data with the same code trains
nothing (every model is in the stage cache), and recording it again would
add a parent and one child per (variant, seed) that repeat the last ones.
Like ``make`` or ``dvc repro``, ``textclf run`` then shows the answer it
already has: the summary of the latest FINISHED parent run whose
**fingerprint** matches, read back from that run's ``comparison/``
artifacts (or from the copy this cache keeps, ``<cache>/.answers/``, so
that the answer needs no MLflow import on a local SQLite store).
``--new-run`` records a new parent anyway (cached children link
the models of the runs that trained them); ``--force`` recomputes.

The fingerprint (tag ``textclf.fingerprint`` on the parent) hashes what
decides the answer: the pipeline spec as resolved (variants, tasks, claims,
baselines; ``--set`` overrides and ``--seeds`` included), every (task,
variant, seed)'s trained-model cache key (which hashes its config, its data's
content and the textclf source, see :func:`textclf.core.cache.stage_key`),
and the textclf source itself (the comparison and the report are code too).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from textclf.core.cache import StageCache
from textclf.core.code import code_fingerprint, plugin_fingerprint
from textclf.core.disk import write_atomically
from textclf.pipeline.spec import Pipeline
from textclf.tracking import store

log = logging.getLogger(__name__)

TAG = "textclf.fingerprint"


def fingerprint(pipe: Pipeline, keyed: list[tuple[str | None, str, int, str]]) -> str:
    """The fingerprint of ``pipe`` whose (task, variant, seed) models have the cache keys ``keyed``."""
    blob = json.dumps(
        {
            "spec": pipe.spec.model_dump(mode="json"),
            "seeds": list(pipe.seeds),
            "variants": {n: v.config.to_dict() for n, v in pipe.variants.items()},
            "models": sorted([t or "", v, s, k] for t, v, s, k in keyed),
            "code": code_fingerprint(),  # all of it: the answer includes the report, not only the models
            "plugins": plugin_fingerprint(),  # a changed statistical test changes the answer too
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


ANSWERS = (
    ".answers"  # <cache>/.answers/<fingerprint>.json: the last answer each fingerprint got (hidden from cache ls/prune)
)


def remember(cache: StageCache, fp: str, uri: str, parent_run_id: str, summary: dict[str, Any]) -> None:
    """Keep the answer a run recorded, so that an unchanged re-run can show it without loading MLflow."""

    folder = cache.root / ANSWERS
    record = {
        "tracking_uri": uri,
        "db": str(store.sqlite_db(uri) or ""),
        "parent_run_id": parent_run_id,
        "summary": summary,
    }
    try:  # a reader sees the old record or the new one
        write_atomically(folder / f"{fp}.json", lambda t: t.write_text(json.dumps(record, default=str), "utf-8"))
    except OSError as exc:  # only a shortcut: the run is recorded in MLflow, which answers next time
        log.warning("could not keep this run's answer in %s (%s); an unchanged re-run will ask MLflow", folder, exc)


def find_answer(
    cache: StageCache, experiment: str, fp: str, tracking_uri: str | None
) -> tuple[str, dict[str, Any], str] | None:
    """(parent run id, summary, tracking URI) of a FINISHED parent run of ``experiment`` with fingerprint ``fp``; None if none.

    Fast path: the answer this cache remembers (:func:`remember`), when its
    run is still FINISHED and not deleted in the same local SQLite store
    (read directly, see :func:`textclf.tracking.store.sqlite_run_state`).
    Otherwise MLflow is asked: the latest such parent of the experiment, its
    summary read back from its ``comparison/`` artifacts. A parent whose
    summary cannot be read (its artifacts deleted) answers nothing: the
    pipeline then runs and records anew.
    """
    uri = store.resolve_uri(tracking_uri)
    db = store.sqlite_db(uri)
    kept = cache.root / ANSWERS / f"{fp}.json"
    if db is not None and kept.is_file():
        try:
            record = json.loads(kept.read_text(encoding="utf-8"))
            if record.get("db") == str(db) and store.sqlite_run_state(db, record["parent_run_id"]) == (
                "FINISHED",
                "active",
            ):
                return record["parent_run_id"], record["summary"], uri
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: ask MLflow
    return _ask_mlflow(experiment, fp, tracking_uri)


def _ask_mlflow(experiment: str, fp: str, tracking_uri: str | None) -> tuple[str, dict[str, Any], str] | None:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = store.setup(tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return None
    client = MlflowClient()
    found = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{TAG}` = '{fp}' and tags.`textclf.role` = 'parent' and attributes.status = 'FINISHED'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not found:
        return None
    run_id = found[0].info.run_id
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="comparison/summary.json")
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except Exception as exc:  # deleted or unreadable artifacts: not an answer, run again
        log.warning(
            "run %s matches this pipeline but its comparison/summary.json cannot be read (%s): running it again",
            run_id,
            exc,
        )
        return None
    return run_id, summary, uri
