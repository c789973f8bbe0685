"""A pipeline run: every (variant, seed) through the executors, recorded in MLflow, then compared.

One parent run per ``textclf run``; one nested child run per (variant, seed)
(:mod:`textclf.pipeline.record` says what each child holds). The comparison
(summary.json, report.md, plots) is logged on the parent under
``comparison/``. Nothing here prints: progress goes to the ``on_event``
callback and the result is returned, for the CLI (or a notebook) to show.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from textclf.core.cache import StageCache
from textclf.pipeline.executors import execute
from textclf.pipeline.record import child_tags, data_info, log_child, run_record
from textclf.pipeline.spec import Pipeline
from textclf.pipeline.variant import VariantOutput
from textclf.tracking import runs, store

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    summary: dict[str, Any]
    parent_run_id: str
    outputs: list[VariantOutput]


def run_pipeline(
    pipe: Pipeline,
    *,
    cache: StageCache,
    tracking_uri: str | None = None,
    force: bool = False,
    register: str | None = None,
    system_metrics: bool = False,
    executor: str = "local",
    jobs: int = 1,
    ray_address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    quiet: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Run every (variant, seed) of ``pipe``, record each as a child run, compare them on the parent.

    ``on_event(kind, info)`` hears ``"start"`` (uri, parent run, counts) and
    ``"task"`` (variant, seed, output) as they happen.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.analysis.compare import compare
    from textclf.analysis.report import write_report

    emit = on_event or (lambda kind, info: None)
    if system_metrics:
        runs.require_system_metrics()  # before any run exists
    uri = store.setup(tracking_uri)
    # Worker processes (--jobs, Ray) resolve init_from model references against the same store.
    os.environ["MLFLOW_TRACKING_URI"] = uri
    exp_id = store.experiment_id(pipe.name)
    runs.mark_stale_runs(exp_id)
    client = MlflowClient()
    tasks = [(v, s) for v in pipe.variants.values() for s in pipe.seeds]
    command = "textclf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and "textclf" in sys.argv[0] else None

    outputs: list[VariantOutput] = []
    records: dict[str | None, list] = {}  # task -> RunRecords (None: a single-task pipeline)
    first_out: dict[str | None, VariantOutput] = {}
    t_start = time.perf_counter()
    with runs.start_run(
        experiment_id=exp_id,
        run_name=f"{pipe.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={**runs.base_tags(), "textclf.role": "parent", "textclf.pipeline": pipe.name, **runs.description_tag(pipe.spec.description)},
        system_metrics=system_metrics,
    ) as parent:
        parent_id = parent.info.run_id
        if pipe.path is not None:
            mlflow.log_artifact(str(pipe.path), "pipeline")
        mlflow.log_dict({n: v.config.to_dict() for n, v in pipe.variants.items()}, "pipeline/resolved_variants.json")
        mlflow.log_params({"pipeline": pipe.name, "seeds": json.dumps(pipe.seeds), "baseline": pipe.baseline or "", "variants": json.dumps(list(pipe.variants))[:6000]})
        emit("start", {"pipeline": pipe.name, "variants": len(pipe.variants), "seeds": len(pipe.seeds), "tasks": len(tasks), "uri": uri, "parent_run_id": parent_id})

        getters = execute(tasks, cache, force=force, quiet=quiet, executor=executor, jobs=jobs, ray_address=ray_address,
                          cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
        for (variant, seed), get in zip(tasks, getters):
            tags = {**runs.base_tags(), **child_tags(variant, seed)}
            if variant.task:
                tags["textclf.task"] = variant.task
            with runs.start_run(experiment_id=exp_id, run_name=f"{variant.key}-s{seed}", nested=True, tags=tags) as child:
                live = runs.LiveMetrics(client, child.info.run_id)  # epochs trained in this process, as they end
                out = get(on_epoch=live)
                first_out.setdefault(variant.task, out)
                examples = first_out[variant.task].data.value.splits["test"]["text"][:3]
                log_child(client, child.info.run_id, out, exp_id=exp_id, example_texts=examples, live_epochs=live.logged)
            outputs.append(out)
            records.setdefault(variant.task, []).append(run_record(variant, seed, out, child.info.run_id))
            emit("task", {"variant": variant.key, "seed": seed, "cached": out.cached, "test_accuracy": out.metrics.get("test_accuracy")})

        summaries: dict[str | None, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for task, recs in records.items():
                s = compare(recs, pipe.baseline_for(task), label_names=first_out[task].label_names)
                s["data"] = data_info(first_out[task])
                if task:
                    s["task"] = task
                out_dir = Path(tmp) / task if task else Path(tmp)
                write_report(s, recs, out_dir, title=f"textclf · {pipe.name}" + (f" · {task}" if task else ""), command=command, cache=cache)
                mlflow.log_table(runs.comparison_table(s), artifact_file=f"comparison/{task + '/' if task else ''}variants.json")
                summaries[task] = s
                for name, row in s["variants"].items():
                    for metric in ("test_accuracy", "test_macro_f1"):
                        if isinstance(row.get(metric), dict) and row[metric].get("mean") is not None:
                            mlflow.log_metric(f"{task + '.' if task else ''}{name}.{metric}_mean", row[metric]["mean"])
            summary = summaries[None] if None in summaries else {"tasks": {t: summaries[t] for t in summaries}}
            summary.update(
                pipeline=pipe.name, parent_run_id=parent_id, experiment_id=exp_id, tracking_uri=uri,
                wall_seconds=round(time.perf_counter() - t_start, 2),
            )
            if register:
                if "tasks" in summary:
                    log.warning("--register picks one best model; a multi-task pipeline has one per task: skipped")
                else:
                    summary["registered"] = register_champion(client, summary, register)
            (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
            mlflow.log_artifacts(tmp, "comparison")
    return PipelineResult(summary=summary, parent_run_id=parent_id, outputs=outputs)


def register_champion(client, summary: dict[str, Any], name: str) -> dict[str, Any]:
    """Register the best variant's best-seed model and point alias ``champion`` at it."""
    import mlflow

    best = summary["best_variant"]
    run_ids = summary["variants"][best]["run_ids"]
    best_run, best_acc = None, -1.0
    for rid in run_ids:
        run = client.get_run(rid)
        acc = run.data.metrics.get("test_accuracy", -1.0)
        if acc > best_acc:
            best_run, best_acc = run, acc
    # The LoggedModel (models:/m-…) the run logged, or, for a cached run, the one it links to:
    # registering runs:/ID/model of a cached run finds no artifacts there.
    model_uri = best_run.data.tags.get("textclf.model_uri") or f"runs:/{best_run.info.run_id}/model"
    mv = mlflow.register_model(model_uri, name)
    client.set_registered_model_alias(name, "champion", mv.version)
    client.set_model_version_tag(name, mv.version, "variant", best)
    return {"name": name, "version": mv.version, "alias": "champion", "variant": best, "model_uri": model_uri}
