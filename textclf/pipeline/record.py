"""What MLflow records of one (variant, seed): tags, params, per-epoch and final metrics, datasets, artifacts, the model.

A run whose result came from the stage cache is recorded in full (same
params, metrics and small artifacts) and tagged ``textclf.cached=true`` and
``textclf.cached_from=<run that computed it>``; its model is not logged
again: the run is linked to the source run's MLflow LoggedModel as one of its
outputs (``MlflowClient.log_outputs``), so the run page's "Logged models" and
``--register`` find it, and ``textclf.model_uri`` names it (``models:/m-…``).

Per-epoch metrics are logged while training runs where the training happens
inside the child run (the inline executor, ``textclf train``):
:class:`~textclf.tracking.runs.LiveMetrics` logs each epoch when it ends, and
:func:`log_child` then adds only the epochs it did not see (an epoch trained
by an earlier, interrupted process, or a result from the cache or a worker),
at the time each epoch ended when the train stage recorded it.

A tuning search (:mod:`textclf.pipeline.tune`) is recorded as one tuning run per variant and one nested
run per trial (:class:`TuneRecorder`)::


    parent (textclf run)
    ├── <variant>-tune          tags textclf.role=tuning, variant; the space, the best trial, E[best] per k
    │   ├── <variant>-trial-0   tags textclf.role=trial, variant, textclf.trial=0; params, per-epoch metrics
    │   └── <variant>-trial-1   pruned: status KILLED, textclf.pruned=true, textclf.optuna_state=PRUNED
    └── <variant>-s1 ...        the final (variant, seed) children, tagged textclf.tune_best_params

Trial runs carry the full flattened config as params (the sampled keys
included), so MLflow's parallel-coordinates chart reads them as it reads the
children. A trial finished by an earlier textclf process is recorded again
under the new parent, tagged ``textclf.cached=true`` and ``textclf.cached_from=<its first run>``.
Trial runs do not log models and carry no ``textclf.stage_key`` tag: a final child
reusing a trial's training logs the model itself. Runs are written through the
client (several tuning runs are open at once); an interruption ends the open
ones KILLED, and :func:`textclf.tracking.runs.mark_stale_runs` does it after a
SIGKILL.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from textclf.analysis.compare import RunRecord
from textclf.core import names
from textclf.pipeline.spec import Variant
from textclf.pipeline.variant import VariantOutput
from textclf.tracking import runs, store
from textclf.tracking.models import log_model


def child_tags(variant: Variant, seed: int, out: VariantOutput | None = None) -> dict[str, str]:
    """The tags a child run starts with (bare names only where the MLflow UI groups by them: see tracking.runs)."""
    cfg = variant.config
    tags = {
        "variant": names.display(variant.name, 8000),
        "seed": str(seed),
        "textclf.kind": cfg.kind,
        "textclf.role": "child",
    }
    if cfg.kind == "neural":
        tags.update(
            cell=cfg.encoder.cell, layers=str(cfg.encoder.layers), bidirectional=str(cfg.encoder.bidirectional).lower()
        )
        if cfg.encoder.init_from:
            tags["textclf.init_from"] = cfg.encoder.init_from
    return tags


def _dataset_source(source: str):
    """The MLflow DatasetSource for where a split came from (``hf:NAME[split]`` names its split)."""
    from textclf.data.sources import source_of

    spec, _, split = source.partition("[")
    return source_of(spec).mlflow_source(spec, split.rstrip("]"))


# (split, fingerprint, source) -> MLflow dataset entity. MLflow infers a
# dataset's schema by visiting every value (docs/benchmarks.md, "A cached re-run");
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
                d.splits[split],
                targets="label",
                name=split,
                digest=d.fingerprints[split],
                source=_dataset_source(source),
            )
            _DATASET_ENTITIES[key] = ds._to_mlflow_entity()
        inputs.append(
            DatasetInput(dataset=_DATASET_ENTITIES[key], tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)])
        )
    # One store transaction for the three splits.
    store.retry(MlflowClient().log_inputs, run_id, datasets=inputs)


def log_child(
    client,
    run_id: str,
    out: VariantOutput,
    *,
    exp_id: str,
    example_texts: list[str],
    live_epochs: set[int] | frozenset = frozenset(),
) -> dict[str, str]:
    """Params, per-epoch and final metrics, artifacts and the model (logged, or linked when cached).

    ``live_epochs``: epochs whose metrics were already logged while training ran.
    """
    import mlflow

    final = {k: v for k, v in out.metrics.items() if isinstance(v, (int, float))}
    final.update({f"embedding_{k}": v for k, v in (out.extra.get("embedding_coverage") or {}).items()})
    log_datasets(out, run_id)
    tags = {"textclf.stage_key": out.stage_key, "textclf.cached": str(out.cached).lower()}
    tags.update({f"textclf.{k}": v for k, v in out.extra.get("lineage_tags", {}).items()})
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
    source = runs.find_source_run(exp_id, out.stage_key) if out.cached else None
    source_model = _model_of(client, source) if source and source != run_id else None
    last_epoch = max((int(row["epoch"]) for row in out.history), default=0)
    if source_model is not None:
        from mlflow.entities import LoggedModelOutput

        tags["textclf.cached_from"] = source
        tags["textclf.model_uri"] = f"models:/{source_model}"
        store.retry(client.log_outputs, run_id, [LoggedModelOutput(model_id=source_model, step=last_epoch)])
        model_id = None  # the model already holds the metrics of the run that trained it
    else:
        info = log_model(out.model_dir, example_texts, step=last_epoch)
        tags["textclf.model_uri"] = info.model_uri
        tags["textclf.cached"] = "false" if not source else tags["textclf.cached"]
        model_id = info.model_id  # the Models tab compares logged models by these
    history = [row for row in out.history if int(row["epoch"]) not in live_epochs]
    metrics = runs.history_metrics(history, out.extra.get("epoch_times")) + runs.final_metrics(
        final, out.history, model_id=model_id
    )
    runs.log_batch(client, run_id, params=runs.run_params(out.config.kind, out.config.flat()), metrics=metrics)
    mlflow.set_tags(tags)
    return tags


def _model_of(client, run_id: str) -> str | None:
    """The LoggedModel id (``m-…``) a run logged, from its ``textclf.model_uri`` tag (``model_uri`` before the namespace)."""
    tags = client.get_run(run_id).data.tags
    uri = tags.get("textclf.model_uri") or tags.get("model_uri") or ""
    model_id = uri[len("models:/") :] if uri.startswith("models:/m-") else None
    return model_id


def run_record(variant: Variant, seed: int, out: VariantOutput, run_id: str):
    cfg = out.config
    y, pred = out.test_arrays()
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
        pred=pred,
        run_id=run_id,
        cached=out.cached,
    )


def data_info(out: VariantOutput) -> dict[str, Any]:
    from textclf.pipeline.data_stages import data_warning_messages

    d = out.data.value
    return {
        "sources": d.sources,
        "fingerprints": d.fingerprints,
        "rows": {s: len(d.splits[s]) for s in ("train", "validation", "test")},
        "labels": d.label_names,
        # what was said before training, kept with the comparison (textclf.data.checks)
        "warnings": [m for _, m in data_warning_messages(out.config, out.data, out.tokenized)],
    }


def comparison_inputs(first: VariantOutput, outputs: list[VariantOutput]) -> dict[str, Any]:
    """What :func:`textclf.analysis.compare.compare` needs besides the runs, for one task's test set.

    Lengths are token counts of the shared tokenizer (the first neural
    variant's; whitespace words when every variant is TF-IDF); the best variant
    is chosen by the validation metric the variants stopped early on.
    """
    import numpy as np

    data = first.data.value
    neural = next((o for o in outputs if o.tokenized is not None), None)
    if neural is not None:
        lengths = neural.tokenized.value.splits["test"].lengths
    else:
        lengths = np.array([len(t.split()) for t in data.texts("test")])
    metric = neural.config.train.early_stopping_metric if neural is not None else "accuracy"
    return {
        "label_names": first.label_names,
        "select_by": f"val_{metric}" if metric != "loss" else "val_accuracy",
        "lengths": lengths,
        "texts": data.texts("test"),
        "slice_columns": {c: data.slice_values("test", c) for c in first.config.data.slice_columns},
    }


def log_disagreements(summary: dict[str, Any], artifact_file: str) -> None:
    """The texts each variant gets right and the baseline wrong (and the reverse), as an MLflow table on the parent run."""
    import mlflow

    rows: dict[str, list] = {
        k: [] for k in ("variant", "direction", "text", "label", "variant_prediction", "baseline_prediction")
    }
    for name, v in summary["variants"].items():
        for direction, examples in ((v.get("disagreements") or {}).get("examples") or {}).items():
            for e in examples:
                for key, value in (
                    ("variant", name),
                    ("direction", direction),
                    ("text", e["text"]),
                    ("label", e["label"]),
                    ("variant_prediction", e["variant"]),
                    ("baseline_prediction", e["baseline"]),
                ):
                    rows[key].append(value)
    if rows["variant"]:
        mlflow.log_table(data=rows, artifact_file=artifact_file)


def describe_parent(pipe, summaries: dict[str | None, dict[str, Any]], view_url: str | None = None) -> str:
    """The parent run's description (Markdown, shown on its MLflow page): the comparison table and the best variant.

    ``view_url``: the run's MLflow view (children grouped by variant, charts), linked first;
    its address is the tracking server's, or the one ``textclf ui`` serves.
    """
    from textclf.analysis.report import answer_lines, caption, markdown_table

    parts = [f"**{pipe.name}**" + (f": {pipe.spec.description}" if pipe.spec.description else ""), ""]
    links = ["the report with every figure: artifact `report.html`"]
    if view_url:
        links.insert(
            0, f"[the variants side by side]({view_url}) (grouped by variant, with charts; served by `textclf ui`)"
        )
    parts += ["Open " + " · ".join(links), ""]
    for task, s in summaries.items():
        if task:
            parts += [f"### {task}", ""]
        # The answer first: what each factor buys, its verdict and cost.
        parts += [f"- {line}" for line in answer_lines(s)] + ([""] if answer_lines(s) else [])
        parts += [markdown_table(s), "", f"*{caption(s)}*", ""]
        if s.get("best_variant"):
            parts += [f"Best variant: **{s['best_variant']}** — {s['best_variant_by']}.", ""]
        if (s.get("tuning") or {}).get("verdict"):
            parts += [f"Tuned with {s['tuning']['trials']} trials per variant. {s['tuning']['verdict']}", ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- tuning

STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


class TuneRecorder:
    def __init__(self, client, exp_id: str, parent_id: str) -> None:
        self.client, self.exp_id, self.parent_id = client, exp_id, parent_id
        self.open: set[str] = set()

    def _create(self, name: str, parent: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.exp_id, run_name=name, tags={**runs.base_tags(), "mlflow.parentRunId": parent, **tags}
        )
        return run.info.run_id

    def start_tuning(self, variant: Variant, spec, space: dict[str, Any], study_key: str) -> str:
        """The variant's tuning run, nested under the parent; it stays open until :meth:`finish_tuning`."""
        tags = {"textclf.role": "tuning", "variant": names.display(variant.name, 8000), "textclf.study_key": study_key}
        if variant.task:
            tags["textclf.task"] = names.display(variant.task, 8000)
        run_id = self._create(names.display(f"{variant.key}-tune"), self.parent_id, tags)
        self.open.add(run_id)
        params = {
            "tune.trials": spec.trials,
            "tune.metric": spec.metric,
            "tune.pruner": spec.pruner,
            "tune.space": json.dumps({k: d.to_dict() for k, d in space.items()})[:6000],
        }
        runs.log_batch(self.client, run_id, params=params)
        return run_id

    def trial_run(self, tuning_id: str, variant: Variant, rec, config, metric: str) -> str:
        """One trial: params, per-epoch metrics (step = epoch), its value; ended FINISHED, KILLED (pruned) or FAILED."""
        tags = {
            "textclf.role": "trial",
            "variant": names.display(variant.name, 8000),
            "textclf.trial": str(rec.number),
            "textclf.optuna_state": rec.state.upper(),
            "textclf.pruned": str(rec.state == "pruned").lower(),
            "textclf.cached": str(rec.cached).lower(),
            "textclf.tune_params": json.dumps(rec.params, sort_keys=True)[:5000],
        }
        if variant.task:
            tags["textclf.task"] = names.display(variant.task, 8000)
        if rec.cached and rec.run_id:
            tags["textclf.cached_from"] = rec.run_id
        if rec.train_key:
            tags["textclf.train_key"] = rec.train_key
        if rec.error:
            tags["textclf.error"] = rec.error[:5000]
        run_id = self._create(names.display(f"{variant.key}-trial-{rec.number}"), tuning_id, tags)
        final = {"train_seconds": rec.train_seconds, "epochs_trained": float(rec.epochs)}
        if (
            rec.value is not None
        ):  # the trial's value shows as the run's metric (a pruned trial's best before it stopped)
            final[metric] = rec.value
        # The curve keeps one value per epoch; the trial's value goes in as final_<metric> (see runs.final_metrics).
        metrics = runs.history_metrics(rec.history) + runs.final_metrics(final, rec.history)
        params = config.flat()
        if rec.state == "failed":  # a refused combination comes with the variant's config: show what was sampled
            params.update(rec.params)
        runs.log_batch(self.client, run_id, params=runs.flat_params(params), metrics=metrics)
        self.client.set_terminated(run_id, status=STATUS[rec.state])
        return run_id

    def finish_tuning(self, tuned) -> None:
        """The search's outcome on the tuning run: the best trial and the expected best value after k trials."""
        from mlflow.entities import Metric

        from textclf.analysis.tuning import tuning_entry

        entry = tuning_entry(tuned)
        metrics = [
            Metric(key="expected_max_val", value=v, timestamp=0, step=k)
            for k, v in enumerate(entry["expected_max_val"], start=1)
        ]
        metrics += [
            Metric(key=k, value=float(entry[k]), timestamp=0, step=0)
            for k in ("best_val", "pruned", "train_seconds", "epochs")
        ]
        runs.log_batch(self.client, tuned.run_id, metrics=metrics)
        self.client.set_tag(tuned.run_id, "textclf.best_trial", str(tuned.best.number))
        self.client.set_tag(
            tuned.run_id, "textclf.tune_best_params", json.dumps(tuned.best.params, sort_keys=True)[:5000]
        )
        self.client.set_terminated(tuned.run_id, status="FINISHED")
        self.open.discard(tuned.run_id)

    def close_open(self) -> None:
        """Runs still open when the search stops early (Ctrl-C, an error): ended KILLED."""
        for run_id in list(self.open):
            try:
                self.client.set_terminated(run_id, status="KILLED")
            except Exception:  # noqa: BLE001 - the original error is what the user needs to see
                pass
            self.open.discard(run_id)


def best_tags(tuned) -> dict[str, str]:
    """Tags of a final (variant, seed) child whose config is the tuned one."""
    tags = {
        "textclf.tuned": "true",
        "textclf.tune_best_params": json.dumps(tuned.best.params, sort_keys=True)[:5000],
        "textclf.tune_best_trial": str(tuned.best.number),
        "textclf.tune_study_key": tuned.study_key,
    }
    if tuned.run_id:
        tags["textclf.tune_run"] = tuned.run_id
    return tags
