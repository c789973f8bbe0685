"""``textclf cache ls`` and ``textclf cache prune``: what the stage cache holds, and removing it safely."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from textclf.cli.common import CacheOpt, open_cache, out


def cache_ls(cache_dir: CacheOpt = None) -> None:
    """List cached stage outputs."""
    from rich.table import Table

    cache = open_cache(cache_dir)
    entries = cache.entries()
    t = Table(title=f"{cache.root}: {len(entries)} entries", title_justify="left")
    for col in ("stage", "key", "size", "info"):
        t.add_column(col)
    for e in entries:
        info = {k: v for k, v in e.meta.items() if k not in ("stage", "key", "created", "files")}
        t.add_row(e.stage, e.key, f"{e.size / 1e6:.1f} MB", json.dumps(info, default=str)[:80])
    out.print(t)


def cache_prune(
    cache_dir: CacheOpt = None,
    older_than: Annotated[
        Optional[float], typer.Option("--older-than", help="Remove entries older than this many days.")
    ] = None,
    stage: Annotated[Optional[str], typer.Option("--stage", help="Only entries of this stage.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every entry.")] = False,
) -> None:
    """Remove cached stage outputs (by age, by stage, or all)."""
    if older_than is None and not all_ and stage is None:
        raise typer.BadParameter("say what to prune: --older-than DAYS, --stage NAME or --all")
    res = open_cache(cache_dir).prune(older_than_days=older_than, stage=stage, everything=all_ or (older_than is None))
    out.print(f"removed {res.removed} entries, freed {res.freed / 1e6:.1f} MB")
    if res.in_use:
        shown = ", ".join(res.in_use[:5]) + (", ..." if len(res.in_use) > 5 else "")
        out.print(
            f"kept {len(res.in_use)} entries a running textclf process is using or writing ({shown}); prune again when it has finished"
        )
