"""How a comparison is shown: the terminal table, report.md, summary.json and the comparison plots.

All of it reads the summary dict built by :func:`textclf.analysis.compare.compare`.
Accuracy-like quantities are fractions in the summary and percentage points
in the table and the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textclf.analysis.compare import RunRecord

_ALPHA = 0.05


_MISSING = "—"


def _pct(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return _MISSING
    return f"{100 * stat['mean']:.1f} ± {100 * (stat.get('sd') or 0.0):.1f}"


def _significant(delta: dict[str, Any] | None, alpha: float) -> bool:
    """Significant after Holm's adjustment (the raw p-value only where none was computed)."""
    if not delta:
        return False
    p = delta.get("p_adjusted") if delta.get("p_adjusted") is not None else delta.get("p_value")
    return p is not None and p < alpha


def _delta_cell(delta: dict[str, Any] | None, alpha: float = _ALPHA) -> str:
    if not delta or delta.get("mean") is None:
        return _MISSING
    text = f"{100 * delta['mean']:+.1f}"
    if delta.get("ci_low") is not None and delta.get("ci_high") is not None:
        text += f" [{100 * delta['ci_low']:+.1f}, {100 * delta['ci_high']:+.1f}]"
    if _significant(delta, alpha):
        text += " *"
    return text


def _plain(stat: dict[str, Any] | None, fmt: str) -> str:
    if not stat or stat.get("mean") is None:
        return _MISSING
    return format(stat["mean"], fmt)


def _table_cells(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    baseline = summary.get("baseline")
    alpha = summary.get("alpha", _ALPHA)
    headers = ["variant", "seeds", "val acc %", "acc % (±sd)", "macro-F1 % (±sd)"]
    if baseline is not None:
        headers.append(f"Δacc vs {baseline} [{1 - alpha:.0%} CI]")
    headers += ["params", "train s", "tokens/s", "p50 ms", "gap"]
    judged = "threshold" in summary  # a diagnostic task: success over seeds and speed to the threshold
    if judged:
        headers[2:2] = [f"success (≥{100 * summary['threshold']:.0f}%)", "epochs to it"]
    rows = []
    for name, v in summary["variants"].items():
        label = name + (" (baseline)" if name == baseline else "")
        val = v.get("val_accuracy")
        row = [label, str(v.get("n_seeds", "")), _MISSING if not val or val.get("mean") is None else f"{100 * val['mean']:.1f}",
               _pct(v.get("test_accuracy")), _pct(v.get("test_macro_f1"))]
        if judged:
            e = v.get("epochs_to_threshold") or {}
            row[2:2] = [f"{v.get('successes', 0)}/{v.get('n_seeds', '')}",
                        _MISSING if e.get("mean") is None else f"{e['mean']:.1f} ({e['reached']}/{e['seeds']})"]
        if baseline is not None:
            row.append("baseline" if name == baseline else _delta_cell(v.get("delta_accuracy"), alpha))
        row += [
            _MISSING if v.get("params") is None else f"{v['params']:,}",
            _plain(v.get("train_seconds"), ".1f"),
            _plain(v.get("tokens_per_second"), ",.0f"),
            _plain(v.get("latency_p50_ms"), ".2f"),
            _plain(v.get("generalization_gap"), ".3f"),
        ]
        rows.append(row)
    return headers, rows


def caption(summary: dict[str, Any]) -> str:
    """The table's footer: what the numbers are, what * means, how the best variant was chosen."""
    text = f"test set: {summary.get('n_test')} examples; sd over seeds"
    if summary.get("baseline") is not None:
        text += f"; * = Holm-adjusted p < {summary.get('alpha', _ALPHA):g} (paired t with test-example and seed variance)"
    if summary.get("best_variant"):
        text += f"; bold = best by {summary.get('best_variant_by', 'validation')}"
    text += "; train s and tokens/s with each training's own threads, p50 ms timed one model at a time after training"
    return text


def render_table(summary: dict[str, Any]):
    """A :class:`rich.table.Table` with one row per variant (baseline marked, best in bold, * = significant)."""
    from rich.table import Table
    from rich.text import Text

    headers, rows = _table_cells(summary)
    # Headers and caption name the baseline, cells the variants: Text, never parsed as markup ("x[/]").
    table = Table(title="Variant comparison", caption=Text(caption(summary)))
    for i, header in enumerate(headers):
        table.add_column(Text(header), justify="left" if i == 0 else "right", no_wrap=i == 0)
    best = summary.get("best_variant")
    for name, row in zip(summary["variants"], rows):
        style = "bold" if name == best else ""
        table.add_row(*(Text(cell, style=style) for cell in row))
    return table


def markdown_table(summary: dict[str, Any]) -> str:
    headers, rows = _table_cells(summary)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---"] + ["---:"] * (len(headers) - 1)
    return "\n".join([line(headers), "| " + " | ".join(align) + " |", *(line(r) for r in rows)])


def _format_p(p: float | None) -> str:
    if p is None:
        return "p=n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _delta_note(delta: dict[str, Any] | None) -> str:
    if not delta or delta.get("mean") is None:
        return "n/a"
    text = f"{100 * delta['mean']:+.1f} points"
    if delta.get("ci_low") is not None:
        text += f" [{100 * delta['ci_low']:.1f}, {100 * delta['ci_high']:.1f}]"
    text += f", {_format_p(delta.get('p_value'))}"
    if delta.get("p_adjusted") is not None:
        text += f" (Holm-adjusted {_format_p(delta['p_adjusted'])[2:]})"
    return text


def _variant_notes(summary: dict[str, Any]) -> list[str]:
    baseline = summary.get("baseline")
    if baseline is None:
        return []
    base_seeds = summary["variants"][baseline]["n_seeds"]
    notes = []
    for name, v in summary["variants"].items():
        if name == baseline:
            continue
        note = (
            f"- **{name} vs {baseline}**: accuracy {_delta_note(v.get('delta_accuracy'))}; "
            f"macro-F1 {_delta_note(v.get('delta_macro_f1'))} ({v['n_seeds']} vs {base_seeds} seeds)"
        )
        if v["n_seeds"] == 1 or base_seeds == 1:
            note += " — a single seed on one side: the interval covers test-example variance only, not seed-to-seed variance"
        notes.append(note)
    return notes


def _where_notes(summary: dict[str, Any]) -> list[str]:
    """Markdown: accuracy per slice beside the baseline's, and the disagreement counts and examples."""
    baseline = summary.get("baseline")
    lines: list[str] = []
    for name, v in summary["variants"].items():
        if name == baseline or not (v.get("slices") or v.get("disagreements")):
            continue
        lines += [f"### {name}", ""]
        for slice_name, rows in (v.get("slices") or {}).items():
            if not rows:
                continue
            head = "tokens" if slice_name == "length" else slice_name
            lines += [f"| {head} | n | {name} acc % | {baseline or 'baseline'} acc % | Δ |", "|---|---:|---:|---:|---:|"]
            for r in rows:
                key = f"{r['lo']}–{r['hi']}" if slice_name == "length" else str(r["value"])
                base = r.get("baseline_accuracy")
                delta = "" if base is None else f"{100 * (r['accuracy'] - base):+.1f}"
                lines.append(f"| {key} | {r['n']} | {100 * r['accuracy']:.1f} | {_MISSING if base is None else f'{100 * base:.1f}'} | {delta} |")
            lines.append("")
        d = v.get("disagreements")
        if d:
            lines += [f"Right where {baseline} is wrong: **{d['wins']}** texts; wrong where {baseline} is right: **{d['losses']}** "
                      "(majority vote over seeds).", ""]
            for kind, title in (("wins", f"{name} right, {baseline} wrong"), ("losses", f"{name} wrong, {baseline} right")):
                if d["examples"].get(kind):
                    lines += [f"*{title}:*", ""]
                    lines += [f"- [{e['label']}] {_clip(e['text'])} — {name}: {e['variant']}, {baseline}: {e['baseline']}" for e in d["examples"][kind]]
                    lines.append("")
    return lines


def _clip(text: str | None, limit: int = 160) -> str:
    if text is None:
        return "(text not kept)"
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _make_plots(summary: dict[str, Any], records: Sequence[RunRecord], out_dir: Path) -> list[Path]:
    from textclf.analysis import plots as cp
    from textclf.analysis.tuning import plot_expected_max

    plots = [
        cp.plot_accuracy_vs_cost(
            summary, "params", out_dir / "accuracy_vs_params.png", xlabel="parameters (log scale)", log_x=True
        ),
        cp.plot_accuracy_vs_cost(summary, "train_seconds", out_dir / "accuracy_vs_train_time.png", xlabel="training time (s)"),
        cp.plot_accuracy_by_depth(summary, out_dir / "accuracy_by_depth.png"),
        cp.plot_accuracy_by_length(summary, out_dir / "accuracy_by_length.png"),
        cp.plot_mean_learning_curves(records, out_dir / "learning_curves.png"),
        plot_expected_max(summary, out_dir / "expected_max_val.png"),
    ]
    return [p for p in plots if p is not None]


def _cached_plots(summary: dict[str, Any], records: Sequence[RunRecord], out_dir: Path, cache) -> list[Path]:
    """The plots of ``_make_plots``, from the stage cache when the same results were plotted before.

    Rendering is most of a fully cached re-run's time (~2–4 s of matplotlib);
    the plots depend only on the per-variant figures and learning curves, so
    those (without run ids) are the key.
    """
    import shutil

    from textclf.core.cache import stage_key

    stable = {
        name: {k: v for k, v in row.items() if k not in ("run_ids", "cached")} for name, row in summary.get("variants", {}).items()
    }
    curves = [[r.variant, r.seed, r.history] for r in records]
    key = stage_key("compare_plots", {"variants": stable, "baseline": summary.get("baseline"), "curves": curves}, code=__name__)
    with cache.lock("compare_plots", key):
        hit = cache.get("compare_plots", key)
        if hit is None:
            with cache.write("compare_plots", key) as tmp:
                _make_plots(summary, records, tmp)
            hit = cache.get("compare_plots", key)
    paths = []
    for png in sorted(hit.glob("*.png")):
        shutil.copyfile(png, out_dir / png.name)
        paths.append(out_dir / png.name)
    return paths


def write_report(
    summary: dict[str, Any],
    records: Sequence[RunRecord],
    out_dir: Path,
    *,
    title: str,
    command: str | None = None,
    cache=None,
) -> dict[str, Any]:
    """Write ``report.md``, ``summary.json`` and the comparison PNGs into ``out_dir``.

    With ``cache`` (a :class:`~textclf.cache.StageCache`), plots of a
    comparison whose results were plotted before are copied, not re-rendered.

    Returns ``{"report": path, "summary": path, "plots": [paths]}``. The
    depth plot is left out when the neural variants span a single depth.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    summary_path = out_dir / "summary.json"
    # allow_nan=False: a NaN that slipped through must fail here, not in a JSON reader later.
    summary_path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    plots = _cached_plots(summary, records, out_dir, cache) if cache is not None else _make_plots(summary, records, out_dir)

    variants = summary["variants"]
    seeds = sorted({s for v in variants.values() for s in v.get("seeds", [])})
    lines = [f"# {title}", ""]
    if command:
        lines += ["```", command, "```", ""]
    facts = [
        f"- Test set: {summary.get('n_test')} examples, {summary.get('n_classes', len(summary.get('label_names', [])))} classes",
        f"- Variants: {len(variants)}; seeds: {', '.join(str(s) for s in seeds) or 'n/a'}",
        f"- Baseline: {summary.get('baseline') or 'none'}",
        f"- Best variant: {summary.get('best_variant')} (chosen by {summary.get('best_variant_by', 'validation')})",
    ]
    if summary.get("data"):
        facts.insert(0, f"- Data: {summary['data']}")
    lines += facts + ["", "## Results", "", markdown_table(summary), ""]
    lines += [
        "Accuracy and macro-F1 are in percent, mean ± sd over seeds; val acc is the validation accuracy that chose "
        f"the best variant. Δacc is in percentage points; * marks a Holm-adjusted p below {summary.get('alpha', _ALPHA):g}.",
        "",
        "## Significance",
        "",
        summary.get("significance", ""),
        "",
    ]
    from textclf.analysis.tuning import markdown as tuning_section

    lines += tuning_section(summary)
    if summary.get("verdict"):
        lines += ["## Claim", "", f"> {summary['claim']}", "", f"**Verdict: {summary['verdict']}** — {summary['verdict_reason']}.", "",
                  f"*Measure:* {summary.get('measure', 'accuracy')} (success: test accuracy ≥ {summary.get('threshold', 0.95):g}).", "",
                  f"*Rule:* {summary['verdict_rule']}", ""]
    for key, rows in summary.items():
        if key.startswith("per_") and rows:
            names = [n for n in summary["variants"] if any(n in r for r in rows)]
            lines += [f"## Accuracy per {key[4:]}", "", f"| {key[4:]} | n | " + " | ".join(names) + " |",
                      "|---|---:|" + "---:|" * len(names)]
            lines += [f"| {r['value']} | {r['n']} | " + " | ".join(f"{100 * r[n]:.1f}" if n in r else _MISSING for n in names) + " |" for r in rows]
            lines.append("")
    notes = _variant_notes(summary)
    if notes:
        lines += ["## Differences from the baseline", "", *notes, ""]
    where = _where_notes(summary)
    if where:
        lines += ["## Where each variant differs from the baseline", "", *where]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem.replace('_', ' ')}]({p.name})" for p in plots]
        lines.append("")
    report_path = out_dir / "report.md"
    report_path.write_text("\n".join(lines), encoding="utf-8")
    return {"report": report_path, "summary": summary_path, "plots": plots}
