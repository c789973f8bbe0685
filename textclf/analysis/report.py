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


def _pct(stat: dict[str, Any] | None, single: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return _MISSING
    # One seed: the seed sd is not zero, it is unknown.
    return f"{100 * stat['mean']:.1f} ± " + ("n/a" if single else f"{100 * (stat.get('sd') or 0.0):.1f}")


def _metrics(summary: dict[str, Any]) -> list[str]:
    """The comparison metrics of the summary (accuracy and macro-F1 in one written before others could join)."""
    return summary.get("compared_metrics") or ["accuracy", "macro_f1"]


def _label(name: str, short: bool = False) -> str:
    """A metric's name in tables: its registered ``label`` (abbreviated in headers for the two built-ins)."""
    from textclf.core.metrics import METRICS

    if short and name in ("accuracy", "macro_f1"):
        return {"accuracy": "acc", "macro_f1": "F1"}[name]
    metric = METRICS.get(name)
    return (metric.label if metric is not None else "") or name


def _primary(summary: dict[str, Any]) -> tuple[str, str]:
    """(delta key of the primary metric, its short label) — verdicts and * are on it only."""
    name = (summary.get("primary_metric") or "test_accuracy").removeprefix("test_")
    return f"delta_{name}", f"Δ{_label(name, short=True)}"


def _significant(delta: dict[str, Any] | None, alpha: float) -> bool:
    """Significant after Holm's adjustment (the raw p-value only where none was computed).

    Never where a side has a single seed: seed-to-seed variance was not
    estimated, so the p-value understates the uncertainty.
    """
    if not delta or delta.get("seed_variance") is False:
        return False
    p = delta.get("p_adjusted") if delta.get("p_adjusted") is not None else delta.get("p_value")
    return p is not None and p < alpha


def _delta_cell(delta: dict[str, Any] | None, alpha: float = _ALPHA) -> str:
    if not delta or delta.get("mean") is None:
        return _MISSING
    text = f"{100 * delta['mean']:+.1f}"
    if delta.get("ci_low") is not None and delta.get("ci_high") is not None:
        text += f" [{100 * delta['ci_low']:+.1f}, {100 * delta['ci_high']:+.1f}]"
        if delta.get("uninformative"):
            text += " uninformative"
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
    delta_key, delta_label = _primary(summary)
    metrics = _metrics(summary)
    headers = ["variant", "seeds", "val acc %"]
    headers += [f"{'acc' if m == 'accuracy' else _label(m)} % (±sd)" for m in metrics]
    if baseline is not None:
        headers.append(f"{delta_label} vs {baseline} [{1 - alpha:.0%} CI]")
    headers += ["params", "train s", "tokens/s", "p50 ms", "gap"]
    judged = "threshold" in summary  # a diagnostic task: success over seeds and speed to the threshold
    if judged:
        headers[2:2] = [f"success (≥{100 * summary['threshold']:.0f}%)", "epochs to it"]
    rows = []
    for name, v in summary["variants"].items():
        label = name + (" (baseline)" if name == baseline else "")
        val = v.get("val_accuracy")
        row = [
            label,
            str(v.get("n_seeds", "")),
            _MISSING if not val or val.get("mean") is None else f"{100 * val['mean']:.1f}",
            *(_pct(v.get(f"test_{m}"), v.get("n_seeds") == 1) for m in metrics),
        ]
        if judged:
            e = v.get("epochs_to_threshold") or {}
            row[2:2] = [
                f"{v.get('successes', 0)}/{v.get('n_seeds', '')}",
                _MISSING if e.get("mean") is None else f"{e['mean']:.1f} ({e['reached']}/{e['seeds']})",
            ]
        if baseline is not None:
            row.append("baseline" if name == baseline else _delta_cell(v.get(delta_key), alpha))
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
        metric = _label(_primary(summary)[0].removeprefix("delta_"))
        text += (
            f"; * = Holm-adjusted p < {summary.get('alpha', _ALPHA):g} on {metric}, the primary (selection) metric "
            "(paired t with test-example and seed variance)"
        )
        single = [n for n, v in summary.get("variants", {}).items() if v.get("n_seeds") == 1]
        if single:
            text += (
                f"; no * and sd n/a where a side has one seed ({', '.join(single)}): "
                "seed-to-seed variance cannot be estimated from one seed"
            )
    if summary.get("best_variant"):
        text += f"; bold = best by {summary.get('best_variant_by', 'validation')}"
    text += "; train s and tokens/s with each training's own threads, p50 ms timed one model at a time after training"
    return text


def answer_lines(summary: dict[str, Any]) -> list[str]:
    """The answer in words (one line per contrast), then the dominated variants; [] for a summary without contrasts."""
    lines = list(summary.get("answer") or [])
    dominated = summary.get("dominated") or {}
    if dominated:
        lines.append(
            "Dominated (another variant is at least as good on the primary metric, cheaper to train and faster): "
            + "; ".join(f"{n} (by {', '.join(by)})" for n, by in dominated.items())
        )
    return lines


def render_answer(summary: dict[str, Any]):
    """The answer as :class:`rich.text.Text` for the terminal (printed before the table)."""
    from rich.text import Text

    lines = answer_lines(summary)
    if not lines:
        return Text("")
    text = Text("Answer", style="bold")
    for line in lines:
        text.append("\n  • " + line, style="")
    return text


def answer_markdown(summary: dict[str, Any]) -> list[str]:
    """Markdown lines of the answer section (empty when the summary has none)."""
    lines = answer_lines(summary)
    if not lines:
        return []
    metric = _label(_primary(summary)[0].removeprefix("delta_"))
    sesoi = summary.get("sesoi")
    out = ["## Answer", ""] + [f"- {x}" for x in lines] + [""]
    out += [
        f"*Test {metric} (the primary metric: the one variants were selected on), difference a − b in points with its "
        f"{1 - summary.get('alpha', _ALPHA):.0%} interval. better / worse: Holm-adjusted p < {summary.get('alpha', _ALPHA):g} over "
        "these contrasts; equivalent: the difference is shown to lie within "
        + (f"±{100 * sesoi:g} points" if sesoi is not None else "the smallest effect of interest")
        + " (two one-sided tests, Holm-adjusted); inconclusive: the data cannot tell.*",
        "",
    ]
    return out


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def contrast_markdown(summary: dict[str, Any]) -> list[str]:
    """The contrasts section: every question with its interval, verdict, power and cost; secondary metrics after."""
    rows = summary.get("contrasts") or []
    if not rows:
        return []
    details = summary.get("contrast_details") or {}
    alpha = summary.get("alpha", _ALPHA)
    out = [
        "## Contrasts",
        "",
        "| contrast | a | b | Δ points [CI] | Holm p | verdict | mde | seeds a/b | seeds for mde ≤ sesoi | × train s | × params | × p50 ms |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    single = []
    for r in rows:
        d = details.get(r["name"], {})
        if not d.get("seed_variance", True):
            single.append(r["name"])
        cost = r.get("cost_ratio") or {}
        ratio = {
            k: _MISSING if cost.get(k) is None else f"{cost[k]:.2f}"
            for k in ("train_seconds", "params", "latency_p50_ms")
        }
        need = d.get("seeds_needed")
        out.append(
            f"| {r['name']} | {r['a']} | {r['b']} | {100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] "
            f"| {_p_text(r.get('p_adjusted'))} | {r['verdict']} | {_MISSING if r.get('mde') is None else format(100 * r['mde'], '.1f')} "
            f"| {r['seeds_a']}/{r['seeds_b']} | {_MISSING if need is None else need} | {ratio['train_seconds']} | {ratio['params']} | {ratio['latency_p50_ms']} |"
        )
    out.append("")
    foot = (
        f"Primary metric: {summary.get('primary_metric')}. mde: the difference detected with 80% power at this variance "
        f"and these seeds (alpha {alpha:g}); the seeds column says how many seeds per variant would bring it to "
        f"±{100 * summary.get('sesoi', 0):g} points ({_MISSING}: no number of seeds would on this test set, or not estimable). "
        "Cost columns: a's mean over seeds divided by b's."
    )
    if single:
        foot += (
            f" {', '.join(single)}: a side has a single seed, so seed-to-seed variance cannot be estimated: no p-value, "
            "no verdict but inconclusive, sd n/a. Run at least 2 (better 3) seeds per variant."
        )
    if summary.get("test_is_validation"):
        foot += " WARNING: the test set is the validation set (opted in with compare.allow_test_is_validation), so every difference is optimistic."
    out += [f"*{foot}*", ""]
    second = summary.get("secondary_contrasts") or []
    if second:
        out += ["Secondary metrics (intervals only, no verdicts):", ""]
        out += [
            f"- {r['name']} — {r['metric']}: {100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] points"
            for r in second
        ]
        out.append("")
    return out


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
        if delta.get("uninformative"):
            text += (
                " (uninformative: the interval reaches the possible range or spans half of it, so it rules out "
                "almost nothing; run 3 or more seeds per variant, on a larger test set)"
            )
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
        deltas = "; ".join(f"{_label(m)} {_delta_note(v.get(f'delta_{m}'))}" for m in _metrics(summary))
        note = f"- **{name} vs {baseline}**: {deltas} ({v['n_seeds']} vs {base_seeds} seeds)"
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
            lines += [
                f"| {head} | n | {name} acc % | {baseline or 'baseline'} acc % | Δ |",
                "|---|---:|---:|---:|---:|",
            ]
            for r in rows:
                key = f"{r['lo']}–{r['hi']}" if slice_name == "length" else str(r["value"])
                base = r.get("baseline_accuracy")
                delta = "" if base is None else f"{100 * (r['accuracy'] - base):+.1f}"
                lines.append(
                    f"| {key} | {r['n']} | {100 * r['accuracy']:.1f} | {_MISSING if base is None else f'{100 * base:.1f}'} | {delta} |"
                )
            note = (summary.get("slices") or {}).get(slice_name) if slice_name != "length" else None
            if note:  # a capped column: say what was pooled
                lines += ["", f"*{slice_name}: {note}.*"]
            lines.append("")
        d = v.get("disagreements")
        if d:
            lines += [
                f"Right where {baseline} is wrong: **{d['wins']}** texts; wrong where {baseline} is right: **{d['losses']}** "
                "(majority vote over seeds).",
                "",
            ]
            for kind, title in (
                ("wins", f"{name} right, {baseline} wrong"),
                ("losses", f"{name} wrong, {baseline} right"),
            ):
                if d["examples"].get(kind):
                    lines += [f"*{title}:*", ""]
                    lines += [
                        f"- [{e['label']}] {_clip(e['text'])} — {name}: {e['variant']}, {baseline}: {e['baseline']}"
                        for e in d["examples"][kind]
                    ]
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
        cp.plot_contrasts(summary, out_dir / "contrasts.png"),
        cp.plot_cost_quality(summary, out_dir / "cost_quality.png"),
        cp.plot_accuracy_vs_cost(
            summary, "params", out_dir / "accuracy_vs_params.png", xlabel="parameters (log scale)", log_x=True
        ),
        cp.plot_accuracy_vs_cost(
            summary, "train_seconds", out_dir / "accuracy_vs_train_time.png", xlabel="training time (s)"
        ),
        cp.plot_accuracy_by_depth(summary, out_dir / "accuracy_by_depth.png"),
        cp.plot_accuracy_by_length(summary, out_dir / "accuracy_by_length.png"),
        cp.plot_mean_learning_curves(records, out_dir / "learning_curves.png"),
        plot_expected_max(summary, out_dir / "expected_max_val.png"),
    ]
    return [p for p in plots if p is not None]


def _cached_plots(summary: dict[str, Any], records: Sequence[RunRecord], out_dir: Path, cache) -> list[Path]:
    """The plots of ``_make_plots``, from the stage cache when the same results were plotted before.

    Rendering is most of a fully cached re-run's time (docs/benchmarks.md,
    "A cached re-run"); the plots depend only on the per-variant figures and
    learning curves, so those (without run ids) are the key.
    """
    import shutil

    from textclf.core.cache import stage_key

    stable = {
        name: {k: v for k, v in row.items() if k not in ("run_ids", "cached")}
        for name, row in summary.get("variants", {}).items()
    }
    curves = [[r.variant, r.seed, r.history] for r in records]
    answer = {k: summary.get(k) for k in ("contrasts", "sesoi", "primary_metric", "alpha")}
    key = stage_key(
        "compare_plots",
        {"variants": stable, "baseline": summary.get("baseline"), "curves": curves, "answer": answer},
        code=__name__,
    )
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

    plots = (
        _cached_plots(summary, records, out_dir, cache) if cache is not None else _make_plots(summary, records, out_dir)
    )

    variants = summary["variants"]
    seeds = sorted({s for v in variants.values() for s in v.get("seeds", [])})
    lines = [f"# {title}", ""]
    lines += answer_markdown(summary)
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
    lines += facts + [""]
    warned = (summary.get("data") or {}).get("warnings") if isinstance(summary.get("data"), dict) else None
    if warned:  # said before training (textclf.data.checks); the numbers below are read in their light
        lines += ["## Data warnings", "", *(f"- {_clip(w, 1000)}" for w in warned), ""]
    lines += ["## Results", "", markdown_table(summary), ""]
    lines += contrast_markdown(summary)
    lines += [
        "Accuracy and macro-F1 are in percent, mean ± sd over seeds; val acc is the validation accuracy that chose "
        f"the best variant. {_primary(summary)[1]} is in percentage points; * marks a Holm-adjusted p below {summary.get('alpha', _ALPHA):g} "
        "(never with a single seed on a side).",
        "",
        "## Significance",
        "",
        summary.get("significance", ""),
        "",
    ]
    plan = summary.get("seed_schedule")
    if plan:  # seeds: {min, max} (textclf.analysis.sequential)
        lines += [
            f"Seeds were added as the answer needed them: {plan['min']} per variant first, then {plan['step']} more at a time, "
            f"only to the variants of contrasts still inconclusive, up to {plan['max']} (looks at {', '.join(map(str, plan['looks']))} "
            f"seeds). alpha = {plan['alpha']:g} is spent over the {len(plan['looks'])} possible looks, so every look, "
            f"this report's included, judges at {plan['alpha_per_look']:.4g}: the chance of any false verdict stays at "
            f"{plan['alpha']:g} however the rounds went.",
            "",
        ]
    from textclf.analysis.tuning import markdown as tuning_section

    lines += tuning_section(summary)
    if summary.get("verdict"):
        lines += [
            "## Claim",
            "",
            f"> {summary['claim']}",
            "",
            f"**Verdict: {summary['verdict']}** — {summary['verdict_reason']}.",
            "",
            f"*Measure:* {summary.get('measure', 'accuracy')} (success: test accuracy ≥ {summary.get('threshold', 0.95):g}).",
            "",
            f"*Rule:* {summary['verdict_rule']}",
            "",
        ]
        if summary.get("claims_fingerprint"):
            spec = summary.get("claim_spec") or {}
            fixed = ", ".join(
                f"{k}={spec[k]}"
                for k in ("measure", "threshold", "min_effect", "seeds", "alpha", "alternative", "require")
                if k in spec
            )
            lines += [f"*Fixed before the runs:* {fixed} (claims_fingerprint `{summary['claims_fingerprint']}`).", ""]
    for key, rows in summary.items():
        if key.startswith("per_") and rows:
            names = [n for n in summary["variants"] if any(n in r for r in rows)]
            lines += [
                f"## Accuracy per {key[4:]}",
                "",
                f"| {key[4:]} | n | " + " | ".join(names) + " |",
                "|---|---:|" + "---:|" * len(names),
            ]
            lines += [
                f"| {r['value']} | {r['n']} | "
                + " | ".join(f"{100 * r[n]:.1f}" if n in r else _MISSING for n in names)
                + " |"
                for r in rows
            ]
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
