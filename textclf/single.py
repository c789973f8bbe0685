"""``textclf train``: one variant end to end, optionally tracked as one MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textclf.cache import StageCache
from textclf.config import Config
from textclf.runner import run_variant

# Keys every --metrics-out file carries (other tools read them).
REQUIRED = ("val_accuracy", "test_accuracy", "test_macro_f1", "params", "train_seconds", "tokens_per_second")


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
    console=None,
    reuse_upstream: bool = False,
) -> dict[str, Any]:
    """Train ``cfg``; returns the metrics dict (with ``model_dir`` and, when tracked, ``run_id``).

    ``tracking_uri=None`` disables MLflow; ``""`` uses the default store.
    ``reuse_upstream``: see :func:`textclf.runner.run_variant`. ``output``
    receives a copy of the model folder: checked before any work (a model
    folder there is replaced only with ``force`` or ``overwrite``; any other
    non-empty folder never) and written atomically, inside the MLflow run, so
    a failed copy fails the run.
    """
    import sys

    from textclf import artifacts

    replace = force or overwrite
    if output is not None:
        artifacts.check_output(output, force=replace)
    log_fn = None if quiet else (lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    run_id = None
    if tracking_uri is None:
        out = run_variant(cfg, cache, force=force, log_fn=log_fn, reuse_upstream=reuse_upstream)
        if output is not None:
            artifacts.copy_model(out.model_dir, output, force=replace)
    else:
        from mlflow.tracking import MlflowClient

        from textclf import tracking
        from textclf.experiment import log_child

        tracking.setup(tracking_uri or None)
        exp_id = tracking.experiment_id(experiment)
        tracking.mark_stale_runs(exp_id)
        tags = {**tracking.base_tags(), "textclf.role": "train", "kind": cfg.kind}
        if cfg.kind == "neural":
            e = cfg.encoder
            tags.update(cell=e.cell, layers=str(e.layers), bidirectional=str(e.bidirectional).lower(), seed=str(cfg.train.seed))
        with tracking.start_run(experiment_id=exp_id, tags=tags) as run:
            out = run_variant(cfg, cache, force=force, log_fn=log_fn, reuse_upstream=reuse_upstream)
            if output is not None:
                artifacts.copy_model(out.model_dir, output, force=replace)
            log_child(MlflowClient(), run.info.run_id, out, exp_id=exp_id, example_texts=out.data.value.splits["test"]["text"][:3])
            run_id = run.info.run_id
    model_dir = Path(output) if output is not None else out.model_dir
    result: dict[str, Any] = {k: out.metrics.get(k) for k in REQUIRED}
    result.update({k: v for k, v in out.metrics.items() if k not in result})
    coverage = out.extra.get("embedding_coverage") or {}
    result.update({f"embedding_{k}": v for k, v in coverage.items()})
    result.update(model_dir=str(Path(model_dir).resolve()), run_id=run_id, cached=out.cached, kind=cfg.kind)
    if console is not None:
        from rich.table import Table

        t = Table(title="metrics", title_justify="left")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k in ("val_accuracy", "test_accuracy", "test_macro_f1", "test_log_loss", "test_roc_auc", "test_ece", "params", "train_seconds", "tokens_per_second", "latency_p50_ms", "texts_per_s_b256", "generalization_gap"):
            v = result.get(k)
            if v is not None:
                t.add_row(k, f"{v:,.4f}" if isinstance(v, float) and abs(v) < 1000 else f"{v:,.0f}")
        console.print(t)
        if coverage:
            console.print(_coverage_line(cfg.embedding.pretrained, coverage))
        console.print(f"model: {model_dir}" + (f"  ·  MLflow run {run_id}" if run_id else "") + ("  (cached)" if out.cached else ""))
    return result


def _coverage_line(pretrained: str, cov: dict[str, Any]) -> str:
    """One line on how well the pretrained vectors fit the vocabulary."""
    parts = [f"{cov['vocab_coverage']:.1%} of the trained vocabulary"]
    if "token_coverage" in cov:
        parts.append(f"{cov['token_coverage']:.1%} of training tokens")
    line = f"embedding: {pretrained} covers {' and '.join(parts)}"
    if cov.get("vocab_extension"):
        line += f"; {cov['vocab_extension']:,} more of its words joined the vocabulary, frozen (embedding.extend_vocab)"
    return line
