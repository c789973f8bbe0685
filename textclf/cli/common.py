"""What every ``textclf`` verb shares: option types, the consoles, and the stage cache it opens."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(stderr=True)
# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)

SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", "-s", help="Override a config key: --set encoder.layers=2 (repeatable).")
]
ParamsOpt = Annotated[
    Optional[Path], typer.Option("--params", help="params.yaml to use (default: ./params.yaml when present).")
]
CacheOpt = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="Stage cache directory (default: $TEXTCLF_CACHE_DIR or .textclf).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")]
TrackOpt = Annotated[
    Optional[str],
    typer.Option(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)."
    ),
]


def open_cache(cache_dir: Optional[Path]):
    from textclf.core.cache import StageCache

    return StageCache(cache_dir)
