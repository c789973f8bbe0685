"""``textclf train``: one variant end to end, optionally tracked as one MLflow run, its metrics returned."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from textclf.core.cache import StageCache
from textclf.core.errors import TextclfError
from textclf.pipeline.config import Config
from textclf.pipeline.variant import plan, run_variant, trained_key, with_cost

# Keys every --metrics-out file carries (other tools read them).
REQUIRED = ("val_accuracy", "test_accuracy", "test_macro_f1", "params", "train_seconds", "tokens_per_second")


def check_train(
    cfg: Config,
    cache: StageCache,
    *,
    tracking_uri: str | None = "",
    experiment: str = "train",
    output: Path | None = None,
    force: bool = False,
    overwrite: bool = False,
    system_metrics: bool = False,
    **_: Any,  # train_one's other options
):
    """Everything ``textclf train`` refuses before any stage or MLflow run; returns ``cfg``'s plan (or None).

    Called once: by :func:`train_one`, or by the DDP launcher before its ranks start.
    """
    from textclf.models import folder as artifacts
    from textclf.pipeline.resources import check_configs

    if tracking_uri is not None:
        from textclf.core.names import check_experiment_name

        check_experiment_name(experiment)  # MLflow would refuse it only once the data is prepared
        if system_metrics:
            from textclf.tracking.runs import require_system_metrics

            require_system_metrics()
    if output is not None:
        artifacts.check_output(output, force=force or overwrite)
    # Planned once for the cache look-up and the run. An init_from source resolves in the run, once the store is
    # set up; a plan that cannot be made yet says why there.
    p = None
    if cfg.kind == "tfidf" or not cfg.encoder.init_from:
        with contextlib.suppress(TextclfError):
            p = plan(cfg, cache)
    if force or trained_key(cfg, cache, p=p) is None:  # a model that cannot fit is refused now
        check_configs([(None, cfg)])
    cache.check_writable()  # even a cached model takes lock files there
    return p


def train_one(
    cfg: Config,
    *,
    cache: StageCache,
    tracking_uri: str | None = "",
    experiment: str = "train",
    output: Path | None = None,
    force: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    reuse_upstream: bool = False,
    system_metrics: bool = False,
    checked: bool = False,
) -> dict[str, Any]:
    """Train ``cfg``; returns the metrics dict (with ``model_dir`` and, when tracked, ``run_id``).

    ``tracking_uri=None`` disables MLflow; ``""`` uses the default store.
    ``system_metrics``: CPU/memory sampled into the run (needs psutil: checked first).
    Each epoch's metrics are logged as the epoch ends.
    ``reuse_upstream``: see :func:`textclf.pipeline.variant.run_variant`. ``output``
    receives a copy of the model folder: checked before any work (a model
    folder there is replaced only with ``force`` or ``overwrite``; any other
    non-empty folder never) and written atomically, inside the MLflow run, so
    a failed copy fails the run. ``checked``: :func:`check_train` ran already.
    """
    from textclf.core.logs import progress_logger
    from textclf.models import folder as artifacts

    replace = force or overwrite
    p = None
    if not checked:
        p = check_train(
            cfg,
            cache,
            tracking_uri=tracking_uri,
            experiment=experiment,
            output=output,
            force=force,
            overwrite=overwrite,
            system_metrics=system_metrics,
        )
    log_fn = None if quiet else progress_logger()
    run_id = None

    def run(on_epoch=None):
        out = run_variant(cfg, cache, force=force, log_fn=log_fn, reuse_upstream=reuse_upstream, on_epoch=on_epoch, p=p)
        out = with_cost(out, cache, force=force)
        if output is not None:
            artifacts.copy_model(out.model_dir, output, force=replace)
        return out

    if tracking_uri is None:
        out = run()
    else:
        from mlflow.tracking import MlflowClient

        from textclf.pipeline.record import log_child
        from textclf.tracking import runs, store

        store.setup(tracking_uri or None)
        exp_id = store.experiment_id(experiment)
        runs.mark_stale_runs(exp_id)
        tags = {**runs.base_tags(), "textclf.role": "train", "textclf.kind": cfg.kind}
        if cfg.kind == "neural":
            e = cfg.encoder
            tags.update(
                cell=e.cell, layers=str(e.layers), bidirectional=str(e.bidirectional).lower(), seed=str(cfg.train.seed)
            )
        client = MlflowClient()
        with runs.start_run(experiment_id=exp_id, tags=tags, system_metrics=system_metrics) as run_:
            live = runs.LiveMetrics(client, run_.info.run_id)
            out = run(on_epoch=live)
            examples = out.data.value.splits["test"]["text"][:3]
            log_child(client, run_.info.run_id, out, exp_id=exp_id, example_texts=examples, live_epochs=live.logged)
            run_id = run_.info.run_id
    model_dir = Path(output) if output is not None else out.model_dir
    result: dict[str, Any] = {k: out.metrics.get(k) for k in REQUIRED}
    result.update({k: v for k, v in out.metrics.items() if k not in result})
    coverage = out.extra.get("embedding_coverage") or {}
    result.update({f"embedding_{k}": v for k, v in coverage.items()})
    # Without --output the folder is a stage-cache entry: `textclf cache prune` may delete it.
    result.update(
        model_dir=str(Path(model_dir).resolve()),
        model_in_cache=output is None,
        run_id=run_id,
        cached=out.cached,
        kind=cfg.kind,
    )
    return result
