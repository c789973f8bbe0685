"""A pipeline run: every (variant, seed), tracked in MLflow, then compared.

One parent run per ``textclf run``; one nested child run per (variant, seed).
A child whose result came from the stage cache is still a full child of the
new parent (same params, metrics and small artifacts), tagged
``cached=true`` and ``cached_from=<run that computed it>``; its model is not
logged again — the ``model_uri`` tag points at the source run's model.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf import tracking
from textclf.cache import StageCache
from textclf.pipelines import Pipeline, Variant
from textclf.runner import VariantOutput, run_variant

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    summary: dict[str, Any]
    parent_run_id: str
    outputs: list[VariantOutput]


def _child_tags(variant: Variant, seed: int, out: VariantOutput | None = None) -> dict[str, str]:
    cfg = variant.config
    tags = {"variant": variant.name, "seed": str(seed), "kind": cfg.kind, "textclf.role": "child"}
    if cfg.kind == "neural":
        tags.update(cell=cfg.encoder.cell, layers=str(cfg.encoder.layers), bidirectional=str(cfg.encoder.bidirectional).lower())
        if cfg.encoder.init_from:
            tags["init_from"] = cfg.encoder.init_from
    return tags


def _dataset_source(source: str):
    """An MLflow DatasetSource for where a split came from."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    if source.startswith("hf:"):
        spec, _, split = source[3:].partition("[")
        name, _, config = spec.partition(":")
        return HuggingFaceDatasetSource(path=name, config_name=config or None, split=split.rstrip("]") or None)
    if source.startswith("builtin:"):
        return CodeDatasetSource(tags={"textclf.builtin": source})
    return CodeDatasetSource(tags={"textclf.file": str(Path(source).resolve())})


# (split, fingerprint, source) -> MLflow dataset entity. MLflow infers a
# dataset's schema by visiting every value (~0.1 s per split of 8,000 texts);
# the entity of a split is the same for every child that trained on it.
_DATASET_ENTITIES: dict[tuple[str, str, str], Any] = {}


def log_datasets(out: VariantOutput, run_id: str) -> None:
    """Log the three splits as the run's dataset inputs, with our content fingerprint as the digest."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    d = out.data.value
    inputs = []
    for split, context in (("train", "training"), ("validation", "validation"), ("test", "testing")):
        source = str(d.sources.get(split) or d.sources.get("train", ""))
        key = (split, d.fingerprints[split], source)
        if key not in _DATASET_ENTITIES:
            ds = mlflow.data.from_huggingface(
                d.splits[split], targets="label", name=split, digest=d.fingerprints[split], source=_dataset_source(source)
            )
            _DATASET_ENTITIES[key] = ds._to_mlflow_entity()
        inputs.append(DatasetInput(dataset=_DATASET_ENTITIES[key], tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)]))
    # One store transaction for the three splits.
    tracking.retry(MlflowClient().log_inputs, run_id, datasets=inputs)


def log_child(client, run_id: str, out: VariantOutput, *, exp_id: str, example_texts: list[str]) -> dict[str, str]:
    """Params, per-epoch and final metrics, artifacts and (when freshly computed) the model."""
    import mlflow

    final = {k: v for k, v in out.metrics.items() if isinstance(v, (int, float))}
    final.update({f"embedding_{k}": v for k, v in (out.extra.get("embedding_coverage") or {}).items()})
    metrics = tracking.run_metrics(out.history, final)
    tracking.log_batch(client, run_id, params=tracking.flat_params(out.config.flat()), metrics=metrics)
    log_datasets(out, run_id)
    tags = {"stage_key": out.stage_key, "cached": str(out.cached).lower(), **out.extra.get("lineage_tags", {})}
    # The small artifacts go in one folder and one call.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.yaml").write_text(out.config.to_yaml())
        for name in ("confusion_matrix.png", "learning_curves.png", "classification_report.txt"):
            if (out.eval_dir / name).is_file():
                shutil.copyfile(out.eval_dir / name, Path(tmp) / name)
        if out.tokenized is not None:
            shutil.copyfile(out.tokenized.path / "tokenizer.json", Path(tmp) / "tokenizer.json")
            (Path(tmp) / "tokenize_stats.json").write_text(json.dumps(out.extra.get("token_stats", {}), indent=1))
        mlflow.log_artifacts(tmp)
    source = tracking.find_source_run(exp_id, out.stage_key) if out.cached else None
    if source and source != run_id:
        tags["cached_from"] = source
        tags["model_uri"] = f"runs:/{source}/model"
    else:
        tags["model_uri"] = tracking.log_model(out.model_dir, example_texts)
        tags["cached"] = "false" if not source else tags["cached"]
    mlflow.set_tags(tags)
    return tags


def _record(variant: Variant, seed: int, out: VariantOutput, run_id: str):
    from textclf.compare import RunRecord

    cfg = out.config
    y, proba = out.test_arrays()
    neural = cfg.kind == "neural"
    return RunRecord(
        variant=variant.name,
        seed=seed,
        kind=cfg.kind,
        cell=cfg.encoder.cell if neural else None,
        layers=cfg.encoder.layers if neural else None,
        bidirectional=cfg.encoder.bidirectional if neural else None,
        metrics=dict(out.metrics),
        history=out.history,
        y_true=y,
        proba=proba,
        run_id=run_id,
        cached=out.cached,
    )


def _compute(variant: Variant, seed: int, cache_root: str, force: bool, quiet: bool, reuse_upstream: bool = False) -> VariantOutput:
    """Worker entry point (also used in-process): compute one (variant, seed)."""
    log_fn = None if quiet else (lambda line: print(f"  [{variant.name} s{seed}] {line}", file=sys.stderr, flush=True))
    return run_variant(variant.for_seed(seed), StageCache(cache_root), force=force, log_fn=log_fn, reuse_upstream=reuse_upstream)


def _pool_worker(threads: str) -> None:
    """Pool initializer: torch threads per worker (train.num_threads: null follows OMP_NUM_THREADS)."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", threads)


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
    console=None,
) -> PipelineResult:
    import mlflow
    from mlflow.tracking import MlflowClient

    from textclf.compare import compare, render_table, write_report

    if executor not in ("local", "ray"):
        from textclf.errors import ConfigError

        raise ConfigError(f"--executor must be local or ray. Got {executor!r} instead.")
    uri = tracking.setup(tracking_uri)
    # Worker processes (--jobs, Ray) resolve init_from model references against the same store.
    os.environ["MLFLOW_TRACKING_URI"] = uri
    exp_id = tracking.experiment_id(pipe.name)
    tracking.mark_stale_runs(exp_id)
    client = MlflowClient()
    tasks = [(v, s) for v in pipe.variants.values() for s in pipe.seeds]
    command = "textclf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and "textclf" in sys.argv[0] else None
    say = (lambda *a, **k: None) if quiet or console is None else console.print

    outputs: list[VariantOutput] = []
    records: dict[str | None, list] = {}  # task -> RunRecords (None: a single-task pipeline)
    first_out: dict[str | None, VariantOutput] = {}
    t_start = time.perf_counter()
    with tracking.start_run(
        experiment_id=exp_id,
        run_name=f"{pipe.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={**tracking.base_tags(), "textclf.role": "parent", "pipeline": pipe.name},
        log_system_metrics=system_metrics,
    ) as parent:
        parent_id = parent.info.run_id
        if pipe.path is not None:
            mlflow.log_artifact(str(pipe.path), "pipeline")
        mlflow.log_dict({n: v.config.to_dict() for n, v in pipe.variants.items()}, "pipeline/resolved_variants.json")
        mlflow.log_params({"pipeline": pipe.name, "seeds": json.dumps(pipe.seeds), "baseline": pipe.baseline or "", "variants": json.dumps(list(pipe.variants))[:6000]})
        say(f"[bold]{pipe.name}[/]: {len(pipe.variants)} variants × {len(pipe.seeds)} seeds → MLflow {uri} (parent run {parent_id})")

        results = _execute(tasks, pipe, cache, force, quiet, executor, jobs, ray_address, cpus_per_task, gpus_per_task)
        for (variant, seed), get in zip(tasks, results):
            tags = {**tracking.base_tags(), **_child_tags(variant, seed)}
            if variant.task:
                tags["task"] = variant.task
            with tracking.start_run(experiment_id=exp_id, run_name=f"{variant.key}-s{seed}", nested=True, tags=tags) as child:
                out = get()
                first_out.setdefault(variant.task, out)
                examples = first_out[variant.task].data.value.splits["test"]["text"][:3]
                log_child(client, child.info.run_id, out, exp_id=exp_id, example_texts=examples)
            outputs.append(out)
            records.setdefault(variant.task, []).append(_record(variant, seed, out, child.info.run_id))
            acc = out.metrics.get("test_accuracy", float("nan"))
            say(f"  {'[dim]cached[/]' if out.cached else '[green]trained[/]'} {variant.key:<16} seed {seed}: test accuracy {acc:.4f}")

        summaries: dict[str | None, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for task, recs in records.items():
                s = compare(recs, pipe.baseline_for(task), label_names=first_out[task].label_names)
                s = s["summary"] if "summary" in s else s
                s["data"] = _data_info(first_out[task])
                if task:
                    s["task"] = task
                out_dir = Path(tmp) / task if task else Path(tmp)
                write_report(
                    s, recs, out_dir, title=f"textclf · {pipe.name}" + (f" · {task}" if task else ""), command=command, cache=cache
                )
                summaries[task] = s
                for name, row in s["variants"].items():
                    for metric in ("test_accuracy", "test_macro_f1"):
                        if isinstance(row.get(metric), dict) and row[metric].get("mean") is not None:
                            mlflow.log_metric(f"{task + '.' if task else ''}{name}.{metric}_mean", row[metric]["mean"])
            if None in summaries:
                summary = summaries[None]
            else:
                summary = {"tasks": {t: summaries[t] for t in summaries}}
            summary.update(
                pipeline=pipe.name,
                parent_run_id=parent_id,
                experiment_id=exp_id,
                tracking_uri=uri,
                wall_seconds=round(time.perf_counter() - t_start, 2),
            )
            if register:
                if "tasks" in summary:
                    log.warning("--register picks one best model; a multi-task pipeline has one per task: skipped")
                else:
                    summary["registered"] = _register(client, summary, register)
            (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
            mlflow.log_artifacts(tmp, "comparison")
        if console is not None:
            for task, s in summaries.items():
                if task:
                    console.print(f"[bold]{task}[/]")
                console.print(render_table(s))
            say(f"report: MLflow parent run {parent_id} (artifacts/comparison); `textclf ui` to browse")
    return PipelineResult(summary=summary, parent_run_id=parent_id, outputs=outputs)


def _data_info(out: VariantOutput) -> dict[str, Any]:
    d = out.data.value
    return {
        "sources": d.sources,
        "fingerprints": d.fingerprints,
        "rows": {s: len(d.splits[s]) for s in ("train", "validation", "test")},
        "labels": d.label_names,
    }


def _execute(tasks, pipe, cache, force, quiet, executor, jobs, ray_address, cpus_per_task, gpus_per_task):
    """One zero-argument getter per task, in task order.

    Local, one job: compute lazily (in task order) so output streams as it goes.
    Local, several jobs: a process pool. Ray: one task per (variant, seed).
    """
    root = str(cache.root)
    if executor == "ray":
        from textclf.distributed import ray_getters

        return ray_getters(tasks, root, force, quiet, ray_address, cpus_per_task, gpus_per_task)
    if jobs <= 1:
        return [lambda v=v, s=s: _compute(v, s, root, force, quiet) for v, s in tasks]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import os

    from textclf.distributed import compute_upstream

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # Upstream stages are shared: compute them once here (honouring --force), so
    # workers only train and evaluate (forced too, but never upstream: see run_variant).
    compute_upstream({id(v): v.config for v, _ in tasks}.values(), cache, force=force)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))  # jobs workers share the cores
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_pool_worker, initargs=(threads,))
    futures = [pool.submit(_compute, v, s, root, force, quiet, True) for v, s in tasks]
    return [f.result for f in futures]


def _register(client, summary: dict[str, Any], name: str) -> dict[str, Any]:
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
    model_uri = best_run.data.tags.get("model_uri") or f"runs:/{best_run.info.run_id}/model"
    mv = mlflow.register_model(model_uri, name)
    client.set_registered_model_alias(name, "champion", mv.version)
    client.set_model_version_tag(name, mv.version, "variant", best)
    return {"name": name, "version": mv.version, "alias": "champion", "variant": best, "model_uri": model_uri}
