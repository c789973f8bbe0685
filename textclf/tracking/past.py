"""Past pipeline runs: find a parent run and read back its comparison."""

from __future__ import annotations

import json
from typing import Any

from textclf.core.errors import TextclfError


def latest_parent_run(tracking_uri: str | None = None) -> str:
    from mlflow.tracking import MlflowClient

    from textclf.tracking import store as tracking

    tracking.setup(tracking_uri)
    client = MlflowClient()
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = (
        client.search_runs(
            exps,
            filter_string="tags.`textclf.role` = 'parent' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if exps
        else []
    )
    if not runs:
        raise TextclfError(
            f"No finished `textclf run` in {tracking.resolve_uri(tracking_uri)}. Run `textclf run` first, or pass --tracking-uri."
        )
    return runs[0].info.run_id


def load_summary(run_id: str | None = None, tracking_uri: str | None = None) -> dict[str, Any]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from textclf.tracking import store as tracking

    tracking.setup(tracking_uri)
    run_id = run_id or latest_parent_run(tracking_uri)
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="comparison/summary.json")
    except MlflowException as exc:
        raise TextclfError(
            f"Run {run_id}: no comparison/summary.json ({str(exc).splitlines()[0]}). Is it the parent run of a finished `textclf run`?"
        ) from None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def variant_models(summary: dict[str, Any], client=None) -> dict[str, dict[str, str]]:
    """Each variant's model in a comparison: ``{variant: {"run_id", "model_uri"}}``.

    Among a variant's seeds, the child run with the best value of the
    comparison's selection metric (``best_variant_metric``, a validation
    metric: test data decides nothing), as ``--register`` picks the champion.
    ``model_uri`` is the run's ``textclf.model_uri`` tag (the logged model, or
    for a cached run the model it reused), else ``runs:/RUN_ID/model``. A run
    the store no longer holds is left out.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from textclf.tracking.champion import best_seed_run, model_uri, selection_metric

    client = client or MlflowClient()
    metric = selection_metric(summary)
    found: dict[str, dict[str, str]] = {}
    for name, entry in (summary.get("variants") or {}).items():
        present = []
        for run_id in entry.get("run_ids") or []:
            try:
                client.get_run(run_id)
            except MlflowException:
                continue
            present.append(run_id)
        if present:
            best = best_seed_run(client, present, metric)
            found[name] = {"run_id": best.info.run_id, "model_uri": model_uri(best)}
    return found


def download_comparison(run_id: str | None, dst: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """A past parent run's comparison for its HTML report: summary, figures folder, variant configs, environment.

    Returns ``{"summary", "comparison_dir", "configs", "environment"}``. A run
    recorded before the summary kept its environment gets what the run's tags
    say (textclf version, host, git commit).
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from textclf.tracking import store as tracking

    tracking.setup(tracking_uri)
    run_id = run_id or latest_parent_run(tracking_uri)
    summary = load_summary(run_id, tracking_uri)
    comparison = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="comparison", dst_path=dst)
    try:
        with open(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="pipeline/resolved_variants.json", dst_path=dst
            ),
            encoding="utf-8",
        ) as fh:
            configs = json.load(fh)
    except (MlflowException, OSError, ValueError):
        configs = None
    env = summary.get("environment")
    if not env:
        tags = MlflowClient().get_run(run_id).data.tags
        env = {
            k: tags[t]
            for k, t in (
                ("textclf", "textclf.version"),
                ("host", "textclf.host"),
                ("git commit", "mlflow.source.git.commit"),
            )
            if tags.get(t)
        }
        env["note"] = "torch, MLflow, device and threads were not recorded by this older run"
    return {"summary": summary, "comparison_dir": comparison, "configs": configs, "environment": env}
