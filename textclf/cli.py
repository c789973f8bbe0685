"""The ``textclf`` command line: thin wrappers over the library.

Every verb maps onto a library call; expected failures (``TextclfError``) are
printed as one clear message with exit code 2 (1 for a diverged training),
and only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from textclf.errors import TextclfError

app = typer.Typer(
    name="textclf",
    help="Compare RNN, GRU, LSTM, stacked and bidirectional text classifiers on your data, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)
data_app = typer.Typer(help="Look at a data source before training on it.", no_args_is_help=True)
cache_app = typer.Typer(help="List or prune the stage cache.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")

console = Console(stderr=True)
# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)

SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a config key: --set encoder.layers=2 (repeatable).")]
ParamsOpt = Annotated[Optional[Path], typer.Option("--params", help="params.yaml to use (default: ./params.yaml when present).")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="Stage cache directory (default: $TEXTCLF_CACHE_DIR or .textclf).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")]
TrackOpt = Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db).")]


def _setup_logging(quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(message)s", force=True)
    for noisy in ("datasets", "mlflow", "alembic", "urllib3", "filelock", "httpx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not quiet else logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import warnings

    # MLflow's hints about integer columns and type hints concern its own inference, not the user.
    for pattern in (r".*Add type hints to the .predict. method", r"Hint: Inferred schema contains integer", r".*noload.*", r"Operation with range is deprecated"):
        warnings.filterwarnings("ignore", message=pattern)
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _cache(cache_dir: Optional[Path]):
    from textclf.cache import StageCache

    return StageCache(cache_dir)


# --------------------------------------------------------------------------- config


@config_app.command("show")
def config_show(
    pipeline: Annotated[Optional[str], typer.Argument(help="Pipeline path or name; without it, params.yaml + --set.")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="Show only this variant of the pipeline.")] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
) -> None:
    """Print the fully resolved config as YAML (every variant of a pipeline)."""
    import yaml

    from textclf.config import load_config
    from textclf.pipelines import load_pipeline

    if pipeline is None:
        out.print(load_config(overrides=set_, params_file=params).to_yaml(), end="", markup=False, highlight=False)
        return
    pipe = load_pipeline(pipeline, overrides=set_, params_file=params, only=[variant] if variant else None)
    doc = {
        "pipeline": pipe.name,
        "seeds": pipe.seeds,
        "baseline": pipe.baseline,
        "variants": {name: v.config.to_dict() for name, v in pipe.variants.items()},
    }
    out.print(yaml.safe_dump(doc, sort_keys=False), end="", markup=False, highlight=False)


# --------------------------------------------------------------------------- data


@data_app.command("inspect")
def data_inspect(
    source: Annotated[Optional[str], typer.Argument(help="A file, hf:NAME[:CONFIG] or builtin:NAME (default: data.source of the config).")] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
    cache_dir: CacheOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Row counts per split, label distribution, length percentiles and invalid rows."""
    from textclf.config import resolve
    from textclf.data import SPLITS, prepare, summarize

    _setup_logging(quiet)
    # SOURCE is set as a layer, not through --set parsing: a file named "2020" or "null" stays a path.
    layer = {"data": {"source": source, "train": None, "validation": None, "test": None}} if source else None
    cfg = resolve(layer, overrides=set_, params_file=params)
    data = prepare(cfg.data, cache_dir=_cache(cache_dir).root)
    summary = summarize(data)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    from rich.table import Table

    t = Table(title=f"{cfg.data.source or cfg.data.train}: {summary['rows']} rows", title_justify="left")
    for col in ("split", "rows", *data.label_names[:8], "words p50", "p95", "max"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for split in SPLITS:
        s = summary["splits"][split]
        t.add_row(split, str(s["rows"]), *[str(s["labels"][n]) for n in data.label_names[:8]], str(s["words"].get("p50")), str(s["words"].get("p95")), str(s["words"].get("max")))
    out.print(t)
    if len(data.label_names) > 8:
        out.print(f"({len(data.label_names)} classes; first 8 shown)")
    dropped = data.report.get("dropped")
    out.print(f"invalid rows dropped: {json.dumps(dropped)}" if dropped else "invalid rows: none")
    for k in ("overlap_validation", "overlap_test"):
        if k in data.report:
            out.print(f"[yellow]warning[/]: {data.report[k]} {k.split('_')[1]} texts also occur in train (leakage)")


# --------------------------------------------------------------------------- run


@app.command()
def run(
    pipeline: Annotated[Optional[str], typer.Argument(help="Pipeline path or name in pipelines/ (default: compare).")] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
    cache_dir: CacheOpt = None,
    tracking_uri: TrackOpt = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="Run only these variants (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage, ignoring the cache.")] = False,
    summary_out: Annotated[Optional[Path], typer.Option("--summary-out", help="Also write summary.json here.")] = None,
    register: Annotated[Optional[str], typer.Option("--register", help="Register the best variant's model under this name (alias 'champion').")] = None,
    system_metrics: Annotated[bool, typer.Option("--system-metrics", help="Log CPU/memory system metrics to MLflow.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (default) or ray.")] = "local",
    jobs: Annotated[int, typer.Option("--jobs", help="Parallel local worker processes.")] = 1,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster address (default: start a local instance).")] = None,
    cpus_per_task: Annotated[float, typer.Option("--cpus-per-task")] = 1.0,
    gpus_per_task: Annotated[float, typer.Option("--gpus-per-task")] = 0.0,
    quiet: QuietOpt = False,
) -> None:
    """Run a pipeline: every variant × seed through prepare → tokenize → embed → train → evaluate → compare."""
    from textclf.pipelines import load_pipeline
    from textclf.experiment import run_pipeline

    _setup_logging(quiet)
    pipe = load_pipeline(pipeline, overrides=set_, params_file=params, only=variant)
    result = run_pipeline(
        pipe,
        cache=_cache(cache_dir),
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
        console=out,
    )
    if summary_out:
        summary_out.parent.mkdir(parents=True, exist_ok=True)
        summary_out.write_text(json.dumps(result.summary, indent=1))


@app.command()
def train(
    pipeline: Annotated[Optional[str], typer.Argument(help="Optional pipeline to take the config from (with --variant).")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="Variant of PIPELINE to train (default: its first).")] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
    cache_dir: CacheOpt = None,
    tracking_uri: TrackOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Copy the trained model folder here (a new or empty folder; a textclf model folder only with --overwrite or --force).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output if it holds a textclf model (other folders are never replaced).")] = False,
    metrics_out: Annotated[Optional[Path], typer.Option("--metrics-out", help="Write final metrics as JSON here.")] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment of the run.")] = "train",
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage, ignoring the cache (implies --overwrite).")] = False,
    ddp: Annotated[bool, typer.Option("--ddp", help="Train data-parallel (DDP). Under torchrun this is automatic; otherwise starts --nproc-per-node processes here.")] = False,
    nproc_per_node: Annotated[Optional[int], typer.Option("--nproc-per-node", help="Processes for --ddp outside torchrun (default: visible GPUs, else 2).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train one variant end to end (prepare → tokenize → embed → train → evaluate) and print its metrics."""
    from textclf.config import load_config
    from textclf.pipelines import load_pipeline
    from textclf.single import train_one

    _setup_logging(quiet)
    if pipeline:
        pipe = load_pipeline(pipeline, overrides=set_, params_file=params, only=[variant] if variant else None)
        cfg = next(iter(pipe.variants.values())).config
    else:
        if variant:
            raise typer.BadParameter("--variant needs a PIPELINE argument")
        cfg = load_config(overrides=set_, params_file=params)
    from textclf import artifacts, distributed

    if output is not None:  # before any work, on every path (DDP included)
        artifacts.check_output(output, force=force or overwrite)
    kwargs = dict(
        cache=_cache(cache_dir), tracking_uri=None if no_track else (tracking_uri or ""), experiment=experiment,
        output=output, force=force, overwrite=overwrite, quiet=quiet, console=out,
    )
    if ddp or distributed.under_torchrun():
        result = distributed.train_data_parallel(cfg, nproc_per_node=nproc_per_node, **kwargs)
        if result is None:  # a rank other than 0: rank 0 reports
            return
    else:
        result = train_one(cfg, **kwargs)
    if metrics_out:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        metrics_out.write_text(json.dumps(result, indent=1))


@app.command()
def report(
    run_id: Annotated[Optional[str], typer.Argument(help="Parent run id of a `textclf run` (default: the latest).")] = None,
    tracking_uri: TrackOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of the table.")] = False,
) -> None:
    """Re-print the comparison table of a past `textclf run`."""
    from textclf.compare import render_table
    from textclf.history import load_summary

    summary = load_summary(run_id, tracking_uri)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(f"pipeline {summary.get('pipeline')} · parent run {summary.get('parent_run_id')}")
        for task, s in (summary.get("tasks") or {None: summary}).items():
            if task:
                out.print(f"[bold]{task}[/]")
            out.print(render_table(s))


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackOpt = None,
) -> None:
    """Start the MLflow UI on the project's store, bound to 127.0.0.1."""
    import subprocess

    from textclf import tracking

    uri = tracking.resolve_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
    out.print(f"MLflow UI for {uri}: http://127.0.0.1:{port}  (Ctrl-C to stop)")
    try:
        raise typer.Exit(subprocess.call(cmd))
    except KeyboardInterrupt:
        raise typer.Exit(0)


# predict / embed / export live in cli_reuse.py (model references, file formats).
from textclf.cli_reuse import embed, export, predict  # noqa: E402

app.command()(predict)
app.command()(embed)
app.command()(export)


# --------------------------------------------------------------------------- cache


@cache_app.command("ls")
def cache_ls(cache_dir: CacheOpt = None) -> None:
    """List cached stage outputs."""
    from rich.table import Table

    cache = _cache(cache_dir)
    entries = cache.entries()
    t = Table(title=f"{cache.root}: {len(entries)} entries", title_justify="left")
    for col in ("stage", "key", "size", "info"):
        t.add_column(col)
    for e in entries:
        info = {k: v for k, v in e.meta.items() if k not in ("stage", "key", "created")}
        t.add_row(e.stage, e.key, f"{e.size / 1e6:.1f} MB", json.dumps(info, default=str)[:80])
    out.print(t)


@cache_app.command("prune")
def cache_prune(
    cache_dir: CacheOpt = None,
    older_than: Annotated[Optional[float], typer.Option("--older-than", help="Remove entries older than this many days.")] = None,
    stage: Annotated[Optional[str], typer.Option("--stage", help="Only entries of this stage.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every entry.")] = False,
) -> None:
    """Remove cached stage outputs (by age, by stage, or all)."""
    if older_than is None and not all_ and stage is None:
        raise typer.BadParameter("say what to prune: --older-than DAYS, --stage NAME or --all")
    res = _cache(cache_dir).prune(older_than_days=older_than, stage=stage, everything=all_ or (older_than is None))
    out.print(f"removed {res.removed} entries, freed {res.freed / 1e6:.1f} MB")
    if res.in_use:
        shown = ", ".join(res.in_use[:5]) + (", ..." if len(res.in_use) > 5 else "")
        out.print(f"kept {len(res.in_use)} entries a running textclf process is using or writing ({shown}); prune again when it has finished")


# --------------------------------------------------------------------------- entry point


def _click_exceptions():
    """(usage error, Exit, Abort) classes of click *and* of typer ≥ 0.29, which vendors its own copy."""
    import click
    import typer

    errors, exits, aborts = [click.ClickException], [click.exceptions.Exit, typer.Exit], [click.exceptions.Abort]
    try:
        from typer import _click as vendored

        errors.append(vendored.exceptions.ClickException)
        aborts += [getattr(typer.exceptions, "Abort", click.exceptions.Abort)]
    except ImportError:  # older typer uses click itself
        pass
    return tuple(errors), tuple(exits), tuple(aborts)


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (a scheduler, `kill`, a container stop) unwinds like Ctrl-C: runs end KILLED, temporaries are removed."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)


def _interrupted() -> None:
    console.print("interrupted; re-run the same command to continue from the cache and checkpoints")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning expected errors into clean messages and exit codes."""
    click_error, click_exit, click_abort = _click_exceptions()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("TEXTCLF_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    _terminate_like_ctrl_c()
    try:
        # Non-standalone typer returns the code of an Exit raised inside a command,
        # and turns Ctrl-C into Exit(130): both must reach the shell.
        code = app(args=argv, prog_name="textclf", standalone_mode=False)
        if isinstance(code, int) and code:
            if code == 130:
                _interrupted()
            return code
        return 0
    except TextclfError as exc:
        if debug:
            raise
        # The message itself may hold brackets ("variant 'b' [..]"): never parse it as markup.
        console.print("[bold red]error:[/] ", end="")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except click_exit as exc:
        return exc.exit_code
    except click_error as exc:  # usage errors: unknown option, missing argument (exit 2)
        if debug:
            raise
        exc.show()
        return exc.exit_code
    except click_abort:
        console.print("aborted")
        return 130
    except KeyboardInterrupt:
        if debug:
            raise
        _interrupted()
        return 130


if __name__ == "__main__":
    sys.exit(main())
