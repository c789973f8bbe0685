"""``textclf config show`` and ``textclf data inspect``: look at the resolved config and the data before training."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from textclf.cli.common import CacheOpt, ParamsOpt, QuietOpt, SetOpt, open_cache, out
from textclf.core.logs import setup_logging


def config_show(
    pipeline: Annotated[
        Optional[str], typer.Argument(help="Pipeline path or name; without it, params.yaml + --set.")
    ] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="Show only this variant of the pipeline.")] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
) -> None:
    """Print the fully resolved config as YAML (every variant of a pipeline)."""
    import yaml

    from textclf.pipeline.config import load_config
    from textclf.pipeline.spec import load_pipeline

    if pipeline is None:
        out.print(load_config(overrides=set_, params_file=params).to_yaml(), end="", markup=False, highlight=False)
        return
    pipe = load_pipeline(pipeline, overrides=set_, params_file=params, only=[variant] if variant else None)
    doc = {
        "pipeline": pipe.name,
        "seeds": pipe.spec.seeds,  # a list, or a schedule {min, max, ...}
        "baseline": pipe.baseline,
        "variants": {name: v.config.to_dict() for name, v in pipe.variants.items()},
    }
    if pipe.tune is not None:  # the search each variant gets (the default space shown in full)
        doc["tune"] = pipe.tune.to_dict()
    out.print(yaml.safe_dump(doc, sort_keys=False), end="", markup=False, highlight=False)


def _rounded(value, digits: int = 1):
    """Floats rounded for reading (percentiles come out as 82.34999999999988); everything else as is."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def data_inspect(
    source: Annotated[
        Optional[str],
        typer.Argument(help="A file, hf:NAME\\[:CONFIG] or builtin:NAME (default: data.source of the config)."),
    ] = None,
    set_: SetOpt = None,
    params: ParamsOpt = None,
    cache_dir: CacheOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Row counts per split, label distribution, length percentiles and invalid rows."""
    from textclf.data.prepare import SPLITS, prepare
    from textclf.data.summary import summarize
    from textclf.pipeline.config import resolve

    setup_logging(quiet)
    # SOURCE is set as a layer, not through --set parsing: a file named "2020" or "null" stays a path.
    layer = {"data": {"source": source, "train": None, "validation": None, "test": None}} if source else None
    cfg = resolve(layer, overrides=set_, params_file=params)
    root = open_cache(cache_dir).root
    data = prepare(cfg.data, cache_dir=root)
    summary = _rounded(summarize(data))
    summary["warnings"] = [w.to_dict() for w in _warnings(cfg, data, root)]
    if as_json:
        out.print_json(json.dumps(summary))
        return
    from rich.table import Table
    from rich.text import Text

    # The source path and label names are the user's: Text, never parsed as markup.
    t = Table(title=Text(f"{cfg.data.source or cfg.data.train}: {summary['rows']} rows"), title_justify="left")
    for col in ("split", "rows", *data.label_names[:8], "words p50", "p95", "max"):
        t.add_column(Text(str(col)), justify="right" if col != "split" else "left")
    for split in SPLITS:
        s = summary["splits"][split]
        t.add_row(
            split,
            str(s["rows"]),
            *[str(s["labels"][n]) for n in data.label_names[:8]],
            str(s["words"].get("p50")),
            str(s["words"].get("p95")),
            str(s["words"].get("max")),
        )
    out.print(t)
    if len(data.label_names) > 8:
        out.print(f"({len(data.label_names)} classes; first 8 shown)")
    dropped = data.report.get("dropped")
    out.print(f"invalid rows dropped: {json.dumps(dropped)}" if dropped else "invalid rows: none")
    for k in ("overlap_validation", "overlap_test"):
        if k in data.report:
            out.print(f"[yellow]warning[/]: {data.report[k]} {k.split('_')[1]} texts also occur in train (leakage)")
    from rich.markup import escape

    for w in summary["warnings"]:  # one line each (soft wrap): a message is easier to grep and copy whole
        out.print(f"[yellow]warning[/]: {escape(w['message'])}", highlight=False, soft_wrap=True)


def _warnings(cfg, data, cache_root) -> list:
    """What training on this data would warn about (:mod:`textclf.data.checks`), the vocabulary included."""
    from textclf.data.checks import data_warnings

    found = data_warnings(data, selection_metric=cfg.train.early_stopping_metric, class_weights=cfg.train.class_weights)
    if cfg.kind == "neural" and not cfg.encoder.init_from:  # a source model brings its own tokenizer
        from textclf.text.tokenize import vocabulary_stats, vocabulary_warnings

        found += vocabulary_warnings(vocabulary_stats(data, cfg.tokenizer, cache_root), cfg.tokenizer)
    return found
