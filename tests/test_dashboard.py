"""The MLflow view of a run: its stored state, a store that refuses it, the parent's artifacts, and the view in a browser.

One tiny pipeline (rnn and bilstm × 2 seeds, 2 epochs) runs once for the
module; a second, fully cached ``--new-run`` of it runs against a store whose
``set_experiment_tag`` raises. The browser test serves the store with
``mlflow ui`` on a free port of 127.0.0.1 and opens the view's URL in headless
Chromium (skipped, saying so, without a ``chromium`` binary).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_html_report import needs_chromium, run_chromium  # noqa: E402
from test_pipeline import write_corpus, write_pipeline  # noqa: E402
from test_reuse import _isolate, cli  # noqa: E402

from textclf.tracking import view  # noqa: E402

# --------------------------------------------------------------------------- the state (no MLflow needed)


def test_state_groups_the_parents_children_by_variant_with_the_comparison_charts():
    state = view.view_state("abc123", primary_metric="val_macro_f1")
    assert state["searchFilter"] == "tags.mlflow.parentRunId = 'abc123'"
    # The values the UI accepts (anything else groups nothing or crashes the page).
    assert state["groupBy"] == {
        "aggregateFunction": "average",
        "groupByKeys": [{"mode": "tag", "groupByData": "variant"}],
    }
    charts = {(c["type"], c["metricKey"]) for c in state["compareRunCharts"]}
    assert charts == {("BAR", "test_macro_f1"), ("LINE", "val_macro_f1"), ("LINE", "val_loss")}
    sections = {s["uuid"] for s in state["compareRunSections"] if s["display"]}
    assert {c["metricSectionId"] for c in state["compareRunCharts"]} <= sections
    assert state["orderByKey"] == "metrics.`test_macro_f1`" and state["runsHiddenMode"] == "SHOW_ALL"
    multi = view.view_state("abc123", multi_task=True)["groupBy"]["groupByKeys"]
    assert [k["groupByData"] for k in multi] == ["textclf.task", "variant"]


@pytest.mark.parametrize(
    "primary,expected",
    [
        (None, ("test_accuracy", "val_accuracy")),
        ("accuracy", ("test_accuracy", "val_accuracy")),
        ("test_macro_f1", ("test_macro_f1", "val_macro_f1")),
        ("loss", ("test_accuracy", "val_accuracy")),
    ],
)
def test_metric_names_follow_the_primary_metric(primary, expected):
    assert view.metric_names(primary) == expected


def test_tag_value_is_the_uis_own_format():
    value = view.encode_state({"a": 1}, name="demo · run 1", now_ms=5)
    envelope = json.loads(value)
    assert envelope["name"] == "demo · run 1" and envelope["createdAt"] == 5
    packed = envelope["state"]
    assert packed.startswith("deflate;")
    # zlib-wrapped deflate (the browser's CompressionStream('deflate')); raw deflate is rejected by the UI.
    assert json.loads(zlib.decompress(base64.b64decode(packed[len("deflate;") :]))) == {"a": 1}
    full = view.encode_state(view.view_state("f" * 32, multi_task=True), name="x" * 80)
    assert len(full) < view.MAX_TAG_CHARS  # an older MLflow server's tag limit
    assert view.decode_state(full)["searchFilter"].endswith("'" + "f" * 32 + "'")


def test_url_opens_the_runs_page_with_the_key():
    url = view.view_url("7", "abc", view.ui_base("sqlite:///x.db"))
    assert url == "http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=textclf-abc&compareRunsMode=CHART"
    assert view.view_url("7", "abc", view.ui_base("https://mlflow.example.org/")).startswith(
        "https://mlflow.example.org/#/experiments/7/runs?"
    )


class _Refusing:
    def set_experiment_tag(self, *args):
        raise RuntimeError("INVALID_PARAMETER_VALUE: tag value too long\nsecond line")


def test_a_store_that_refuses_the_tag_costs_one_warning_line(caplog):
    with caplog.at_level(logging.WARNING, logger="textclf.tracking.view"):
        assert view.store_view(_Refusing(), "1", "abc", name="demo") is None
    (record,) = caplog.records
    assert "not stored" in record.getMessage() and "too long" in record.getMessage() and "\n" not in record.getMessage()


# --------------------------------------------------------------------------- after a real run


@dataclass
class World:
    root: Path
    uri: str
    first: dict  # summary of the run with its view
    refused: dict  # summary of the cached --new-run whose store refused the view
    refused_warnings: list


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("dash")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root)
        pipe = write_pipeline(root / "tiny.yaml", write_corpus(root / "reviews.csv"))
        uri = f"sqlite:///{root}/mlruns/mlflow.db"
        assert cli("run", str(pipe), "-q", "--jobs", "1", "--summary-out", "s1.json") == 0

        def refuse(self, *args, **kwargs):
            raise RuntimeError("RESOURCE_DOES_NOT_EXIST: this server keeps no experiment tags")

        caught = _Collect()
        logging.getLogger("textclf").addHandler(caught)
        try:
            with pytest.MonkeyPatch.context() as refusing:
                refusing.setattr(MlflowClient, "set_experiment_tag", refuse)
                assert cli("run", str(pipe), "-q", "--jobs", "1", "--new-run", "--summary-out", "s2.json") == 0
        finally:
            logging.getLogger("textclf").removeHandler(caught)
        first, refused = (json.loads((root / f"s{i}.json").read_text()) for i in (1, 2))
        yield World(root, uri, first, refused, caught.messages)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def client(world, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.uri)
    mlflow.set_tracking_uri(world.uri)
    return MlflowClient()


@pytest.mark.slow
def test_the_experiment_carries_the_runs_view(world, client):
    s = world.first
    tags = client.get_experiment(s["experiment_id"]).tags
    state = view.decode_state(tags[view.TAG_PREFIX + view.view_key(s["parent_run_id"])])
    # The filter the view uses finds exactly this run's children, and the metrics it charts are theirs.
    children = client.search_runs([s["experiment_id"]], filter_string=state["searchFilter"])
    assert sorted(r.data.tags["variant"] for r in children) == ["bilstm", "bilstm", "rnn", "rnn"]
    for chart in state["compareRunCharts"]:
        for r in children:
            history = client.get_metric_history(r.info.run_id, chart["metricKey"])
            assert history, f"{chart['metricKey']} not logged by {r.info.run_name}"
            if chart["type"] == "LINE":
                assert sorted(m.step for m in history) == [1, 2]  # one point per epoch


@pytest.mark.slow
def test_the_parent_links_the_view_holds_the_report_and_no_single_bar_metrics(world, client):
    s = world.first
    parent = client.get_run(s["parent_run_id"])
    url = view.view_url(s["experiment_id"], s["parent_run_id"])
    assert url in parent.data.tags["mlflow.note.content"]
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "report.html" in top
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison") if a.path.endswith(".png")}
    assert "comparison/learning_curves.png" in figures and "comparison/accuracy_by_length.png" in figures
    html = Path(client.download_artifacts(parent.info.run_id, "report.html", str(world.root / "dl"))).read_text()
    assert html.count("data:image/png;base64,") == len(figures)  # every figure the comparison wrote, inline
    assert not [
        k for k in parent.data.metrics if k.endswith("_mean")
    ]  # no `<variant>.test_accuracy_mean` one-bar charts
    assert s["environment"]["mlflow"] and s["environment"]["torch"] and s["environment"]["threads per training"] == "1"


@pytest.mark.slow
def test_a_store_that_refuses_the_view_still_records_the_run(world, client):
    s = world.refused
    parent = client.get_run(s["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert view.TAG_PREFIX + view.view_key(s["parent_run_id"]) not in client.get_experiment(s["experiment_id"]).tags
    assert "viewStateShareKey" not in parent.data.tags["mlflow.note.content"]  # no link to a view that is not there
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    notes = [m for m in world.refused_warnings if "view" in m]
    assert len(notes) == 1 and "not stored" in notes[0] and "this server keeps no experiment tags" in notes[0]


@pytest.mark.slow
def test_report_html_for_a_past_run(world, client, tmp_path, capsys):
    out = tmp_path / "shared" / "r.html"
    assert cli("report", world.first["parent_run_id"], "--html", str(out)) == 0
    text = out.read_text()
    assert "bilstm" in text and "rnn (baseline)" in text and text.count("<img") >= 2
    assert "encoder.cell" in text and world.first["data"]["fingerprints"]["train"] in text and "Calibration" in text
    assert cli("report", "--html", str(tmp_path)) == 2  # a folder: refused, with the fix
    assert "give a file name" in capsys.readouterr().err


@pytest.mark.slow
def test_ui_prints_the_latest_runs_view(world, client, monkeypatch, capsys):
    from textclf.cli import runs as cli_runs

    started = []

    class FakeUI:
        def __init__(self, cmd):
            started.append(cmd)

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeUI)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url))
    assert cli("ui", "--port", "5123") == 0
    out = capsys.readouterr().out.replace("\n", "")
    # The latest finished run is the refused one: its view was never stored, so the one before it is not claimed either.
    assert "viewStateShareKey" not in out and started and not opened
    latest = cli_runs.latest_view_url(world.uri, "http://127.0.0.1:5123")
    assert latest is None
    # Once the latest run has a view, `textclf ui` names it.
    s = world.refused
    key = view.store_view(client, s["experiment_id"], s["parent_run_id"], name="again")
    try:
        assert cli("ui", "--port", "5123") == 0
        assert view.view_url(
            s["experiment_id"], s["parent_run_id"], "http://127.0.0.1:5123"
        ) in capsys.readouterr().out.replace("\n", "")
        assert not opened  # no display: no browser
    finally:
        client.delete_experiment_tag(s["experiment_id"], key)


def _stop(server: subprocess.Popen) -> None:
    """End the UI and the server workers it started (its own process group)."""
    import os
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(server: subprocess.Popen, port: int, timeout_s: float = 240) -> None:
    """Until the UI answers its health check (seconds on an idle machine; minutes on a loaded one)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow ui exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow ui did not answer on port {port} within {timeout_s:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@needs_chromium
def test_the_view_shows_the_children_grouped_by_variant_in_chromium(world, client, tmp_path):
    s = world.first
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            world.uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",  # one browser, one request at a time: MLflow's default of 4 starts 3 idle copies
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(server, port)
        url = view.view_url(s["experiment_id"], s["parent_run_id"], f"http://127.0.0.1:{port}")
        result = run_chromium(url, tmp_path / "profile", "--virtual-time-budget=20000", "--dump-dom", timeout=120)
        dom = result.stdout
    finally:
        _stop(server)
    # One group row per variant (the UI writes "Group: <value>"), each holding its two seeds' runs.
    assert "Group: bilstm" in dom and "Group: rnn" in dom, (dom[-2000:], result.stderr[-2000:])
    for name in ("bilstm-s1", "bilstm-s2", "rnn-s1", "rnn-s2"):
        assert name in dom
    assert "does not exist" not in dom and "share key is invalid" not in dom
    assert "textclf comparison" in dom  # the view's chart section
