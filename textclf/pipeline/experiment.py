"""A pipeline run: every (variant, seed) through the executors, recorded in MLflow, then compared.

One parent run per ``textclf run``; one nested child run per (variant, seed)
(:mod:`textclf.pipeline.record` says what each child holds). The comparison
(summary.json, report.md, plots) is logged on the parent under
``comparison/``. Nothing here prints: progress goes to the ``on_event``
callback and the result is returned, for the CLI (or a notebook) to show.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.core import names
from textclf.core.cache import StageCache
from textclf.core.errors import ConfigError, TextclfError, TrainingError
from textclf.pipeline.executors import check_executor, compute_upstream, execute, resolve_jobs
from textclf.pipeline.record import (
    best_tags,
    child_tags,
    comparison_inputs,
    data_info,
    describe_parent,
    log_child,
    log_disagreements,
    run_record,
)
from textclf.pipeline.spec import Pipeline
from textclf.pipeline.variant import VariantOutput, with_cost
from textclf.tracking import champion, runs, store

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    summary: dict[str, Any]
    parent_run_id: str
    outputs: list[VariantOutput]
    unchanged: bool = False  # nothing changed since parent_run_id: its answer, nothing trained or recorded


def run_pipeline(
    pipe: Pipeline,
    *,
    cache: StageCache,
    tracking_uri: str | None = None,
    force: bool = False,
    register: str | None = None,
    system_metrics: bool = False,
    executor: str = "local",
    jobs: int | str = "auto",
    ray_address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    quiet: bool = False,
    new_run: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Run every (variant, seed) of ``pipe``, record each as a child run, compare them on the parent.

    ``on_event(kind, info)`` hears ``"start"`` (uri, parent run, counts) and
    ``"task"`` (variant, seed, output) as they happen, or only ``"unchanged"``
    when a finished run already answers the pipeline (:mod:`textclf.pipeline.unchanged`;
    ``new_run`` records a new parent run anyway).
    """
    from textclf.analysis.compare import compare
    from textclf.analysis.html_report import write_html
    from textclf.analysis.report import write_report
    from textclf.pipeline.resources import check_configs
    from textclf.pipeline.unchanged import TAG, find_answer, fingerprint, remember
    from textclf.pipeline.variant import planned, trained_key

    emit = on_event or (lambda kind, info: None)
    if register is not None:  # a name the registry refuses would otherwise fail after every training
        names.check_registry_name(register)
        if pipe.spec.tasks:
            raise ConfigError(
                f"--register {register}: it registers the one best model of a comparison, and pipeline "
                f"{pipe.name!r} compares each of its {len(pipe.spec.tasks)} tasks on its own. Drop --register."
            )
    # Variant and task names as MLflow keys and artifact folders (textclf.core.names), fixed before any run exists.
    variant_keys = names.safe_keys(v.name for v in pipe.variants.values())
    task_keys = names.safe_keys(v.task for v in pipe.variants.values() if v.task)
    # The run's options, each checked once, here, before any run exists or any stage runs.
    if system_metrics:
        runs.require_system_metrics()
    check_executor(executor, cpus_per_task, gpus_per_task)
    if pipe.tune is not None:
        from textclf.pipeline.tune import require_optuna

        require_optuna()
    plans: dict[str, Any] = {}  # each (variant, seed) planned once, here: its (plan, source) for every step below

    def plan_of(variant, seed: int):
        cfg = variant.for_seed(seed)
        key = cfg.model_dump_json()
        if key not in plans:
            plans[key] = planned(cfg, cache)
        return plans[key]

    def known_key(variant, seed: int) -> str | None:
        if variant.config.kind == "neural" and variant.config.encoder.init_from:
            return None  # its source resolves against the store, set up below
        try:
            p, _ = plan_of(variant, seed)
        except TextclfError:  # said where the shared stages are computed, after the checks that come first
            return None
        return trained_key(variant.for_seed(seed), cache, p=p)

    tasks = [(v, s) for v in pipe.variants.values() for s in pipe.seeds]
    # Tuning decides the configs to train later: until then nothing counts as trained.
    keys = [None if force or pipe.tune is not None else known_key(v, s) for v, s in tasks]
    untrained = [task for task, key in zip(tasks, keys) if key is None]
    if not (untrained or new_run or register or system_metrics):
        # Nothing to train: if a finished run already answers this pipeline unchanged, that is the answer.
        fp = fingerprint(pipe, [(v.task, v.name, s, key) for (v, s), key in zip(tasks, keys)])
        answer = find_answer(cache, pipe.name, fp, tracking_uri)
        if answer is not None:
            emit("unchanged", {"pipeline": pipe.name, "parent_run_id": answer[0], "uri": answer[2]})
            return PipelineResult(summary=answer[1], parent_run_id=answer[0], outputs=[], unchanged=True)
    cache.check_writable()  # every run below writes there (lock files at least): an unwritable folder is said now
    import mlflow  # here, not above: an unchanged answer needs no MLflow import (over a second)
    from mlflow.tracking import MlflowClient

    # Workers only for work: a pool that would just read cache hits costs seconds of process start-up.
    if executor == "local" and untrained:
        jobs = resolve_jobs(jobs, len(untrained))
    else:
        resolve_jobs(jobs, 1)  # still a valid --jobs
        jobs = 1
    # Every variant is checked before the first one trains, and before the parent run starts;
    # one whose models are all in the cache builds nothing (and a cached re-run needs no torch).
    todo = list({id(v): v for v, _ in untrained}.values())
    check_configs([(v.key, v.config) for v in todo], jobs=jobs)
    uri = store.setup(tracking_uri)
    # Worker processes (--jobs, Ray) resolve init_from model references against the same store.
    os.environ["MLFLOW_TRACKING_URI"] = uri
    # The shared stages of every task first: bad data (a missing file, column or
    # label) stops here, before any MLflow run exists and before any training.
    compute_upstream({id(v): (v.config, plan_of(v, s)) for v, s in tasks}.values(), cache, force=force)
    exp_id = store.experiment_id(pipe.name)
    runs.mark_stale_runs(exp_id)
    client = MlflowClient()
    command = (
        "textclf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and "textclf" in sys.argv[0] else None
    )

    outputs: list[VariantOutput] = []
    records: dict[str | None, list] = {}  # task -> RunRecords (None: a single-task pipeline)
    first_out: dict[str | None, VariantOutput] = {}
    outputs_by_task: dict[str | None, list[VariantOutput]] = {}
    t_start = time.perf_counter()
    with (
        runs.start_run(
            experiment_id=exp_id,
            run_name=names.display(f"{pipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"),
            tags={
                **runs.base_tags(),
                "textclf.role": "parent",
                "textclf.pipeline": names.display(pipe.name),
                **runs.description_tag(pipe.spec.description),
            },
            system_metrics=system_metrics,
        ) as parent,
        contextlib.ExitStack() as stack,
    ):
        parent_id = parent.info.run_id
        if pipe.path is not None:
            mlflow.log_artifact(str(pipe.path), "pipeline")
        mlflow.log_dict({n: v.config.to_dict() for n, v in pipe.variants.items()}, "pipeline/resolved_variants.json")
        mlflow.log_params(
            {
                "pipeline": names.display(pipe.name, 6000),
                "seeds": json.dumps(pipe.spec.seeds),
                "baseline": pipe.baseline or "",
                "variants": json.dumps(list(pipe.variants))[:6000],
            }
        )
        emit(
            "start",
            {
                "pipeline": pipe.name,
                "variants": len(pipe.variants),
                "seeds": len(pipe.seeds),
                "tasks": len(tasks),
                "uri": uri,
                "parent_run_id": parent_id,
            },
        )

        tuned = {}
        if pipe.tune is not None:  # each variant's search first; its best config is what the children train
            tuned = _tune(
                pipe,
                cache,
                client,
                exp_id,
                parent_id,
                force=force,
                quiet=quiet,
                emit=emit,
                plan_of=plan_of,
                runner_opts=dict(
                    executor=executor,
                    jobs=jobs,
                    ray_address=ray_address,
                    cpus_per_task=cpus_per_task,
                    gpus_per_task=gpus_per_task,
                ),
            )
            tasks = [(dataclasses.replace(v, config=tuned[v.key].config) if v.key in tuned else v, s) for v, s in tasks]

        def train_round(round_tasks: list) -> None:
            """Train (or read from the cache) ``round_tasks`` and record each as a child run."""
            getters = execute(
                round_tasks,
                cache,
                plans=[plan_of(v, s)[0] for v, s in round_tasks],
                force=force,
                quiet=quiet,
                executor=executor,
                jobs=jobs,
                ray_address=ray_address,
                cpus_per_task=cpus_per_task,
                gpus_per_task=gpus_per_task,
            )
            # Workers end with the run: at once when it is interrupted (Ctrl-C, SIGTERM, an error), not after every queued training.
            stack.push(lambda exc_type, exc, tb, batch=getters: batch.close(interrupted=exc_type is not None))
            if executor != "local" or jobs > 1:
                # Trainings ran side by side: wait for all of them, then time each model alone (below),
                # so latency and throughput are not those of a machine busy with other trainings.
                done: list[Any] = [None] * len(round_tasks)
                for i in getters.completed():  # as each ends (the longest were started first), not in task order
                    done[i] = getters[i]()
                    emit(
                        "trained",
                        {"variant": round_tasks[i][0].key, "seed": round_tasks[i][1], "cached": done[i].cached},
                    )
                getters.close()  # every training is done: free the workers' memory before timing models alone
                getters = [lambda on_epoch=None, out=out: out for out in done]
            for (variant, seed), get in zip(round_tasks, getters):
                tags = {**runs.base_tags(), **child_tags(variant, seed)}
                if variant.task:
                    tags["textclf.task"] = names.display(variant.task, 8000)
                if variant.key in tuned:
                    tags.update(best_tags(tuned[variant.key]))
                with runs.start_run(
                    experiment_id=exp_id, run_name=names.display(f"{variant.key}-s{seed}"), nested=True, tags=tags
                ) as child:
                    live = runs.LiveMetrics(client, child.info.run_id)  # epochs trained in this process, as they end
                    out = with_cost(get(on_epoch=live), cache, force=force)
                    first_out.setdefault(variant.task, out)
                    examples = first_out[variant.task].data.value.splits["test"]["text"][:3]
                    log_child(
                        client, child.info.run_id, out, exp_id=exp_id, example_texts=examples, live_epochs=live.logged
                    )
                outputs.append(out)
                outputs_by_task.setdefault(variant.task, []).append(out)
                records.setdefault(variant.task, []).append(run_record(variant, seed, out, child.info.run_id))
                emit(
                    "task",
                    {
                        "variant": variant.key,
                        "seed": seed,
                        "cached": out.cached,
                        "test_accuracy": out.metrics.get("test_accuracy"),
                    },
                )

        train_round(tasks)
        first_look = list(tasks)  # what the unchanged-answer fingerprint names: later rounds follow from it
        schedule = pipe.schedule
        if schedule is not None:  # seeds: {min, max}: more seeds only where a contrast is still inconclusive
            tasks += _more_seeds(
                pipe, schedule, records[None], first_out[None], outputs_by_task[None], train_round, emit
            )
        summaries: dict[str | None, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for task, recs in records.items():
                s = compare(
                    recs,
                    pipe.baseline_for(task),
                    **comparison_inputs(first_out[task], outputs_by_task[task]),
                    **contrast_inputs(pipe, task, first_out[task]),
                )
                if schedule is not None:
                    s["seed_schedule"] = {
                        **schedule.to_dict(),
                        "looks": schedule.looks,
                        "alpha": pipe.spec.compare.alpha,
                        "alpha_per_look": schedule.alpha_per_look(pipe.spec.compare.alpha),
                    }
                s["data"] = data_info(first_out[task])
                label_keys = names.changed(names.safe_keys(first_out[task].label_names))  # as core.metrics maps them
                if label_keys:
                    s["mlflow_keys"] = {"labels": label_keys}
                if tuned:
                    attach_tuning(s, tuned, task)
                if task:
                    s["task"] = task
                    judge_task(s, recs, pipe.spec.tasks[task], first_out[task])
                folder = f"{task_keys[task]}/" if task else ""  # a task named "../up" stays inside comparison/
                out_dir = Path(tmp) / folder
                write_report(
                    s,
                    recs,
                    out_dir,
                    title=f"textclf · {pipe.name}" + (f" · {task}" if task else ""),
                    command=command,
                    cache=cache,
                )
                log_disagreements(s, f"comparison/{folder}disagreements.json")
                mlflow.log_table(runs.comparison_table(s), artifact_file=f"comparison/{folder}variants.json")
                summaries[task] = s
            # No per-variant metrics on the parent (`<variant>.test_accuracy_mean` made one single-bar chart each):
            # the view below groups the children by variant, side by side with their spread over seeds.
            summary = summaries[None] if None in summaries else {"tasks": {t: summaries[t] for t in summaries}}
            claims = {t: c.claim.model_dump() for t, c in (pipe.spec.tasks or {}).items() if c.claim is not None}
            if claims:  # every claim as fixed in the pipeline file, in one hash docs and reports can quote
                from textclf.analysis.verdicts import claims_fingerprint

                summary["claims_fingerprint"] = claims_fingerprint(claims)
            summary.update(
                pipeline=pipe.name,
                parent_run_id=parent_id,
                experiment_id=exp_id,
                tracking_uri=uri,
                wall_seconds=round(time.perf_counter() - t_start, 2),
            )
            # Names MLflow could not take as they are, and the keys that stand for them (labels: per task, above).
            mapped = {"variants": names.changed(variant_keys), "tasks": names.changed(task_keys)}
            if any(mapped.values()):
                summary.setdefault("mlflow_keys", {}).update({k: v for k, v in mapped.items() if v})
            if register:
                if "tasks" in summary:
                    log.warning("--register picks one best model; a multi-task pipeline has one per task: skipped")
                else:
                    summary["registered"] = register_champion(client, summary, register)
            summary["environment"] = environment(pipe, executor=executor, jobs=jobs)
            from textclf.tracking.past import variant_models

            for s in summaries.values():  # each variant's model (best seed on validation), for "Use a model"
                s["models"] = variant_models(s, client)
            if pipe.spec.description:
                summary["description"] = pipe.spec.description
            (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
            mlflow.log_artifacts(tmp, "comparison")
            with tempfile.TemporaryDirectory() as top:  # report.html at the top of the artifact tree: one click
                html = write_html(
                    Path(top) / "report.html",
                    summary,
                    Path(tmp),
                    title=f"textclf · {pipe.name}",
                    command=command,
                    configs={n: v.config.to_dict() for n, v in pipe.variants.items()},
                    environment=summary["environment"],
                )
                mlflow.log_artifact(str(html))
            if pipe.tune is None:  # a later run of the same pipeline, data and code finds this answer
                fp = fingerprint(pipe, [(v.task, v.name, s, o.stage_key) for (v, s), o in zip(first_look, outputs)])
                mlflow.set_tag(TAG, fp)
            url = _store_view(client, exp_id, parent_id, pipe.name, summary, uri)
            mlflow.set_tag("mlflow.note.content", describe_parent(pipe, summaries, view_url=url))
    if pipe.tune is None:  # once the parent is FINISHED (an interrupted one never answers)
        remember(cache, fp, uri, parent_id, summary)
    return PipelineResult(summary=summary, parent_run_id=parent_id, outputs=outputs)


def environment(pipe: Pipeline, *, executor: str, jobs: int) -> dict[str, Any]:
    """What the results ran on: versions, device and threads (for the report; no torch import on a cached re-run)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from textclf._version import __version__
    from textclf.core.machine import thread_count
    from textclf.pipeline.pool import worker_threads

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    neural = [v.config for v in pipe.variants.values() if v.config.kind == "neural"]
    devices = sorted({c.train.device for c in neural})
    torch = sys.modules.get("torch")
    if torch is not None and devices == ["auto"]:  # torch is loaded once anything trained: say what auto meant
        devices = ["auto → " + ("cuda" if torch.cuda.is_available() else "cpu")]
    # Worker processes get an equal share of the cores (train.num_threads: null follows it).
    share = int(worker_threads(jobs)) if executor == "local" and jobs > 1 else None
    threads = sorted({c.train.num_threads or share or thread_count(None) for c in neural})
    return {
        "textclf": __version__,
        "torch": installed("torch"),
        "mlflow": installed("mlflow"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": ", ".join(devices) or "cpu (no neural variant)",
        "threads per training": ", ".join(map(str, threads)) or "n/a",
        "executor": f"{executor}, {jobs} job(s)" if executor == "local" else executor,
    }


def _store_view(client, exp_id: str, parent_id: str, name: str, summary: dict[str, Any], uri: str) -> str | None:
    """The parent's MLflow view (:mod:`textclf.tracking.view`); its URL, or None when the store refused it (one warning)."""
    from textclf.tracking import view

    tasks = summary.get("tasks")
    primary = (next(iter(tasks.values())) if tasks else summary).get("primary_metric")
    stored = view.store_view(
        client, exp_id, parent_id, name=f"{name} · run {parent_id[:8]}", primary_metric=primary, multi_task=bool(tasks)
    )
    return view.view_url(exp_id, parent_id, view.ui_base(uri)) if stored else None


def _tune(
    pipe: Pipeline,
    cache: StageCache,
    client,
    exp_id: str,
    parent_id: str,
    *,
    force: bool,
    quiet: bool,
    emit,
    runner_opts,
    plan_of,
) -> dict:
    """Every variant's search (:mod:`textclf.pipeline.tune`), recorded under the parent; {variant key: Tuned}."""
    import mlflow

    from textclf.pipeline.record import TuneRecorder
    from textclf.pipeline.tune import tune_pipeline

    spec = pipe.tune
    mlflow.log_params(
        {
            "tune.trials": spec.trials,
            "tune.metric": spec.metric,
            "tune.pruner": spec.pruner,
            "tune.space": json.dumps({k: d.to_dict() for k, d in spec.space.items()})[:6000],
        }
    )
    emit(
        "tuning",
        {
            "trials": spec.trials,
            "metric": spec.metric,
            "pruner": spec.pruner,
            "variants": sum(v.config.kind == "neural" for v in pipe.variants.values()),
        },
    )
    return tune_pipeline(
        pipe,
        cache,
        TuneRecorder(client, exp_id, parent_id),
        force=force,
        quiet=quiet,
        runner_opts=runner_opts,
        emit=emit,
        plan_of=plan_of,
    )


def _more_seeds(
    pipe: Pipeline, schedule, records: list, first: VariantOutput, outputs: list, train_round, emit
) -> list:
    """The rounds of ``seeds: {min, max}`` after the first: judge the contrasts, add seeds to the variants of those
    still inconclusive, until none is or they reach ``max`` (:mod:`textclf.analysis.sequential`). Returns the tasks added."""
    from textclf.analysis.compare import compare
    from textclf.analysis.sequential import to_extend

    added: list = []
    by_name = {v.name: v for v in pipe.variants.values()}
    while True:
        look = compare(
            records, pipe.baseline, **comparison_inputs(first, outputs), **contrast_inputs(pipe, None, first)
        )
        counts = {name: row["n_seeds"] for name, row in look["variants"].items()}
        members = {name: d.get("variants", []) for name, d in (look.get("contrast_details") or {}).items()}
        more = to_extend(look.get("contrasts") or [], members, counts, schedule)
        if not more:
            return added
        round_tasks = [
            (by_name[name], seed) for name, count in more.items() for seed in schedule.seeds(count)[counts[name] :]
        ]
        emit(
            "round",
            {
                "look": schedule.looks.index(max(more.values())) + 1,
                "looks": len(schedule.looks),
                "variants": sorted(more),
                "trainings": len(round_tasks),
            },
        )
        train_round(round_tasks)
        added += round_tasks


def contrast_inputs(pipe: Pipeline, task: str | None, out: VariantOutput) -> dict[str, Any]:
    """What :func:`compare` needs to answer the pipeline's questions: its contrasts, sesoi and alpha, which variants
    differ in one factor only, and whether the test set is the validation set (opted in: every verdict warns)."""
    import hashlib

    def rest(variant) -> str:
        cfg = variant.config.model_dump(mode="json")
        for key in ("cell", "layers", "bidirectional"):
            cfg.get("encoder", {}).pop(key, None)
        cfg.get("train", {}).pop("seed", None)
        return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]

    spec = pipe.spec
    names = {v.name for v in pipe.variants.values() if v.task == task}
    # A task of a multi-task pipeline answers the declared questions it has both variants for.
    declared = {n: c.model_dump() for n, c in (spec.contrasts or {}).items() if {c.a, c.b} <= names}
    return {
        "contrasts": declared or None,
        "sesoi": spec.compare.sesoi / 100,
        # seeds: {min, max} looks at the data several times: each look spends its share of alpha
        "alpha": spec.compare.alpha if pipe.schedule is None else pipe.schedule.alpha_per_look(spec.compare.alpha),
        "config_rest": {v.name: rest(v) for v in pipe.variants.values() if v.task == task},
        "test_is_validation": bool(out.data.value.report.get("test_is_validation")),
    }


def attach_tuning(summary: dict[str, Any], tuned: dict, task: str | None) -> None:
    """``variants.<name>.tuning`` for every tuned variant of one task's summary, then ``summary["tuning"]``."""
    from textclf.analysis.tuning import summarize, tuning_entry

    for name, row in summary["variants"].items():
        t = tuned.get(f"{task}/{name}" if task else name)
        row["tuning"] = tuning_entry(t) if t is not None else None
    summarize(summary)


def judge_task(summary: dict[str, Any], records: list, task, out: VariantOutput) -> None:
    """A diagnostic task's claim, success rates, verdict and per-slice table (e.g. listops per_depth)."""
    from textclf.analysis.verdicts import judge, per_slice

    if task.claim is not None:
        judge(summary, records, task.claim.model_dump())
    for column in out.config.data.slice_columns:
        summary[f"per_{column}"] = per_slice(summary, column)


def register_champion(client, summary: dict[str, Any], name: str) -> dict[str, Any]:
    """Register the best variant's model and point alias ``champion`` at it.

    The variant is the summary's ``best_variant`` (chosen on validation data);
    among its seeds, the run with the best value of the same validation
    metric (:mod:`textclf.tracking.champion`, the rule the ``PARENT:VARIANT``
    model references follow too). Test accuracy is never looked at.
    """
    import mlflow

    best = summary["best_variant"]
    if best is None:
        raise TrainingError("--register: no variant has a validation score to choose a champion by.")
    metric = champion.selection_metric(summary)
    best_run = champion.best_seed_run(client, summary["variants"][best]["run_ids"], metric)
    model_uri = champion.model_uri(best_run)
    mv = mlflow.register_model(model_uri, name)
    client.set_registered_model_alias(name, "champion", mv.version)
    client.set_model_version_tag(name, mv.version, "variant", names.display(best, 8000))
    client.set_model_version_tag(name, mv.version, "chosen_by", f"mean {metric} over seeds (validation)")
    return {
        "name": name,
        "version": mv.version,
        "alias": "champion",
        "variant": best,
        "chosen_by": metric,
        "model_uri": model_uri,
    }
