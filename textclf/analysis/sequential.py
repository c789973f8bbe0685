"""As many seeds as the answer needs: the stopping rule behind ``seeds: {min, max}``.

A pipeline that writes ``seeds: {min: 3, max: 9}`` trains ``min`` seeds of
every variant, judges its contrasts (:mod:`textclf.analysis.contrasts`), and
then, in rounds, adds ``step`` seeds (default: ``min``) **only to the
variants of contrasts still inconclusive**, until every contrast has a
verdict or the variants reach ``max`` seeds. Seeds are numbered from
``start`` (default 1), so a later round's first seeds are an earlier fixed
design's: every training already done comes from the cache.

**Why the error rate holds across rounds.** Looking at the data after every
round and stopping when a verdict appears is optional stopping: tested at
alpha each time, the chance of some false verdict grows with the number of
looks. Here alpha is spent over the looks in equal parts (Bonferroni): with
``K`` possible looks (``min``, ``min + step``, ..., ``max``), every look
judges its family at ``alpha / K``. The chance that *any* look makes a false
verdict is at most the sum of the looks' chances, ``K · alpha / K = alpha``,
whatever rule picks the variants that get more seeds, and the verdicts the
report shows (the last look's) are one of those looks. It is conservative
(the looks share seeds, so their errors overlap); few looks keep it cheap,
hence ``step = min`` by default (3, 6, 9 seeds: three looks at alpha / 3).
``tests/test_sequential.py`` and ``bench/calibration.py`` check the
family-wise rate by simulation under the null, at equivalence margins, and
with seed sds of 0-5 points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SeedSchedule", "to_extend"]


@dataclass(frozen=True)
class SeedSchedule:
    """``seeds: {min, max, step, start}`` of a pipeline: the seed counts at which the contrasts are judged."""

    min: int
    max: int
    step: int
    start: int = 1

    @property
    def looks(self) -> list[int]:
        """The seed counts per variant at which verdicts may be read: min, min + step, ..., max."""
        counts = list(range(self.min, self.max, self.step)) + [self.max]
        return sorted(set(counts))

    def alpha_per_look(self, alpha: float) -> float:
        """alpha spent in equal parts over the possible looks (see the module docstring)."""
        return alpha / len(self.looks)

    def seeds(self, count: int) -> list[int]:
        """The first ``count`` seeds of the schedule."""
        return list(range(self.start, self.start + count))

    def next_count(self, current: int) -> int | None:
        """The seed count of the look after ``current``; None when ``current`` is the last."""
        later = [c for c in self.looks if c > current]
        return later[0] if later else None

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "max": self.max, "step": self.step, "start": self.start}


def schedule_from(value: Mapping[str, Any]) -> SeedSchedule:
    """A validated :class:`SeedSchedule` from a pipeline's ``seeds:`` mapping; ValueError names the key and the fix."""
    allowed = {"min", "max", "step", "start"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"seeds: unknown key(s) {unknown}; a seed schedule has min, max and optionally step and start")
    for key in ("min", "max"):
        if key not in value:
            raise ValueError(f"seeds.{key} is missing: write seeds: {{min: 3, max: 9}} (or a list of seeds)")
    out = {}
    for key, default in (("min", None), ("max", None), ("step", None), ("start", 1)):
        v = value.get(key, default)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"seeds.{key} must be a whole number, got {v!r}")
        out[key] = v
    lo, hi = out["min"], out["max"]
    if lo < 2:
        raise ValueError(
            f"seeds.min must be at least 2 (a contrast needs 2 seeds a side to estimate seed variance), got {lo}"
        )
    if hi < lo:
        raise ValueError(f"seeds.max ({hi}) must be at least seeds.min ({lo})")
    step = out.get("step", lo)
    if step < 1:
        raise ValueError(f"seeds.step must be at least 1, got {step}")
    start = out["start"]
    if start < 0 or start + hi - 1 > 2**32 - 1:
        raise ValueError(f"seeds.start must be in [0, 2**32 - max], got {start}")
    if math.ceil((hi - lo) / step) + 1 > 20:
        raise ValueError(
            f"seeds: {{min: {lo}, max: {hi}, step: {step}}} allows {math.ceil((hi - lo) / step) + 1} looks; each look "
            "costs alpha (it is split over them), so more than 20 leaves almost none: raise seeds.step"
        )
    return SeedSchedule(min=lo, max=hi, step=step, start=start)


def to_extend(
    rows: Sequence[Mapping[str, Any]],
    members: Mapping[str, Iterable[str]],
    counts: Mapping[str, int],
    schedule: SeedSchedule,
) -> dict[str, int]:
    """Which variants get more seeds after a look, and how many each should have: {variant: new seed count}.

    ``rows``: the primary contrast rows of the look (``name``, ``verdict``);
    ``members``: each contrast's variants (every variant with a weight);
    ``counts``: each variant's seeds so far. A variant of an ``inconclusive``
    contrast moves to the next look's count, unless it is at ``max``.
    """
    out: dict[str, int] = {}
    for row in rows:
        if row.get("verdict") != "inconclusive":
            continue
        for v in members.get(row["name"], ()):
            nxt = schedule.next_count(counts.get(v, 0))
            if nxt is not None:
                out[v] = max(out.get(v, 0), nxt)
    return out
