"""``textclf run``, ``train``, ``report`` and ``ui``: run a comparison or one variant, and look at the results."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from textclf.cli.common import (
    CacheOpt,
    ParamsOpt,
    QuietOpt,
    SetOpt,
    TrackOpt,
    open_cache,
    out,
)
from textclf.core.logs import setup_logging

SystemOpt = Annotated[
    bool,
    typer.Option(
        "--system-metrics",
        help="Log CPU / memory / disk / network to MLflow while it runs (the 'system' extra: psutil).",
    ),
]


def run(
    pipeline: Annotated[
        Optional[str], typer.Argument(help="Pipeline path or name in pipelines/ (default: compare).")
    ] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
    cache_dir: CacheOpt = None,
    tracking_uri: TrackOpt = None,
    variant: Annotated[
        Optional[list[str]], typer.Option("--variant", help="Run only these variants (repeatable).")
    ] = None,
    seeds: Annotated[
        Optional[str], typer.Option("--seeds", help="Training seeds instead of the pipeline's, e.g. --seeds 4,5,6.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage, ignoring the cache.")] = False,
    new_run: Annotated[
        bool,
        typer.Option(
            "--new-run",
            help="Record a new parent run even when nothing changed since the last one (by default its results are shown).",
        ),
    ] = False,
    summary_out: Annotated[Optional[Path], typer.Option("--summary-out", help="Also write summary.json here.")] = None,
    register: Annotated[
        Optional[str],
        typer.Option("--register", help="Register the best variant's model under this name (alias 'champion')."),
    ] = None,
    system_metrics: SystemOpt = False,
    executor: Annotated[str, typer.Option("--executor", help="local (default) or ray.")] = "local",
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            help="Parallel local worker processes: a number, or auto (default) = one single-threaded worker per core.",
        ),
    ] = "auto",
    ray_address: Annotated[
        Optional[str], typer.Option("--ray-address", help="Ray cluster address (default: start a local instance).")
    ] = None,
    cpus_per_task: Annotated[float, typer.Option("--cpus-per-task")] = 1.0,
    gpus_per_task: Annotated[float, typer.Option("--gpus-per-task")] = 0.0,
    quiet: QuietOpt = False,
) -> None:
    """Run a pipeline: every variant × seed through prepare → tokenize → embed → train → evaluate → compare."""
    from textclf.cli.progress import progress
    from textclf.pipeline.experiment import run_pipeline
    from textclf.pipeline.spec import load_pipeline

    setup_logging(quiet)  # the run's options are checked by run_pipeline, before any run or stage
    pipe = load_pipeline(pipeline, overrides=set_, params_file=params, only=variant, seeds=_seed_list(seeds))
    with progress(not quiet, None if quiet else _event_printer) as on_event:
        result = run_pipeline(
            pipe,
            cache=open_cache(cache_dir),
            tracking_uri=tracking_uri,
            force=force,
            register=register,
            system_metrics=system_metrics,
            executor=executor,
            jobs=jobs,
            ray_address=ray_address,
            cpus_per_task=cpus_per_task,
            gpus_per_task=gpus_per_task,
            quiet=quiet,
            new_run=new_run,
            on_event=on_event,
        )
    from textclf.analysis.report import answer_lines, render_answer, render_table

    for task, s in (result.summary.get("tasks") or {None: result.summary}).items():
        if task:
            out.print(f"[bold]{_plain(task)}[/]")
        if result.unchanged:  # nothing ran, so nothing warned: repeat what the recorded run was warned about
            from rich.markup import escape as plain

            for w in (s.get("data") or {}).get("warnings") or []:
                out.print(f"[yellow]warning[/]: {plain(w)}", highlight=False, soft_wrap=True)
        if answer_lines(s):
            out.print(render_answer(s), highlight=False)
        out.print(render_table(s))
        _print_tuning(s)
        if s.get("verdict"):
            from rich.markup import escape

            out.print(
                f"claim: {escape(s['claim'])}\n  [bold]{s['verdict']}[/]: {escape(s['verdict_reason'])}",
                highlight=False,
            )
    if not quiet:
        out.print(f"report: MLflow parent run {result.parent_run_id} (artifacts/comparison); `textclf ui` to browse")
        _print_models(result.summary, result.parent_run_id)
    if summary_out:
        summary_out.parent.mkdir(parents=True, exist_ok=True)
        summary_out.write_text(json.dumps(result.summary, indent=1))


def train(
    pipeline: Annotated[
        Optional[str], typer.Argument(help="Optional pipeline to take the config from (with --variant).")
    ] = None,
    variant: Annotated[
        Optional[str], typer.Option("--variant", help="Variant of PIPELINE to train (default: its first).")
    ] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
    cache_dir: CacheOpt = None,
    tracking_uri: TrackOpt = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Copy the trained model folder here (a new or empty folder; a textclf model folder only with --overwrite or --force).",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace --output if it holds a textclf model (other folders are never replaced)."
        ),
    ] = False,
    metrics_out: Annotated[
        Optional[Path], typer.Option("--metrics-out", help="Write final metrics as JSON here.")
    ] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment of the run.")] = "train",
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute every stage, ignoring the cache (implies --overwrite).")
    ] = False,
    ddp: Annotated[
        bool,
        typer.Option(
            "--ddp",
            help="Train data-parallel (DDP). Under torchrun this is automatic; otherwise starts --nproc-per-node processes here.",
        ),
    ] = False,
    nproc_per_node: Annotated[
        Optional[int],
        typer.Option("--nproc-per-node", help="Processes for --ddp outside torchrun (default: visible GPUs, else 2)."),
    ] = None,
    system_metrics: SystemOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train one variant end to end (prepare → tokenize → embed → train → evaluate) and print its metrics."""
    from textclf.pipeline.config import load_config
    from textclf.pipeline.spec import load_pipeline
    from textclf.pipeline.train_one import train_one

    setup_logging(quiet)  # the options are checked by train_one (or the DDP launcher), before any stage or run
    if pipeline:
        pipe = load_pipeline(pipeline, overrides=set_, params_file=params, only=[variant] if variant else None)
        cfg = next(iter(pipe.variants.values())).config
    else:
        if variant:
            raise typer.BadParameter("--variant needs a PIPELINE argument")
        cfg = load_config(overrides=set_, params_file=params)
        if cfg.encoder.match_params:
            from textclf.core.errors import ConfigError

            raise ConfigError(
                f"encoder.match_params={cfg.encoder.match_params!r} names another variant of a pipeline; a single training "
                "has none to match. Use it in a pipeline (textclf train PIPELINE --variant NAME), or set encoder.hidden_size."
            )
    from textclf.pipeline.ddp import train_data_parallel
    from textclf.training.ddp import under_torchrun

    kwargs = dict(
        cache=open_cache(cache_dir),
        tracking_uri=None if no_track else (tracking_uri or ""),
        experiment=experiment,
        output=output,
        force=force,
        overwrite=overwrite,
        quiet=quiet,
        system_metrics=system_metrics,
    )
    if ddp or under_torchrun():
        result = train_data_parallel(cfg, nproc_per_node=nproc_per_node, **kwargs)
        if result is None:  # a rank other than 0: rank 0 reports
            return
    else:
        from textclf.cli.progress import progress

        with progress(not quiet):
            result = train_one(cfg, **kwargs)
    _print_metrics(result, cfg.embedding.pretrained)
    if metrics_out:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        metrics_out.write_text(json.dumps(result, indent=1))


def report(
    run_id: Annotated[
        Optional[str], typer.Argument(help="Parent run id of a `textclf run` (default: the latest).")
    ] = None,
    tracking_uri: TrackOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of the table.")] = False,
    html: Annotated[
        Optional[Path],
        typer.Option(
            "--html", help="Write the report as one self-contained HTML file here (figures and styles inline)."
        ),
    ] = None,
) -> None:
    """Re-print the comparison table of a past `textclf run` (or write its HTML report with --html)."""
    from textclf.analysis.report import answer_lines, render_answer, render_table
    from textclf.tracking.past import load_summary

    if html is not None:
        _write_html_report(run_id, tracking_uri, html)
        return
    summary = load_summary(run_id, tracking_uri)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(f"pipeline {summary.get('pipeline')} · parent run {summary.get('parent_run_id')}")
        for task, s in (summary.get("tasks") or {None: summary}).items():
            if task:
                out.print(f"[bold]{_plain(task)}[/]")
            if answer_lines(s):
                out.print(render_answer(s), highlight=False)
            out.print(render_table(s))
            _print_tuning(s)
        _print_models(summary, summary.get("parent_run_id"))


def _write_html_report(run_id: str | None, tracking_uri: str | None, html: Path) -> None:
    import os
    import tempfile

    from textclf.analysis.html_report import write_html
    from textclf.core.errors import TextclfError
    from textclf.tracking.past import download_comparison

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # three downloads, not three progress bars
    if html.is_dir():
        raise TextclfError(f"--html {html}: is a folder; give a file name, e.g. --html {html / 'report.html'}")
    with tempfile.TemporaryDirectory() as tmp:
        past = download_comparison(run_id, tmp, tracking_uri)
        summary = past["summary"]
        path = write_html(
            html,
            summary,
            Path(past["comparison_dir"]),
            title=f"textclf · {summary.get('pipeline', 'comparison')}",
            configs=past["configs"],
            environment=past["environment"],
        )
    out.print(f"report: {path} (parent run {summary.get('parent_run_id')}; one self-contained file)")


def ui(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackOpt = None,
    browser: Annotated[
        bool,
        typer.Option(
            "--browser/--no-browser", help="Open the latest run's view in a web browser, where one is available."
        ),
    ] = True,
) -> None:
    """Start the MLflow UI on the project's store, bound to 127.0.0.1, and print the latest run's view URL."""
    import subprocess

    from textclf.tracking import store

    uri = store.resolve_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
    out.print(f"MLflow UI for {uri}: {base}  (Ctrl-C to stop)")
    url = latest_view_url(uri, base)
    if url:
        out.print(f"latest run, variants side by side: {url}", soft_wrap=True)
    try:
        proc = subprocess.Popen(cmd)
        if browser and url and _has_browser():
            _open_when_up(url, port, proc)
        raise typer.Exit(proc.wait())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def latest_view_url(uri: str, base: str) -> str | None:
    """The view URL of the latest finished `textclf run` in the store (None: no run, or its view was not stored)."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return None  # an empty store: no run to show (and no database to create just for asking)
    from mlflow.tracking import MlflowClient

    from textclf.core.errors import TextclfError
    from textclf.tracking import view
    from textclf.tracking.past import latest_parent_run

    try:
        run_id = latest_parent_run(uri)
    except TextclfError:
        return None
    client = MlflowClient()
    exp_id = client.get_run(run_id).info.experiment_id
    return view.view_url(exp_id, run_id, base) if view.has_view(client, exp_id, run_id) else None


def _has_browser() -> bool:
    """A browser a person can see: a desktop session (a display on Linux), not a headless server or CI."""
    import os
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _open_when_up(url: str, port: int, proc, wait_s: float = 30.0) -> None:
    """Open ``url`` once the UI answers on ``port`` (it takes a few seconds to start); give up if it exits or never answers."""
    import socket
    import time
    import webbrowser

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                webbrowser.open(url)
                return
        time.sleep(0.3)


# --------------------------------------------------------------------------- printing


def _event_printer(print_: Callable[..., None]) -> Callable[[str, dict], None]:
    return lambda kind, info: _print_event(kind, info, print_)


def _plain(text) -> str:
    """A user's name (a variant "x[/]", a task) printed as it is, never read as rich markup."""
    from rich.markup import escape

    return escape(str(text))


def _print_event(kind: str, info: dict, print_: Callable[..., None] = out.print) -> None:
    info = {k: _plain(v) if k in ("pipeline", "variant") else v for k, v in info.items()}
    if kind == "start":
        print_(
            f"[bold]{info['pipeline']}[/]: {info['variants']} variants × {info['seeds']} seeds → MLflow {info['uri']} (parent run {info['parent_run_id']})"
        )
    elif kind == "unchanged":
        print_(
            f"[bold]{info['pipeline']}[/]: nothing changed since parent run {info['parent_run_id']} (MLflow {info['uri']}): "
            "its results follow. --new-run records them again, --force retrains."
        )
    elif kind == "trained":  # side-by-side trainings: accuracy follows once each model has been timed alone
        print_(
            f"  {'[dim]cached[/]' if info['cached'] else '[green]trained[/]'} {info['variant']:<16} seed {info['seed']}"
        )
    elif kind == "tuning":
        print_(
            f"tuning: {info['trials']} trials per variant × {info['variants']} variants, by {info['metric']} (pruner {info['pruner']})"
        )
    elif kind == "trial":
        value = f"{info['value']:.4f}" if isinstance(info.get("value"), (int, float)) else "n/a"
        how = {
            "complete": "[green]trained[/]" if not info["cached"] else "[dim]cached[/]",
            "pruned": "[yellow]pruned[/]",
            "failed": "[red]failed[/]",
        }[info["state"]]
        print_(
            f"  {how} {info['variant']:<16} trial {info['number']:>3}: {info['metric']} {value} ({info['epochs']} epochs)"
        )
    elif kind == "round":  # seeds: {min, max}
        print_(
            f"look {info['look']} of {info['looks']}: contrasts of {', '.join(info['variants'])} still inconclusive, "
            f"{info['trainings']} more seed trainings"
        )
    elif kind == "task":
        acc = info.get("test_accuracy")
        acc_text = f"{acc:.4f}" if isinstance(acc, (int, float)) else "n/a"
        print_(
            f"  {'[dim]cached[/]' if info['cached'] else '[green]trained[/]'} {info['variant']:<16} seed {info['seed']}: test accuracy {acc_text}"
        )


def _print_models(summary: dict, parent_run_id: str | None) -> None:
    """The "Use a model" block: how to predict with the best variant, and each variant's model reference.

    Friendly references (``PARENT:best``, ``PARENT:VARIANT``) name a variant of
    a single-task comparison; every variant's MLflow model URI (the seed best
    on validation, as ``--register`` picks) is printed beside it.
    """
    from rich.markup import escape

    from textclf.tracking.past import variant_models

    tasks = summary.get("tasks") or {None: summary}
    lines = []
    for task, s in tasks.items():
        # recorded by the run (an unchanged re-run then needs no MLflow import); else looked up
        models = s.get("models") or variant_models(s)
        if not models:
            continue
        best = s.get("best_variant")
        friendly = task is None and parent_run_id
        if task:
            lines.append(f"  [bold]{escape(task)}[/]")
        if best in models:
            ref = f"{parent_run_id}:best" if friendly else models[best]["model_uri"]
            lines.append(
                f"  textclf predict --model {escape(ref)} --input FILE   [dim](best on validation: {escape(best)})[/]"
            )
        width = max(map(len, models))
        for name, m in models.items():
            label = f"{parent_run_id}:{name}  " if friendly else ""
            star = " *" if name == best else "  "
            lines.append(
                f"  {escape(name):<{width}}{star} {escape(label)}{escape(m['model_uri'])}  [dim](run {m['run_id']})[/]"
            )
    if lines:
        out.print("Use a model (predict / embed / export --model REF; * best on validation):", highlight=False)
        for line in lines:
            out.print(line, highlight=False)


def _print_tuning(summary: dict) -> None:
    from textclf.analysis.tuning import render_table as tuning_table

    table = tuning_table(summary)
    if table is not None:
        out.print(table)


def _print_metrics(result: dict, pretrained: str | None) -> None:
    from rich.table import Table

    t = Table(title="metrics", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in (
        "val_accuracy",
        "test_accuracy",
        "test_macro_f1",
        "test_log_loss",
        "test_roc_auc",
        "test_ece",
        "params",
        "train_seconds",
        "tokens_per_second",
        "latency_p50_ms",
        "texts_per_s_b256",
        "generalization_gap",
    ):
        v = result.get(k)
        if v is not None:
            t.add_row(k, f"{v:,.4f}" if isinstance(v, float) and abs(v) < 1000 else f"{v:,.0f}")
    out.print(t)
    coverage = {k[len("embedding_") :]: v for k, v in result.items() if k.startswith("embedding_")}
    if coverage and pretrained:
        out.print(_coverage_line(pretrained, coverage))
    run_id = result.get("run_id")
    cached = "  (cached)" if result.get("cached") else ""
    if not result.get("model_in_cache"):
        out.print(
            f"model: {result['model_dir']}" + (f"  ·  MLflow run {run_id}" if run_id else "") + cached, highlight=False
        )
    elif run_id:  # the MLflow model outlives the cache: point there first
        out.print(
            f"model: runs:/{run_id}  (MLflow run {run_id}){cached}\n  its files, {result['model_dir']}, are in the stage cache, "
            "which `textclf cache prune` may delete: use runs:/RUN_ID, or pass --output DIR to keep a copy",
            highlight=False,
        )
    else:
        out.print(
            f"model: {result['model_dir']}{cached}\n  in the stage cache, which `textclf cache prune` may delete: "
            "pass --output DIR to keep a copy",
            highlight=False,
        )


def _coverage_line(pretrained: str, cov: dict) -> str:
    """One line on how well the pretrained vectors fit the vocabulary."""
    parts = [f"{cov['vocab_coverage']:.1%} of the trained vocabulary"]
    if "token_coverage" in cov:
        parts.append(f"{cov['token_coverage']:.1%} of training tokens")
    line = f"embedding: {pretrained} covers {' and '.join(parts)}"
    if cov.get("vocab_extension"):
        line += f"; {cov['vocab_extension']:,} more of its words joined the vocabulary, frozen (embedding.extend_vocab)"
    return line


def _seed_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        seeds = []
    if not seeds:
        from textclf.core.errors import ConfigError

        raise ConfigError(f"--seeds must list integers separated by commas, e.g. --seeds 4,5,6. Got {text!r} instead.")
    from textclf.core.schema import SEED_MAX

    bad = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if bad:
        from textclf.core.errors import ConfigError

        raise ConfigError(
            f"--seeds {text}: seed {bad[0]} is out of range; seeds are integers in [0, {SEED_MAX}] (2**32 - 1), e.g. --seeds 1,2,3."
        )
    return seeds
