"""The prepare stage: read a data source, validate it, split it, fingerprint it.

Sources (``data.source`` or ``data.train`` / ``data.validation`` / ``data.test``):

* files: ``.csv``, ``.tsv``, ``.jsonl`` / ``.json``, ``.parquet``
* ``hf:NAME[:CONFIG]``: a Hugging Face hub dataset through ``datasets.load_dataset``
* ``builtin:NAME``: a corpus textclf generates itself (see :mod:`textclf.data.corpora`)

Everything is read into a :class:`datasets.DatasetDict` backed by Arrow files,
so a large file is memory-mapped rather than held in Python lists, and
``Dataset.map`` can cache the tokenize stage by fingerprint. The result always
has splits ``train``, ``validation``, ``test`` and columns ``text`` (str) and
``label`` (int64 index into :attr:`PreparedData.label_names`).

Bad data is never dropped silently: invalid rows are an error naming the file
and row numbers, or (``data.on_invalid: drop``) an explicit, reported drop.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textclf.core.errors import DataError
from textclf.data.config import DataConfig
from textclf.data.sources import as_dataset, source_of

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_ROW_NOTE = "rows are numbered from 1, header excluded"


@dataclass
class PreparedData:
    """Output of the prepare stage."""

    splits: Any  # datasets.DatasetDict with train / validation / test: text (str), label (int64)
    label_names: list[str]
    fingerprints: dict[str, str]
    sources: dict[str, str]  # split -> where it came from (file path, hf:..., builtin:...)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def texts(self, split: str) -> list[str]:
        return self.splits[split]["text"]

    def slice_values(self, split: str, column: str) -> list[str]:
        """Values of ``data.slice_columns`` entry ``column`` for every row of ``split`` (None where missing)."""
        return self.splits[split][f"slice:{column}"]

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self.splits[split].data.column("label").to_numpy(), dtype=np.int64)


# --------------------------------------------------------------------------- reading


# --------------------------------------------------------------------------- validation


def _table(ds) -> pa.Table:
    """The Arrow table behind ``ds`` with any index mapping applied."""
    return ds.with_format(None).data.table if ds._indices is None else ds.flatten_indices().data.table


def _label_strings(col: pa.ChunkedArray, feature, where: str) -> pa.Array:
    """Labels as strings (null = missing): a CSV column may hold "1" and "pos" side by side, hub data holds ints."""
    col = col.combine_chunks()
    names = getattr(feature, "names", None)
    if names is not None:  # datasets.ClassLabel: ints indexing its names; -1 means "no label"
        idx = col.cast(pa.int64())
        valid = pc.and_(pc.greater_equal(idx, 0), pc.less(idx, len(names)))
        return pc.take(pa.array(names, pa.string()), pc.if_else(valid, idx, pa.scalar(None, pa.int64())))
    if pa.types.is_floating(col.type):
        vals = col.to_numpy(zero_copy_only=False)
        finite = vals[np.isfinite(vals)]
        # pandas reads an int column with gaps as float: 1.0 must stay the label "1".
        if np.all(finite == np.round(finite)):
            return pa.array([str(int(v)) if np.isfinite(v) else None for v in vals], pa.string())
        return pa.array([repr(float(v)) if np.isfinite(v) else None for v in vals], pa.string())
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"{where}: the label column has type {col.type}; expected strings or integers.") from None


def _select_columns(ds, cfg: DataConfig, where: str):
    """Keep the text and label columns as ``text`` (str) and ``label`` (str, label names)."""
    cols = ds.column_names
    if cfg.text_column == cfg.label_column:
        raise DataError(
            f"{where}: data.text_column and data.label_column are both {cfg.text_column!r}; they must differ."
        )
    absent = [c for c in cfg.slice_columns if c not in cols]
    if absent:
        raise DataError(
            f"{where}: data.slice_columns names {absent}, which the data does not have. Columns present: {cols}. "
            f"Name existing columns, or drop data.slice_columns."
        )
    missing = [c for c in (cfg.text_column, cfg.label_column) if c not in cols]
    if missing:
        keys = {cfg.text_column: "data.text_column", cfg.label_column: "data.label_column"}
        which = ", ".join(f"{m!r} ({keys[m]})" for m in missing)
        # pandas turns a surplus leading field into an index column: one more sign of a wrong delimiter.
        named = [c for c in cols if not c.startswith("__index_level_")]
        glued = [c for c in named if any(d in c for d in ",;\t|")]
        if glued and len(named) <= 2:
            hint = (
                f" Column {glued[0]!r} looks like several names glued together: is the file using another delimiter? "
                f"textclf reads .csv as comma- and .tsv as tab-separated; save it that way (or rename it)."
            )
        else:
            # Suggest a column that is not already taken, preferring strings for the text.
            free = [c for c in named if c not in (cfg.text_column, cfg.label_column)] or named
            is_str = lambda c: getattr(ds.features.get(c), "dtype", None) in ("string", "large_string")  # noqa: E731
            pick = sorted(free, key=lambda c: not is_str(c))[0] if missing[0] == cfg.text_column else free[0]
            hint = f" Point textclf at the right ones, e.g. --set {keys[missing[0]]}={pick}."
        raise DataError(f"{where}: column {which} not found. Columns present: {cols}.{hint}")
    table = _table(ds)
    text = table.column(cfg.text_column)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        try:
            text = text.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"{where}: the text column {cfg.text_column!r} has type {text.type}; expected strings."
            ) from None
    label = _label_strings(table.column(cfg.label_column), ds.features[cfg.label_column], where)
    # Built by position, so a swap (text_column: label, label_column: text) renames correctly.
    extra = {}
    for c in cfg.slice_columns:  # kept as text: a slice is a value to group by, whatever its type
        col = table.column(c)
        extra[f"slice:{c}"] = col if pa.types.is_string(col.type) else pc.cast(col, pa.string(), safe=False)
    return as_dataset(pa.table({"text": text.cast(pa.string()), "label": label, **extra}))


def invalid_rows(ds) -> dict[str, np.ndarray]:
    """Row indices (0-based) of null/empty/whitespace-only texts and null/empty/whitespace-only labels."""
    table = _table(ds)
    text = table.column("text")
    label = table.column("label")
    null_text = pc.is_null(text)
    blank = pc.equal(pc.utf8_trim_whitespace(pc.fill_null(text, "")), "")
    # A label string is a label, whatever it spells: a class named "None", "NA" or "null" is data (as in
    # scikit-learn). Missing means null (an empty CSV cell, JSON null, a float NaN) or blank only;
    # textclf.data.checks warns about a class whose name looks like a missing-value marker.
    bad_label = pc.or_(pc.is_null(label), pc.equal(pc.utf8_trim_whitespace(pc.fill_null(label, "")), ""))
    return {
        "null_text": np.flatnonzero(null_text.to_numpy(zero_copy_only=False)),
        "empty_text": np.flatnonzero(pc.and_(blank, pc.invert(null_text)).to_numpy(zero_copy_only=False)),
        "missing_label": np.flatnonzero(bad_label.to_numpy(zero_copy_only=False)),
    }


def _check_rows(ds, where: str, on_invalid: str, report: dict[str, Any]):
    bad = invalid_rows(ds)
    counts = {k: int(len(v)) for k, v in bad.items() if len(v)}
    if not counts:
        return ds
    described = "; ".join(
        f"{n} {k.replace('_', ' ')} (rows {', '.join(str(i + 1) for i in bad[k][:5])}{', ...' if n > 5 else ''})"
        for k, n in counts.items()
    )
    if on_invalid == "error":
        raise DataError(
            f"{where}: invalid rows: {described} ({_ROW_NOTE}). Fix them, or drop them explicitly with "
            f"--set data.on_invalid=drop."
        )
    drop = np.unique(np.concatenate([bad[k] for k in counts]))
    keep = np.setdiff1d(np.arange(len(ds)), drop)
    report.setdefault("dropped", {})[where] = {"rows": int(len(drop)), **counts}
    log.warning("%s: dropped %d invalid rows: %s", where, len(drop), described)
    if len(keep) == 0:
        raise DataError(f"{where}: every row is invalid ({described}); nothing is left to train on.")
    return ds.select(keep)


_INTEGER = r"^-?[0-9]+$"


def _check_label_kinds(labels, where: str) -> None:
    """Refuse a label column that mixes integers and words ("1" next to "pos"): almost always two label schemes."""
    numeric = pc.match_substring_regex(labels, _INTEGER).to_numpy(zero_copy_only=False)
    if numeric.all() or not numeric.any():
        return
    first_num, first_word = int(np.argmax(numeric)), int(np.argmin(numeric))
    raise DataError(
        f"{where}: the label column mixes numbers and words: {int(numeric.sum())} rows hold numbers "
        f"(e.g. {labels[first_num].as_py()!r} at row {first_num + 1}) and {int((~numeric).sum())} hold words "
        f"(e.g. {labels[first_word].as_py()!r} at row {first_word + 1}) ({_ROW_NOTE}). "
        f"Use one label scheme: map the numbers to names (or the names to numbers) before training."
    )


# --------------------------------------------------------------------------- splitting


# Below 2 training rows per class on average most classes have one example or none:
# nothing is learned per class, while the head (a row per class) and the evaluation grow
# with the data (10**5 labels in 200k rows trained for minutes, then ran out of memory).
MIN_ROWS_PER_CLASS = 2


def _check_class_count(n_classes: int, n_train: int, where: str, column: str) -> None:
    if n_classes * MIN_ROWS_PER_CLASS > n_train:
        raise DataError(
            f"{where}: {n_classes:,} distinct labels in column {column!r} (data.label_column) for {n_train:,} training rows, "
            f"fewer than {MIN_ROWS_PER_CLASS} rows per class on average: no classifier can learn that. Is {column!r} really "
            "the label, not an id or free text? Merge rare labels, or add rows."
        )


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out), stratified by label when every class can be split."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if fraction <= 0:
        return idx, idx[:0]
    n_held = int(round(len(labels) * fraction))
    if n_held == 0 or n_held >= len(labels):
        raise DataError(
            f"Cannot hold out {fraction:.0%} of {len(labels)} rows: too few rows. Give more data or "
            f"separate files (data.train / data.validation / data.test)."
        )
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 and min(n_held, len(labels) - n_held) >= len(counts) else None
    if stratify is None:
        log.warning("Some classes are too rare for a stratified split; splitting at random.")
    keep, held = train_test_split(idx, test_size=n_held, random_state=seed, stratify=stratify)
    return np.sort(keep), np.sort(held)


def fingerprint(ds, label_names: list[str] | None = None) -> str:
    """Content hash of a split (texts and labels, in order): keys caches and is logged as the dataset digest.

    With ``label_names``, what the integer labels mean is hashed too, so renaming a class changes it.
    """
    h = hashlib.sha256()
    if label_names is not None:
        h.update(json.dumps(list(label_names)).encode("utf-8"))
    table = _table(ds)
    for batch in table.select(["text", "label"]).to_batches(max_chunksize=65536):
        for col in batch.columns:
            arr = col if isinstance(col, pa.Array) else pa.concat_arrays(col.chunks)
            # Hash values, not buffers: the same content can sit in differently sliced buffers.
            if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
                lengths = pc.fill_null(pc.utf8_length(arr), -1).to_numpy(zero_copy_only=False).astype(np.int64)
                h.update(lengths.tobytes())
                h.update("".join(x for x in arr.to_pylist() if x is not None).encode("utf-8"))
            else:
                h.update(arr.to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------- the stage


def _load_sources(cfg: DataConfig, cache_dir) -> tuple[dict[str, Any], dict[str, str]]:
    """{split: raw Dataset} and {split: where it came from}, through the source registry."""
    if not cfg.source and not cfg.train:
        raise DataError(
            "No data given. Set data.source (one file, hf:NAME or builtin:NAME) or data.train, e.g. --set data.source=reviews.csv."
        )
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if cfg.source:
        read = source_of(cfg.source).read(cfg.source, cfg, cache_dir)
        for split, d in read.items():
            if split in SPLITS:
                # a source with its own splits (the hub) says which one each came from
                raw[split], sources[split] = (
                    d,
                    cfg.source if len(read) == 1 and split == "train" else f"{cfg.source}[{split}]",
                )
    else:
        for split, path in (("train", cfg.train), ("validation", cfg.validation), ("test", cfg.test)):
            if path:
                raw[split], sources[split] = source_of(path).read(path, cfg, cache_dir)["train"], path
    if "train" not in raw:
        raise DataError(f"{cfg.source}: has no 'train' split (splits: {sorted(raw)}).")
    return raw, sources


def prepare(cfg: DataConfig, cache_dir: str | Path | None = None) -> PreparedData:
    """Read, validate, label-encode and split the data described by ``cfg``."""
    import datasets

    raw, sources = _load_sources(cfg, cache_dir)
    report: dict[str, Any] = {}
    for split in list(raw):
        where = sources[split]
        ds = _select_columns(raw[split], cfg, where)
        raw[split] = _check_rows(ds, where, cfg.on_invalid, report)

    # Label vocabulary from train only; a label unseen in training can't be predicted.
    # Arrow compute throughout: a million labels never become Python strings.
    labels = {split: pc.utf8_trim_whitespace(_table(ds).column("label")) for split, ds in raw.items()}
    for split, col in labels.items():
        _check_label_kinds(col, sources[split])
    uniq = pc.unique(labels["train"]).to_pylist()
    names = sorted(uniq, key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, s))
    if len(names) < 2:
        raise DataError(
            f"{sources['train']}: only one class ({names[0]!r}) in the training data; a classifier needs at least two. "
            f"Check data.label_column (now {cfg.label_column!r})."
        )
    value_set = pa.array(names, pa.string())
    encoded: dict[str, Any] = {}
    for split, ds in raw.items():
        idx = pc.index_in(labels[split], value_set=value_set)
        if idx.null_count:
            unknown = sorted(set(pc.unique(pc.filter(labels[split], pc.is_null(idx))).to_pylist()))
            raise DataError(
                f"{sources[split]}: labels {unknown[:10]} never occur in the training data "
                f"(training labels: {names[:20]}). Remove those rows or add examples of them to training."
            )
        y = idx.to_numpy(zero_copy_only=False).astype(np.int64)
        keep = [c for c in _table(ds).column_names if c == "text" or c.startswith("slice:")]
        table = _table(ds).select(keep).append_column("label", pa.array(y))
        encoded[split] = (as_dataset(table), y)

    # Carve validation / test from train where they were not given.
    train_ds, y = encoded.pop("train")
    keep = np.arange(len(y))
    for split, fraction in (("test", cfg.test_fraction), ("validation", cfg.val_fraction)):
        if split in encoded:
            continue
        if fraction == 0:
            continue
        rel = fraction / (len(keep) / len(y))  # fraction of the original size
        k, held = _stratified_split(y[keep], min(rel, 0.9), cfg.split_seed)
        encoded[split] = (train_ds.select(keep[held]), y[keep[held]])
        keep = keep[k]
    encoded["train"] = (train_ds.select(keep) if len(keep) < len(y) else train_ds, y[keep])
    if "validation" not in encoded:
        raise DataError("No validation split: give data.validation or set data.val_fraction > 0.")
    if "test" not in encoded:
        log.warning("No test split (data.test_fraction=0 and no data.test): test metrics are computed on validation.")
        report["test_is_validation"] = True
        encoded["test"] = encoded["validation"]

    # On the whole training split, before a quick-run cap: the check is about the label column.
    _check_class_count(len(names), len(encoded["train"][1]), sources["train"], cfg.label_column)
    if cfg.max_examples:
        rng = np.random.default_rng(cfg.split_seed)
        for split, (ds, yy) in list(encoded.items()):
            if len(yy) > cfg.max_examples:
                sel = np.sort(rng.permutation(len(yy))[: cfg.max_examples])
                encoded[split] = (ds.select(sel), yy[sel])

    splits = datasets.DatasetDict({s: encoded[s][0].flatten_indices() for s in SPLITS})
    fps = {s: fingerprint(splits[s], names) for s in SPLITS}
    report.update(_leakage(splits))
    return PreparedData(splits=splits, label_names=names, fingerprints=fps, sources=sources, report=report)


def _leakage(splits) -> dict[str, Any]:
    """Count validation/test texts that also occur in train (warn: inflated scores).

    Arrow's hash-based ``is_in`` does the matching: no Python string per row.
    """
    train = _table(splits["train"]).column("text").combine_chunks()
    out = {}
    for split in ("validation", "test"):
        found = pc.is_in(_table(splits[split]).column("text"), value_set=train)
        n = int(pc.sum(found).as_py() or 0)
        if n:
            out[f"overlap_{split}"] = n
            log.warning("%d %s texts also occur in train: scores on %s will be optimistic (leakage).", n, split, split)
    return out
