"""Pre-tokenized splits, length-bucketed batching and collation.

A split is stored CSR-style, as three flat numpy arrays, so a million texts cost
a few hundred MB instead of millions of Python lists::

    ids      int32 (total_tokens,)   every example's token ids, concatenated
    offsets  int64 (N + 1,)          example i is ids[offsets[i]:offsets[i + 1]]
    labels   int64 (N,)

Batches are *length-bucketed*: indices are shuffled, cut into chunks of
``chunk_batches * batch_size``, each chunk is sorted by length and cut into
batches, and the batch order is shuffled. Examples in a batch then have similar
lengths (little padding, so the RNN does little wasted work) while the epoch
order stays random. For evaluation (``shuffle=False``) everything is sorted by
length, which is deterministic and pads least.

:func:`collate` turns a batch of indices into right-padded tensors with one
vectorised gather (no per-example Python loop).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textclf.core.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made, so a fully cached run never loads it
    import torch

_FILES = ("ids", "offsets", "labels")
_FORMAT = {"format": "textclf-encoded-split", "version": 1}


@dataclass(frozen=True, eq=False)
class EncodedSplit:
    """One tokenized split in CSR layout (see the module docstring)."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        # Normalise dtypes once here so every consumer can rely on them
        # (np.asarray is a no-op when the dtype already matches).
        ids = np.asarray(self.ids, dtype=np.int32)
        offsets = np.asarray(self.offsets, dtype=np.int64)
        labels = np.asarray(self.labels, dtype=np.int64)
        if ids.ndim != 1 or offsets.ndim != 1 or labels.ndim != 1:
            raise DataError("EncodedSplit: ids, offsets and labels must be 1-D arrays.")
        if len(offsets) != len(labels) + 1:
            raise DataError(f"EncodedSplit: offsets must have N+1 = {len(labels) + 1} entries, got {len(offsets)}.")
        if offsets[0] != 0 or offsets[-1] != len(ids):
            raise DataError(f"EncodedSplit: offsets must start at 0 and end at len(ids) = {len(ids)}.")
        if len(labels) and np.any(offsets[1:] < offsets[:-1]):
            raise DataError("EncodedSplit: offsets must be non-decreasing.")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "labels", labels)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], labels: Sequence[int]) -> EncodedSplit:
        """Build from lists of token ids (convenient for small data and tests)."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids=ids, offsets=offsets, labels=np.asarray(labels, dtype=np.int64))

    # ------------------------------------------------------------------ views

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per example, int64 (N,)."""
        return np.diff(self.offsets)

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the split."""
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> np.ndarray:
        """Token ids of example ``i`` (a view)."""
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def subset(self, indices: np.ndarray | Sequence[int]) -> EncodedSplit:
        """A new split holding ``indices`` in that order (copies, vectorised)."""
        idx = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return EncodedSplit(self.ids[_token_positions(self.offsets[idx], lengths)], offsets, self.labels[idx])

    # ------------------------------------------------------------------ storage

    def save(self, path_dir: str | Path) -> Path:
        """Write ``ids.npy``, ``offsets.npy``, ``labels.npy`` (+ ``meta.json``) atomically.

        Files go to a temporary sibling directory first (fsynced) and that
        directory is renamed into place, so a crash never leaves a half-written
        split that would load.
        """
        path = Path(path_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for name in _FILES:
                with open(tmp / f"{name}.npy", "wb") as f:
                    np.save(f, getattr(self, name), allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
            meta = {**_FORMAT, "examples": len(self), "tokens": self.num_tokens}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            if path.exists():
                # A directory cannot be os.replace()d onto a non-empty one:
                # move the old one aside, swap, then delete it.
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path_dir: str | Path, *, mmap: bool = False) -> EncodedSplit:
        """Load a split written by :meth:`save` (never unpickles; ``mmap`` maps ids read-only)."""
        path = Path(path_dir)
        arrays = {}
        for name in _FILES:
            file = path / f"{name}.npy"
            if not file.is_file():
                raise DataError(
                    f"Encoded split {path} is incomplete: {file.name} is missing. Re-run the tokenize stage."
                )
            try:
                arrays[name] = np.load(file, allow_pickle=False, mmap_mode="r" if mmap and name == "ids" else None)
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(
                    f"Encoded split file {file} is unreadable ({exc}). Re-run the tokenize stage."
                ) from None
        return cls(**arrays)


# --------------------------------------------------------------------------- batching


def bucket_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
    chunk_batches: int = 50,
) -> list[np.ndarray]:
    """Split ``range(len(lengths))`` into batches of similar-length examples.

    ``shuffle=True``: shuffle, sort within chunks of ``chunk_batches`` batches,
    cut, shuffle the batch order (``rng`` makes it reproducible).
    ``shuffle=False``: one global length sort (stable), for evaluation.
    Every index appears exactly once; only the very last batch can be short,
    so the number of batches is always ``ceil(N / batch_size)``.
    """
    lengths = np.asarray(lengths)
    n = len(lengths)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    rng = rng if rng is not None else np.random.default_rng()
    perm = rng.permutation(n)
    chunk = max(1, chunk_batches) * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        idx = perm[start : start + chunk]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        batches.extend(idx[i : i + batch_size] for i in range(0, len(idx), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def inference_batches(
    lengths: np.ndarray, max_rows: int, *, waste: float = 1.25, min_rows: int = 16
) -> list[np.ndarray]:
    """Length-sorted batches for prediction, cut where padding would cost more than ``waste``.

    A padded recurrent pass costs rows × longest, so 256 texts of 5–50 tokens
    in one batch spend ~2.5× the real work. Cutting the sorted order where
    ``rows × longest > waste × real tokens`` (never below ``min_rows`` rows,
    never above ``max_rows``) keeps padding under 25% while batches stay big
    enough for efficient matrix products (the A/B against one 256-row batch:
    docs/benchmarks.md, "Summary", inference row).
    """
    lengths = np.asarray(lengths)
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order].tolist()
    batches, start, real = [], 0, 0
    for i, length in enumerate(sorted_lengths):
        rows = i - start + 1
        real += length
        if rows > max_rows or (rows > min_rows and rows * length > waste * real):
            batches.append(order[start:i])
            start, real = i, length
    if start < len(order):
        batches.append(order[start:])
    return batches


def _token_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions into the flat ids of the concatenated slices [start, start+len)."""
    # For slice j, position k maps to starts[j] + k; with out-offsets c_j this is
    # arange(total) + repeat(starts - c, lengths).
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) + shift


def pad_batch(split: EncodedSplit, indices: np.ndarray, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``tokens (B, T)`` and ``lengths (B,)``, int64 numpy (``T`` >= 1): :func:`collate` without torch."""
    idx = np.asarray(indices, dtype=np.int64)
    lengths = split.lengths[idx]  # (B,)
    T = max(int(lengths.max(initial=0)), 1)
    tokens = np.full((len(idx), T), pad_id, dtype=np.int64)
    # Row-major boolean assignment fills row 0's first len_0 cells, then row 1's...,
    # exactly the order of the concatenated slices.
    mask = np.arange(T) < lengths[:, None]  # (B, T)
    tokens[mask] = split.ids[_token_positions(split.offsets[idx], lengths)]
    return tokens, lengths.astype(np.int64, copy=False)


def collate(
    split: EncodedSplit,
    indices: np.ndarray,
    pad_id: int = 0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``tokens (B, T)``, ``lengths (B,)``, ``labels (B,)``, all int64.

    ``T`` is the longest example in the batch (at least 1, so an all-empty
    batch still has a valid shape). Tokens and labels go to ``device``;
    ``lengths`` stay on the CPU, where encoders read them (bounds, trimming,
    packing) without a device sync, and move them themselves when they need
    them on the device. On CUDA the copies come from pinned memory, so they
    run asynchronously and the step loop never waits on the host.
    """
    import torch

    idx = np.asarray(indices, dtype=np.int64)
    tokens, lengths = pad_batch(split, idx, pad_id)
    tokens_t, lengths_t, labels_t = (
        torch.from_numpy(tokens),
        torch.from_numpy(lengths),
        torch.from_numpy(split.labels[idx]),
    )
    if device is None or torch.device(device).type == "cpu":
        return tokens_t, lengths_t, labels_t
    if torch.device(device).type == "cuda":
        tokens_t, lengths_t, labels_t = tokens_t.pin_memory(), lengths_t.pin_memory(), labels_t.pin_memory()
    return tokens_t.to(device, non_blocking=True), lengths_t, labels_t.to(device, non_blocking=True)
