"""What MLflow records of a tuning search: one tuning run per variant, one nested run per trial.

::

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
from typing import Any

from textclf.core import names
from textclf.pipeline.spec import Variant
from textclf.tracking import runs

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
