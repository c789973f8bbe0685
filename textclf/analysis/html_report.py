"""The comparison as one self-contained HTML file, to hand to someone (``report.html``).

Everything is inside the file: styles inline, figures as base64 ``data:``
images, no script, no font, no request to any network. It reads the same
summary as ``report.md`` (:mod:`textclf.analysis.report`) and shows, in order:
the answer in words (``summary["answer"]`` and the declared or derived
``contrasts`` when the comparison made them, otherwise the best variant and the
differences from the baseline), the comparison table, every figure the
comparison wrote, the length slices and disagreement examples, the
configuration, the data fingerprints, the environment and the method with its
calibration note. Every string that came from a user (variant names, texts,
labels, config values) is HTML-escaped. A print stylesheet keeps tables and
figures whole when the page is printed to PDF.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from textclf.analysis.report import _clip, _delta_note, _table_cells, caption
from textclf.core.disk import write_atomically

# Figures a reader wants first, by words in their file names; the others follow alphabetically.
_FIGURE_ORDER = ("contrast", "delta", "cost", "quality", "learning", "length")

CALIBRATION_NOTE = (
    "Calibration: the accuracy interval and p-value are checked by a simulation in the test suite "
    "(tests/test_stats.py::test_false_positive_rate_is_calibrated): with no true difference, 3 or 5 seeds per variant, "
    "500 or 2,000 test examples and a seed-to-seed spread of 0 to 5 points, a test at the 5% level must reject between "
    "1% and 7% of the time (the measured rates are in textclf's benchmarks, 'The comparison's calibration'). A single "
    "seed on one side covers test-example variance only; the table and the method above say so where it happens."
)

_CSS = """
:root{--fg:#1d2430;--muted:#5b6472;--line:#d9dde3;--accent:#1f5fbf;--bg:#fff;--soft:#f4f6f9}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);
 background:var(--bg);margin:0 auto;max-width:1100px;padding:24px 28px 48px}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
.meta{color:var(--muted);font-size:.9em}.meta code{font-size:.95em}
.answer{background:var(--soft);border-left:4px solid var(--accent);padding:10px 16px;margin:12px 0}
.answer li{margin:.25em 0}
table{border-collapse:collapse;margin:8px 0 4px;font-size:.88em;width:auto;max-width:100%}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:right;vertical-align:top}
th{background:var(--soft);font-weight:600}td:first-child,th:first-child{text-align:left}
td.text{text-align:left;max-width:520px}
.scroll{overflow-x:auto}
.caption{color:var(--muted);font-size:.85em;margin:2px 0 12px}
.best td{font-weight:600}
.verdict-better{color:#17753a}.verdict-worse{color:#b42318}.verdict-equivalent{color:#1f5fbf}.verdict-inconclusive{color:#8a6100}
figure{margin:14px 0;break-inside:avoid;page-break-inside:avoid}
figure img{max-width:100%;height:auto;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:.85em}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:8px 20px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;font-size:.9em}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-all}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
pre{white-space:pre-wrap;word-break:break-word;background:var(--soft);padding:8px;border-radius:4px}
@media (max-width:700px){body{padding:12px}.figs{grid-template-columns:1fr}}
@media print{
 body{max-width:none;padding:0;font-size:11pt}
 h2{break-after:avoid;page-break-after:avoid}
 table,tr,figure,.answer{break-inside:avoid;page-break-inside:avoid}
 .scroll{overflow:visible}
 .figs{display:block}
 figure img{max-height:9cm;width:auto}
 a{color:inherit;text-decoration:none}
}
"""


def _e(value: Any) -> str:
    """Escaped text of any value (None shows as a dash)."""
    return "—" if value is None else html.escape(str(value), quote=True)


def _table(
    headers: Iterable[Any],
    rows: Iterable[Iterable[Any]],
    *,
    row_classes: Iterable[str] | None = None,
    text_columns: tuple[int, ...] = (),
) -> str:
    classes = list(row_classes or [])
    out = ['<div class="scroll"><table><thead><tr>', *(f"<th>{_e(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = [
            f'<td class="text">{_e(c)}</td>' if j in text_columns else f"<td>{_e(c)}</td>" for j, c in enumerate(row)
        ]
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _points(x: Any) -> str:
    return "—" if not isinstance(x, (int, float)) else f"{100 * x:+.1f}"


def _p(x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _answer(summary: Mapping[str, Any]) -> str:
    """The answer in words: the comparison's own sentences, else what the summary says without them."""
    sentences = [s for s in summary.get("answer") or [] if str(s).strip()]
    if sentences:
        return '<div class="answer"><ul>' + "".join(f"<li>{_e(s)}</li>" for s in sentences) + "</ul></div>"
    lines = []
    if summary.get("best_variant"):
        lines.append(
            f"Best variant: <strong>{_e(summary['best_variant'])}</strong> "
            f"({_e(summary.get('best_variant_by', 'chosen on validation data'))})."
        )
    baseline = summary.get("baseline")
    for name, v in (summary.get("variants") or {}).items():
        if name != baseline and baseline is not None and v.get("delta_accuracy"):
            lines.append(f"{_e(name)} vs {_e(baseline)}: accuracy {_e(_delta_note(v.get('delta_accuracy')))}.")
    if not lines:
        return ""
    return '<div class="answer"><ul>' + "".join(f"<li>{line}</li>" for line in lines) + "</ul></div>"


def _contrasts(summary: Mapping[str, Any]) -> str:
    rows, classes = [], []
    for c in summary.get("contrasts") or []:
        interval = (
            "—"
            if c.get("ci_low") is None or c.get("ci_high") is None
            else f"[{_points(c['ci_low'])}, {_points(c['ci_high'])}]"
        )
        cost = c.get("cost_ratio") or {}
        ratio = ", ".join(f"{k} ×{v:.2g}" for k, v in cost.items() if isinstance(v, (int, float))) or "—"
        rows.append(
            [
                c.get("name", f"{c.get('a')} vs {c.get('b')}"),
                f"{c.get('a')} vs {c.get('b')}",
                c.get("metric"),
                _points(c.get("delta")),
                interval,
                _p(c.get("p_value")),
                _p(c.get("p_adjusted")),
                "—" if c.get("sesoi") is None else f"±{100 * c['sesoi']:.1f}",
                c.get("verdict"),
                "—" if c.get("mde") is None else f"{100 * c['mde']:.1f}",
                f"{c.get('seeds_a', '—')} / {c.get('seeds_b', '—')}",
                ratio,
            ]
        )
        classes.append(f"verdict-{str(c.get('verdict', '')).split()[0].lower()}" if c.get("verdict") else "")
    if not rows:
        return ""
    head = [
        "contrast",
        "compares",
        "metric",
        "Δ (points)",
        "interval",
        "p",
        "p (Holm)",
        "SESOI",
        "verdict",
        "MDE (points)",
        "seeds",
        "cost ratio",
    ]
    return (
        "<h2>Contrasts</h2>"
        + _table(head, rows, row_classes=classes)
        + (
            '<p class="caption">Δ and interval in percentage points (a − b); SESOI: the smallest difference that matters, '
            "within which a difference counts as equivalent; MDE: the difference these seeds would detect with 80% power; "
            "cost ratio a / b.</p>"
        )
    )


def _comparison(summary: Mapping[str, Any]) -> str:
    headers, rows = _table_cells(dict(summary))
    best = summary.get("best_variant")
    classes = ["best" if name == best else "" for name in summary.get("variants", {})]
    return _table(headers, rows, row_classes=classes) + f'<p class="caption">{_e(caption(dict(summary)))}</p>'


def _figure_rank(path: Path) -> tuple[int, str]:
    stem = path.stem.lower()
    return next((i for i, word in enumerate(_FIGURE_ORDER) if word in stem), len(_FIGURE_ORDER)), stem


def _figures(paths: Iterable[Path]) -> str:
    items = []
    for p in sorted(paths, key=_figure_rank):
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        label = p.stem.replace("_", " ")
        items.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(label)}"><figcaption>{_e(label)}</figcaption></figure>'
        )
    return '<div class="figs">' + "".join(items) + "</div>" if items else ""


def _where(summary: Mapping[str, Any]) -> str:
    """Accuracy per slice beside the baseline's, and the texts a variant gets right where the baseline is wrong (and back)."""
    baseline = summary.get("baseline")
    out = []
    for name, v in (summary.get("variants") or {}).items():
        if name == baseline or not (v.get("slices") or v.get("disagreements")):
            continue
        out.append(f"<h3>{_e(name)}</h3>")
        for slice_name, rows in (v.get("slices") or {}).items():
            if not rows:
                continue
            head = [
                "tokens" if slice_name == "length" else slice_name,
                "n",
                f"{name} acc %",
                f"{baseline or 'baseline'} acc %",
                "Δ",
            ]
            body = []
            for r in rows:
                key = f"{r.get('lo')}–{r.get('hi')}" if slice_name == "length" else r.get("value")
                base = r.get("baseline_accuracy")
                body.append(
                    [
                        key,
                        r.get("n"),
                        f"{100 * r['accuracy']:.1f}",
                        "—" if base is None else f"{100 * base:.1f}",
                        "" if base is None else f"{100 * (r['accuracy'] - base):+.1f}",
                    ]
                )
            out.append(_table(head, body))
        d = v.get("disagreements")
        if d:
            out.append(
                f"<p>Right where {_e(baseline)} is wrong: <strong>{_e(d.get('wins'))}</strong> texts; wrong where "
                f"{_e(baseline)} is right: <strong>{_e(d.get('losses'))}</strong> (majority vote over seeds).</p>"
            )
            body = [
                [
                    direction,
                    e.get("label"),
                    _clip(e.get("text"), 300).replace("\\|", "|"),
                    e.get("variant"),
                    e.get("baseline"),
                ]
                for direction in ("wins", "losses")
                for e in (d.get("examples") or {}).get(direction) or []
            ]
            if body:
                out.append(_table(["", "label", "text", name, baseline or "baseline"], body, text_columns=(2,)))
    return "".join(out)


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _configuration(configs: Mapping[str, Mapping[str, Any]] | None) -> str:
    """Settings every variant shares, then a table of the ones that differ (one column per variant)."""
    if not configs:
        return "<p>Not recorded with this run.</p>"
    flats = {name: _flat(cfg) for name, cfg in configs.items()}
    keys = sorted({k for f in flats.values() for k in f})
    missing = object()

    def show(value: Any) -> str:
        return "—" if value is missing else value if isinstance(value, str) else json.dumps(value, default=str)

    differ = [k for k in keys if len({show(f.get(k, missing)) for f in flats.values()}) > 1]
    shared = [k for k in keys if k not in differ]
    names = list(flats)
    parts = []
    if differ:
        parts.append("<h3>What differs between variants</h3>")
        parts.append(
            _table(["setting", *names], [[k, *(show(flats[n].get(k, missing)) for n in names)] for k in differ])
        )
    if shared:
        first = flats[names[0]]
        parts.append("<h3>Shared by every variant</h3>")
        parts.append(
            '<dl class="kv">'
            + "".join(f"<dt>{_e(k)}</dt><dd>{_e(show(first.get(k, missing)))}</dd>" for k in shared)
            + "</dl>"
        )
    return "".join(parts)


def _kv(pairs: Mapping[str, Any]) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs.items()) + "</dl>"


def _data(summary: Mapping[str, Any]) -> str:
    d = summary.get("data") or {}
    if not d:
        return "<p>Not recorded with this run.</p>"
    splits = sorted(
        set(d.get("fingerprints") or {}) | set(d.get("rows") or {}) | set(d.get("sources") or {}),
        key=lambda s: ("train", "validation", "test").index(s) if s in ("train", "validation", "test") else 9,
    )
    rows = [
        [s, (d.get("rows") or {}).get(s), (d.get("sources") or {}).get(s), (d.get("fingerprints") or {}).get(s)]
        for s in splits
    ]
    labels = d.get("labels") or summary.get("label_names") or []
    return _table(["split", "rows", "source", "fingerprint"], rows, text_columns=(2, 3)) + (
        f'<p class="caption">labels: {_e(", ".join(map(str, labels)))}</p>' if labels else ""
    )


def _method(summary: Mapping[str, Any]) -> str:
    parts = []
    if summary.get("significance"):
        parts.append(f"<p>{_e(summary['significance'])}</p>")
    if summary.get("method"):
        parts.append(_kv(summary["method"]))
    if summary.get("slices"):
        parts.append(_kv({f"slices: {k}": v for k, v in summary["slices"].items()}))
    if summary.get("best_variant_by"):
        parts.append(f"<p>The best variant is chosen by {_e(summary['best_variant_by'])}.</p>")
    parts.append(f"<p>{_e(CALIBRATION_NOTE)}</p>")
    return "".join(parts)


def _task_body(summary: Mapping[str, Any], figures: list[Path], h: str = "h2") -> str:
    parts = [
        f"<{h}>Answer</{h}>",
        _answer(summary) or "<p>No baseline and no contrasts: see the table.</p>",
        _contrasts(summary),
        f"<{h}>Comparison</{h}>",
        _comparison(summary),
    ]
    if figures:
        parts += [f"<{h}>Figures</{h}>", _figures(figures)]
    where = _where(summary)
    if where:
        parts += [f"<{h}>Where each variant differs from the baseline</{h}>", where]
    return "".join(parts)


def render_html(
    summary: Mapping[str, Any],
    *,
    title: str,
    figures: Mapping[str | None, list[Path]] | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    environment: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> str:
    """The report as one HTML string. ``figures``: PNG paths per task (None: a single-task pipeline)."""
    figures = figures or {}
    tasks = summary.get("tasks")
    meta = []
    for label, key in (
        ("pipeline", "pipeline"),
        ("parent run", "parent_run_id"),
        ("experiment", "experiment_id"),
        ("tracking", "tracking_uri"),
        ("wall time (s)", "wall_seconds"),
    ):
        if summary.get(key) is not None:
            meta.append(f"{label} <code>{_e(summary[key])}</code>")
    body = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{" · ".join(meta)}</p>']
    if summary.get("description"):
        body.append(f"<p>{_e(summary['description'])}</p>")
    if command:
        body.append(f"<pre>{_e(command)}</pre>")
    if tasks:
        for task, s in tasks.items():
            body += [f"<h2>Task: {_e(task)}</h2>", _task_body(s, figures.get(task, []), h="h3")]
        first = next(iter(tasks.values()), {})
    else:
        body.append(_task_body(summary, figures.get(None, [])))
        first = summary
    body += [
        "<h2>Configuration</h2>",
        _configuration(configs),
        "<h2>Data</h2>",
        _data(first),
        "<h2>Environment</h2>",
        _kv(environment) if environment else "<p>Not recorded with this run.</p>",
        "<h2>Method</h2>",
        _method(first),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def comparison_figures(comparison_dir: Path, summary: Mapping[str, Any]) -> dict[str | None, list[Path]]:
    """Every PNG the comparison wrote: ``comparison/*.png``, or ``comparison/<task>/*.png`` per task."""
    comparison_dir = Path(comparison_dir)
    if summary.get("tasks"):
        return {task: sorted((comparison_dir / task).glob("*.png")) for task in summary["tasks"]}
    return {None: sorted(comparison_dir.glob("*.png"))}


def write_html(out_path: Path, summary: Mapping[str, Any], comparison_dir: Path, **kwargs: Any) -> Path:
    """Render the report with the comparison's figures and write it whole (a temporary file renamed into place)."""
    out_path = Path(out_path)
    text = render_html(summary, figures=comparison_figures(comparison_dir, summary), **kwargs)
    return write_atomically(out_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = ["CALIBRATION_NOTE", "comparison_figures", "render_html", "write_html"]
