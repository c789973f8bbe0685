"""The self-contained HTML report: what it shows, that it escapes user text, needs no network, and renders in Chromium.

The browser tests run headless Chromium (Debian: ``apt-get install chromium``)
and are skipped, saying so, when no ``chromium`` binary is on the PATH.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from textclf.analysis.html_report import render_html, write_html

EVIL = '<img src=x onerror="alert(1)">'
ANSWER = "Depth buys nothing here: lstm-x2 is equivalent to lstm within ±1 point."


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)"
)


def run_chromium(url: str, profile: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url`` with no background traffic; stdout holds the DOM with --dump-dom."""
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _summary(*, with_answer: bool) -> dict:
    stat = lambda m, sd=0.01: {"mean": m, "sd": sd}  # noqa: E731
    variants = {
        "lstm": {
            "kind": "neural",
            "seeds": [1, 2],
            "n_seeds": 2,
            "test_accuracy": stat(0.80),
            "test_macro_f1": stat(0.79),
            "val_accuracy": stat(0.81),
            "params": 1000,
            "train_seconds": stat(1.0),
            "tokens_per_second": stat(5000.0),
            "latency_p50_ms": stat(0.5),
            "generalization_gap": stat(0.02),
            "delta_accuracy": None,
            "slices": {},
        },
        EVIL: {
            "kind": "neural",
            "seeds": [1, 2],
            "n_seeds": 2,
            "test_accuracy": stat(0.82),
            "test_macro_f1": stat(0.81),
            "val_accuracy": stat(0.83),
            "params": 2000,
            "train_seconds": stat(2.0),
            "tokens_per_second": stat(2500.0),
            "latency_p50_ms": stat(0.9),
            "generalization_gap": stat(0.03),
            "delta_accuracy": {"mean": 0.02, "ci_low": -0.01, "ci_high": 0.05, "p_value": 0.2, "p_adjusted": 0.2},
            "slices": {"length": [{"lo": 1, "hi": 5, "n": 10, "accuracy": 0.9, "baseline_accuracy": 0.8}]},
            "disagreements": {
                "wins": 1,
                "losses": 0,
                "examples": {
                    "wins": [
                        {
                            "text": "<script>alert('x')</script> a fine film",
                            "label": "pos",
                            "variant": "pos",
                            "baseline": "neg",
                        }
                    ],
                    "losses": [],
                },
            },
        },
    }
    s = {
        "pipeline": "demo",
        "parent_run_id": "abc123",
        "baseline": "lstm",
        "n_test": 20,
        "n_classes": 2,
        "label_names": ["neg", "pos"],
        "alpha": 0.05,
        "variants": variants,
        "best_variant": EVIL,
        "best_variant_by": "highest mean val_accuracy over seeds",
        "significance": "Paired t interval over examples and seeds.",
        "method": {"accuracy": "paired t"},
        "data": {
            "sources": {"train": "data.csv"},
            "fingerprints": {"train": "f00d", "test": "beef"},
            "rows": {"train": 80, "test": 20},
            "labels": ["neg", "pos"],
        },
    }
    if with_answer:
        s["answer"] = [ANSWER, "The BiLSTM costs 2.0× the training time."]
        s["contrasts"] = [
            {
                "name": "depth",
                "a": EVIL,
                "b": "lstm",
                "kind": "derived",
                "metric": "accuracy",
                "delta": 0.02,
                "ci_low": -0.01,
                "ci_high": 0.05,
                "p_value": 0.2,
                "p_adjusted": 0.2,
                "sesoi": 0.01,
                "verdict": "inconclusive",
                "mde": 0.06,
                "seeds_a": 2,
                "seeds_b": 2,
                "cost_ratio": {"train_seconds": 2.0, "params": 2.0, "latency_p50_ms": 1.8},
            }
        ]
        s["primary_metric"] = "accuracy"
    return s


def _figures(folder: Path) -> Path:
    """Two real PNGs, one under a name no list in the code knows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("learning_curves", "some_new_figure"):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot([1, 2, 3], [0.5, 0.7, 0.8])
        fig.savefig(folder / f"{name}.png", dpi=60)
        plt.close(fig)
    return folder


def test_report_shows_the_answer_and_contrasts_when_the_comparison_made_them(tmp_path):
    figs = _figures(tmp_path / "comparison")
    out = write_html(
        tmp_path / "r.html",
        _summary(with_answer=True),
        figs,
        title="t",
        configs={"lstm": {"encoder": {"layers": 1}}},
        environment={"torch": "2.13.0"},
    )
    text = out.read_text(encoding="utf-8")
    assert ANSWER in text
    assert "<h2>Contrasts</h2>" in text and "inconclusive" in text and "×2" in text  # cost ratio
    assert "Best variant:" not in text  # the comparison's own sentences replace the fallback


def test_report_without_answer_shows_the_variants_against_the_baseline(tmp_path):
    text = render_html(_summary(with_answer=False), title="t")
    assert "<h2>Contrasts</h2>" not in text
    assert "Best variant:" in text and "vs lstm: accuracy +2.0 points" in text
    assert "Δacc vs lstm" in text and "baseline" in text  # the comparison table's column and baseline row


def test_every_figure_is_inline_and_nothing_is_fetched(tmp_path):
    figs = _figures(tmp_path / "comparison")
    text = write_html(tmp_path / "r.html", _summary(with_answer=True), figs, title="t").read_text()
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert 'alt="some new figure"' in text  # a figure under a name the code does not list is embedded too
    # No script, no stylesheet link, no URL a browser would fetch.
    assert (
        "<script" not in text
        and "<link" not in text
        and not re.search(r'(src|href)="(https?:)?//', text)
        and "url(" not in text
    )


def test_user_strings_are_escaped(tmp_path):
    text = render_html(_summary(with_answer=True), title="<b>title</b>", configs={EVIL: {"x": "<i>y</i>"}})
    assert EVIL not in text and "<script>alert" not in text and "<b>title</b>" not in text and "<i>y</i>" not in text
    assert html_escape(EVIL) in text and "&lt;script&gt;alert" in text


def html_escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def test_configuration_shows_what_differs_then_what_is_shared():
    configs = {
        "rnn": {"encoder": {"cell": "rnn", "layers": 1}, "train": {"epochs": 3}},
        "lstm": {"encoder": {"cell": "lstm", "layers": 1}, "train": {"epochs": 3}},
    }
    text = render_html(_summary(with_answer=False), title="t", configs=configs)
    differ = text[text.index("What differs") : text.index("Shared by every variant")]
    shared = text[text.index("Shared by every variant") :]
    assert "encoder.cell" in differ and "encoder.layers" not in differ
    assert "encoder.layers" in shared and "train.epochs" in shared


def test_html_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import textclf.analysis.html_report as hr

    (tmp_path / "r.html").write_text("old")
    monkeypatch.setattr(hr, "render_html", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        hr.write_html(tmp_path / "r.html", _summary(with_answer=False), tmp_path, title="t")
    assert (tmp_path / "r.html").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.html"]


# --------------------------------------------------------------------------- in a real browser

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({w: i.getBoundingClientRect().width, h: i.getBoundingClientRect().height,
                                               nw: i.naturalWidth, ok: i.complete}));
  const out = document.createElement('pre'); out.id = 'probe';
  const fetched = performance.getEntriesByType('resource').map(r => r.name);
  out.textContent = JSON.stringify({imgs, fetched, text: document.body.innerText});
  document.body.appendChild(out);
});
</script>"""


@needs_chromium
def test_report_renders_in_chromium_with_figures_and_no_console_errors(tmp_path):
    figs = _figures(tmp_path / "comparison")
    report = write_html(tmp_path / "r.html", _summary(with_answer=True), figs, title="t")
    # The report has no script of its own: a copy with a probe measures what a person would see.
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    # Every host unresolvable: a request to any network would fail and log an error.
    result = run_chromium(
        probed.as_uri(),
        tmp_path / "profile",
        "--enable-logging=stderr",
        "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000",
        "--dump-dom",
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stderr[-2000:]
    import html

    probe = json.loads(html.unescape(match.group(1)))
    assert len(probe["imgs"]) == 2 and all(i["ok"] and i["nw"] > 0 and i["w"] > 0 and i["h"] > 0 for i in probe["imgs"])
    assert (
        ANSWER in probe["text"] and EVIL in probe["text"] and "lstm" in probe["text"]
    )  # the name shown as text, not run
    assert probe["fetched"] == []  # nothing but the file itself was loaded
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Failed to load" in line]
    assert not console, console


def test_a_multi_task_report_has_one_section_per_task_with_its_own_figures(tmp_path):
    _figures(tmp_path / "comparison" / "long")
    (tmp_path / "comparison" / "short").mkdir()
    summary = {"pipeline": "diag", "tasks": {"long": _summary(with_answer=True), "short": _summary(with_answer=False)}}
    text = write_html(tmp_path / "r.html", summary, tmp_path / "comparison", title="t").read_text()
    long_part, short_part = text.split("Task: short")
    assert "Task: long" in long_part and long_part.count("<img") == 2 and ANSWER in long_part
    assert short_part.count("<img") == 0 and "Best variant:" in short_part
