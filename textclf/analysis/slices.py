"""The slices of a ``data.slice_columns`` column in a comparison: one per value, capped for columns of many values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textclf.data.config import MAX_SLICE_VALUES


def natural(value: str) -> tuple:
    """Sort key: integers by value, before other strings ("2" < "10" < "a")."""
    return (0, int(value), "") if value.lstrip("-").isdigit() else (1, 0, value)


def column_slices(values: Sequence[Any]) -> tuple[list[tuple[dict[str, Any], np.ndarray]], str | None]:
    """The slices of one ``data.slice_columns`` column: ([({"value": v}, row indices)], note or None).

    Up to :data:`MAX_SLICE_VALUES` values, each its own slice. Past that (a
    column of ids gave 893 one-row slices per variant) the largest
    ``MAX_SLICE_VALUES - 1`` values with at least 2 rows keep theirs and the rest
    are pooled in one ``other`` slice, and the note says so.
    """
    values = np.asarray(values).astype(str)
    uniq, counts = np.unique(values, return_counts=True)
    if uniq.size <= MAX_SLICE_VALUES:
        return [({"value": v}, np.flatnonzero(values == v)) for v in sorted(uniq.tolist(), key=natural)], None
    order = sorted(range(uniq.size), key=lambda i: (-counts[i], natural(str(uniq[i]))))
    keep = [str(uniq[i]) for i in order if counts[i] >= 2][: MAX_SLICE_VALUES - 1]
    parts = [({"value": v}, np.flatnonzero(values == v)) for v in sorted(keep, key=natural)]
    pooled = int(uniq.size - len(keep))
    rest = np.flatnonzero(~np.isin(values, keep))
    parts.append(({"value": f"other ({pooled} values)", "pooled_values": pooled}, rest))
    note = (
        f"{uniq.size} distinct values in {values.size} test texts: the {len(keep)} largest with at least 2 texts are shown, "
        f"the other {pooled} pooled ({rest.size} texts)"
    )
    if uniq.size > values.size / 2:
        note += "; nearly one value per text looks like an identifier, not a group to slice by"
    return parts, note
