"""What a prepared dataset looks like: rows and labels per split, length percentiles (``textclf data inspect``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc

from textclf.data.prepare import SPLITS, PreparedData


def summarize(data: PreparedData) -> dict[str, Any]:
    """Row counts, label distribution and word-length percentiles per split."""
    out: dict[str, Any] = {"label_names": data.label_names, "splits": {}}
    for split in SPLITS:
        ds = data.splits[split]
        y = data.labels(split)
        words = pc.list_value_length(pc.utf8_split_whitespace(ds.data.table.column("text"))).to_numpy(
            zero_copy_only=False
        )
        out["splits"][split] = {
            "rows": len(ds),
            "labels": {data.label_names[i]: int(c) for i, c in enumerate(np.bincount(y, minlength=data.num_classes))},
            "words": percentiles(words),
            "fingerprint": data.fingerprints[split],
        }
    out["rows"] = sum(s["rows"] for s in out["splits"].values()) - (
        out["splits"]["test"]["rows"] if data.report.get("test_is_validation") else 0
    )
    out.update({k: v for k, v in data.report.items()})
    return out


def percentiles(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {}
    p = np.percentile(x, [50, 90, 95, 99])
    return {
        "mean": round(float(x.mean()), 1),
        "p50": float(p[0]),
        "p90": float(p[1]),
        "p95": float(p[2]),
        "p99": float(p[3]),
        "max": int(x.max()),
    }
