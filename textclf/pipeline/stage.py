"""The one cached-stage helper every stage goes through.

A stage is described by a *spec*: a small pydantic model holding exactly what
the stage reads (its config section, the identity of its inputs). The spec is
both the stage's only input and, with the upstream keys, its cache key, so a
stage can never read something its key does not cover::

    key = stage_key(name, spec, upstream keys, the source the stage runs)
    lock(key) → hit? load it : (remove a forced entry) → compute into a temp folder → publish → load

Entries are written atomically by :class:`~textclf.core.cache.StageCache`; a
forced stage replaces its entry, every other stage reuses it. A damaged entry
is recomputed: one whose files fail their checksums never leaves
:meth:`~textclf.core.cache.StageCache.get`, and one that fails to load (an
entry from before checksums, say) is removed here with a warning. A full disk
while computing becomes one :class:`~textclf.core.errors.DiskFullError`
naming the entry (the temporary folder is already gone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from textclf.core import disk
from textclf.core.cache import StageCache, stage_key
from textclf.core.code import import_closure

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIX = (
    "Free space (`textclf cache prune --older-than 30` removes old entries) or move the stage cache "
    "(--cache-dir / TEXTCLF_CACHE_DIR), then re-run the same command: finished stages are kept."
)


@dataclass(frozen=True)
class StageResult(Generic[T]):
    """A stage's output: its cache key, its entry folder, whether it came from the cache, and the loaded value."""

    key: str
    path: Path
    cached: bool
    value: T


def spec_params(spec: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return spec.model_dump(mode="json") if isinstance(spec, BaseModel) else dict(spec)


# The module holding each stage's compute: its key hashes that module's import closure, so an edit to code the
# stage never runs (the report, the CLI, MLflow logging) keeps its entries. run_stage checks the table.
STAGE_CODE = {
    "prepare": "textclf.pipeline.data_stages",
    "tokenize": "textclf.pipeline.data_stages",
    "embed": "textclf.pipeline.data_stages",
    "train": "textclf.pipeline.model_stages",
    "evaluate": "textclf.pipeline.model_stages",
    "cost": "textclf.pipeline.model_stages",
    "tfidf": "textclf.pipeline.model_stages",
    "tune": "textclf.pipeline.tune",  # a variant's study: its sampler, pruner and trials (each trial's training has its own key)
}


def key_of(stage: str, spec: BaseModel | dict[str, Any], upstream: Sequence[StageResult | str | None] = ()) -> str:
    """The cache key of ``stage`` run on ``spec`` after ``upstream`` (results or their keys; None entries are skipped)."""
    keys = [u if isinstance(u, str) else u.key for u in upstream if u is not None]
    return stage_key(stage, spec_params(spec), keys, code=STAGE_CODE[stage])


def run_stage(
    cache: StageCache,
    stage: str,
    spec: BaseModel | dict[str, Any],
    upstream: Sequence[StageResult | None],
    *,
    compute: Callable[[Path], dict[str, Any] | None],
    load: Callable[[Path], T],
    force: bool = False,
) -> StageResult[T]:
    """Load ``stage``'s entry for ``spec``, or ``compute(tmp_dir)`` it (under the key's lock) and store it.

    ``compute`` writes the entry's files into the folder it is given and may
    return extra metadata for the entry's ``_entry.json``. ``force`` recomputes
    and replaces an existing entry.
    """
    if compute.__module__ not in import_closure(STAGE_CODE[stage]):  # its code would not be in its key
        raise RuntimeError(
            f"stage {stage!r}: compute {compute.__module__}.{compute.__qualname__} is outside {STAGE_CODE[stage]}'s imports"
        )
    key = key_of(stage, spec, upstream)
    with cache.lock(stage, key):
        hit = None if force else cache.get(stage, key)
        if hit is not None:
            try:
                return StageResult(key, hit, True, load(hit))
            except MemoryError:
                raise
            except Exception as exc:  # damage the checksums could not see
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                log.warning(
                    "stage-cache entry %s cannot be loaded (%s: %s); removed, it is computed again",
                    hit,
                    type(exc).__name__,
                    first,
                )
        cache.remove(stage, key)  # a forced or damaged entry is replaced, not kept beside the new one
        full = disk.reporting(cache.path(stage, key), root=cache.root, what="this stage-cache entry", fix=_FIX)
        with full, cache.write(stage, key) as tmp:
            meta = compute(tmp)
            if meta:
                cache.annotate(tmp, meta)
        hit = cache.get(stage, key)
    return StageResult(key, hit, False, load(hit))
