"""The MLflow UI view of one ``textclf run``: its children grouped by variant, with the comparison's charts.

MLflow's runs page (3.x) can open on a stored view: an experiment tag
``mlflow.sharedViewState.<key>`` holding the page's state, opened with
``#/experiments/<id>/runs?viewStateShareKey=<key>``. textclf writes one per
parent run (key ``textclf-<parent run id>``) after the run is recorded:

* the parent's children only (``tags.mlflow.parentRunId = '<id>'``), grouped by
  the ``variant`` tag (and ``textclf.task`` for a multi-task pipeline), each group
  one row with the average over seeds;
* a bar chart of the primary test metric per variant, and line charts of the
  per-epoch validation metric and validation loss, one mean line with a
  min–max band over seeds per variant.

The value is what the UI itself writes when a user shares a view: ``deflate;``
+ base64 of zlib-compressed JSON, wrapped in the named envelope 3.17 lists in
its Views menu. There is no version field and no validation: a reader that
does not understand a field replaces the whole UI state, so the state written
is complete. Storing it is best effort: a server or store that refuses the tag
costs the view, never the run (:func:`store_view` says why in one line).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import zlib
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

TAG_PREFIX = "mlflow.sharedViewState."
# The address `textclf ui` serves by default; a tracking server's own address replaces it.
DEFAULT_UI = "http://127.0.0.1:5000"
# MLflow 3.17 accepts tag values of 20,000 characters; older 3.x servers 5,000.
MAX_TAG_CHARS = 5000


def view_key(parent_run_id: str) -> str:
    """The share key of a parent run's view (tag ``mlflow.sharedViewState.<key>`` on its experiment)."""
    return f"textclf-{parent_run_id}"


def metric_names(primary_metric: str | None) -> tuple[str, str]:
    """(test metric for the bar chart, per-epoch validation metric for the line chart) from a summary's primary metric.

    The primary metric may be named bare (``accuracy``) or with its split
    (``val_macro_f1``, ``test_accuracy``); children log ``test_<m>`` once and
    ``val_<m>`` per epoch. A loss has no test metric of that name: accuracy then.
    """
    name = (primary_metric or "accuracy").strip()
    for prefix in ("test_", "val_", "final_val_"):
        name = name.removeprefix(prefix)
    if not name or name == "loss":
        name = "accuracy"
    return f"test_{name}", f"val_{name}"


def view_state(parent_run_id: str, *, primary_metric: str | None = None, multi_task: bool = False) -> dict[str, Any]:
    """The runs-page state of the view: a complete UI state plus the search facets (see the module docstring)."""
    test_metric, val_metric = metric_names(primary_metric)
    group_keys = [{"mode": "tag", "groupByData": "variant"}]
    if multi_task:
        group_keys.insert(0, {"mode": "tag", "groupByData": "textclf.task"})
    section = "textclf-comparison"

    def chart(uuid: str, kind: str, metric: str, **extra: Any) -> dict[str, Any]:
        return {
            "uuid": uuid,
            "type": kind,
            "metricKey": metric,
            "metricSectionId": section,
            "deleted": False,
            "isGenerated": False,
            **extra,
        }

    line = {
        "xAxisKey": "step",
        "scaleType": "linear",
        "lineSmoothness": 0,
        "displayPoints": True,
        "selectedXAxisMetricKey": "",
    }
    return {
        # UI state (ExperimentPageUIState): every field, since an older reader replaces the whole state.
        # The comparison's columns first (the default puts source, models and datasets before any metric).
        "selectedColumns": [f"metrics.`{test_metric}`", "metrics.`train_seconds`", "metrics.`params`", "tags.`seed`"],
        "columnOrder": [],
        "columnWidths": {},
        "runsExpanded": {},
        "runsPinned": [],
        "runsHidden": [],
        "runsVisibilityMap": {},
        "runsHiddenMode": "SHOW_ALL",  # the default shows the first 10 runs in the charts only
        "compareRunSections": [{"uuid": section, "name": "textclf comparison", "display": True, "isReordered": False}],
        "compareRunCharts": [
            chart("textclf-bar", "BAR", test_metric),
            chart("textclf-val", "LINE", val_metric, selectedMetricKeys=[val_metric], **line),
            chart("textclf-loss", "LINE", "val_loss", selectedMetricKeys=["val_loss"], **line),
        ],
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": False,
        "groupBy": {"aggregateFunction": "average", "groupByKeys": group_keys},
        "groupsExpanded": {},
        "autoRefreshEnabled": True,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
        "chartsSearchFilter": "",
        # Search facets: this run's children, best first (a date sort would bring the parent back as "additional runs").
        "searchFilter": f"tags.mlflow.parentRunId = '{parent_run_id}'",
        "orderByKey": f"metrics.`{test_metric}`",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
    }


def encode_state(state: dict[str, Any], *, name: str, now_ms: int | None = None) -> str:
    """The tag value the UI reads: the named envelope around ``deflate;`` + base64(zlib(JSON)).

    zlib-wrapped deflate, as the browser's ``CompressionStream('deflate')``
    writes it; raw deflate is rejected by the UI as an invalid key.
    """
    packed = "deflate;" + base64.b64encode(
        zlib.compress(json.dumps(state, separators=(",", ":")).encode("utf-8"), 9)
    ).decode("ascii")
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    return json.dumps({"name": name, "createdAt": ts, "updatedAt": ts, "state": packed}, separators=(",", ":"))


def decode_state(value: str) -> dict[str, Any]:
    """The state JSON back from a tag value (the envelope or a bare ``deflate;`` string); for tests and checks."""
    packed = value
    if value.lstrip().startswith("{"):
        packed = json.loads(value)["state"]
    if not packed.startswith("deflate;"):
        return json.loads(packed)
    return json.loads(zlib.decompress(base64.b64decode(packed[len("deflate;") :])).decode("utf-8"))


def ui_base(tracking_uri: str | None) -> str:
    """The UI's address: a tracking server's own, else what ``textclf ui`` serves (http://127.0.0.1:5000)."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_UI


def view_url(experiment_id: str, parent_run_id: str, base: str = DEFAULT_UI) -> str:
    """The URL that opens the view on its charts, the grouped runs beside them.

    The ``/runs`` part is required: without it the key is ignored.
    """
    key = quote(view_key(parent_run_id))
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={key}&compareRunsMode=CHART"


def store_view(
    client,
    experiment_id: str,
    parent_run_id: str,
    *,
    name: str,
    primary_metric: str | None = None,
    multi_task: bool = False,
) -> str | None:
    """Write the parent run's view on its experiment; the tag key, or None (with one warning line) when it could not be stored.

    A store that refuses the tag (an older server, a size limit, a permission)
    loses the view only: the run, its description and its report stand.
    """
    value = encode_state(view_state(parent_run_id, primary_metric=primary_metric, multi_task=multi_task), name=name)
    key = TAG_PREFIX + view_key(parent_run_id)
    if len(value) > MAX_TAG_CHARS:
        log.warning(
            "MLflow view of run %s not stored: %d characters, more than the %d an older MLflow server accepts",
            parent_run_id,
            len(value),
            MAX_TAG_CHARS,
        )
        return None
    try:
        client.set_experiment_tag(experiment_id, key, value)
    except Exception as exc:  # noqa: BLE001 - any refusal costs the view, never the run
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        log.warning(
            "MLflow view of run %s not stored (%s); the run, its description and report.html are complete",
            parent_run_id,
            first,
        )
        return None
    return key


def has_view(client, experiment_id: str, parent_run_id: str) -> bool:
    """Whether the experiment holds the parent run's view (a run recorded before views, or a refused tag: no)."""
    exp = client.get_experiment(experiment_id)
    return TAG_PREFIX + view_key(parent_run_id) in (exp.tags or {})
