"""Which run stands for a variant: among its seeds, the best on the selection metric (validation data).

One rule for every place that turns "the variant" into "a model": ``textclf
run --register`` registers that run's model, and the references
``PARENT_RUN_ID:VARIANT`` / ``PARENT_RUN_ID:best`` / ``best``
(:mod:`textclf.tracking.refs`) load it. The selection metric is the one the
comparison chose the best variant by (``best_variant_metric`` in
summary.json, always higher-is-better); test data is never looked at.
"""

from __future__ import annotations

from typing import Any

DEFAULT_METRIC = "val_accuracy"


def selection_metric(summary: dict[str, Any]) -> str:
    """The metric a (one-task) summary chose its best variant by."""
    return summary.get("best_variant_metric") or DEFAULT_METRIC


def best_seed_run(client, run_ids: list[str], metric: str):
    """The run among ``run_ids`` with the highest ``metric``; the first listed wins a tie; a run without it ranks last."""
    runs = [client.get_run(rid) for rid in run_ids]
    return max(runs, key=lambda r: r.data.metrics.get(metric, float("-inf")))


def model_uri(run) -> str:
    """The model a child run stands for: the LoggedModel it logged, or, for a cached run, the one it links to."""
    # registering or downloading runs:/ID/model of a cached run finds no artifacts there
    return run.data.tags.get("textclf.model_uri") or f"runs:/{run.info.run_id}/model"
