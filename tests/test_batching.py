"""Tests of the CSR split container, length-bucketed batching and collation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from textclf.core.errors import DataError
from textclf.text.batching import EncodedSplit, bucket_batches, collate


def random_split(n: int = 500, seed: int = 0, max_len: int = 40, min_len: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, 100, size=rng.integers(min_len, max_len + 1)).tolist() for _ in range(n)]
    return EncodedSplit.from_sequences(seqs, rng.integers(0, 3, size=n))


def padding_fraction(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1.0 - lengths.sum() / padded


# --------------------------------------------------------------------------- EncodedSplit


def test_split_layout_and_views():
    split = EncodedSplit.from_sequences([[5, 6, 7], [], [8]], [1, 0, 2])
    assert split.ids.dtype == np.int32 and split.offsets.dtype == np.int64 and split.labels.dtype == np.int64
    assert split.offsets.tolist() == [0, 3, 3, 4]
    assert split.lengths.tolist() == [3, 0, 1] and split.lengths.dtype == np.int64
    assert len(split) == 3 and split.num_tokens == 4
    assert split[0].tolist() == [5, 6, 7] and split[1].tolist() == []


@pytest.mark.parametrize(
    "ids, offsets, labels",
    [
        ([1, 2, 3], [0, 2], [0, 1]),  # offsets length != N + 1
        ([1, 2, 3], [0, 2, 2], [0, 1]),  # does not end at len(ids)
        ([1, 2, 3], [1, 2, 3], [0, 1]),  # does not start at 0
        ([1, 2, 3], [0, 3, 2, 3], [0, 1, 0]),  # decreasing
    ],
)
def test_split_rejects_bad_layout(ids, offsets, labels):
    with pytest.raises(DataError):
        EncodedSplit(np.array(ids), np.array(offsets), np.array(labels))


def test_subset_matches_naive_gather():
    split = random_split(200, seed=1)
    idx = np.array([5, 0, 199, 5, 42, 17])
    sub = split.subset(idx)
    assert len(sub) == len(idx)
    for j, i in enumerate(idx):
        assert sub[j].tolist() == split[i].tolist()
    assert sub.labels.tolist() == split.labels[idx].tolist()
    assert len(split.subset([])) == 0


def test_save_load_round_trip(tmp_path):
    split = random_split(300, seed=2)
    out = split.save(tmp_path / "train")
    for name in ("ids", "offsets", "labels"):
        np.load(out / f"{name}.npy", allow_pickle=False)  # plain arrays, no pickles
    loaded = EncodedSplit.load(out)
    for name in ("ids", "offsets", "labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(split, name))
        assert getattr(loaded, name).dtype == getattr(split, name).dtype
    # Overwriting an existing directory replaces it and leaves no temp dirs behind.
    other = random_split(10, seed=3)
    other.save(out)
    assert len(EncodedSplit.load(out)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]
    mm = EncodedSplit.load(out, mmap=True)
    np.testing.assert_array_equal(mm.ids, other.ids)


def test_load_missing_or_corrupt(tmp_path):
    with pytest.raises(DataError, match="missing"):
        EncodedSplit.load(tmp_path / "nope")
    out = random_split(5).save(tmp_path / "s")
    (out / "labels.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable"):
        EncodedSplit.load(out)


# --------------------------------------------------------------------------- bucket_batches


@pytest.mark.parametrize("n, batch_size, chunk", [(0, 4, 2), (1, 4, 2), (97, 8, 3), (1000, 32, 50), (64, 64, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_exactly_once(n, batch_size, chunk, shuffle):
    lengths = np.random.default_rng(0).integers(1, 50, size=n)
    batches = bucket_batches(lengths, batch_size, shuffle=shuffle, rng=np.random.default_rng(1), chunk_batches=chunk)
    flat = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(n))
    assert len(batches) == math.ceil(n / batch_size)
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1  # only one short batch


def test_bucketing_cuts_padding():
    lengths = np.random.default_rng(0).integers(1, 201, size=5000)
    bucketed = bucket_batches(lengths, 32, shuffle=True, rng=np.random.default_rng(0), chunk_batches=50)
    global_max = 1.0 - lengths.sum() / (len(lengths) * lengths.max())
    random_batches = np.array_split(np.random.default_rng(1).permutation(5000), 5000 // 32)
    assert padding_fraction(lengths, bucketed) < 0.05
    assert padding_fraction(lengths, random_batches) > 0.3
    assert global_max > 0.4


def test_eval_order_is_sorted_and_deterministic():
    lengths = np.random.default_rng(0).integers(1, 30, size=300)
    a = bucket_batches(lengths, 16, shuffle=False)
    b = bucket_batches(lengths, 16, shuffle=False, rng=np.random.default_rng(123))
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    flat = np.concatenate(a)
    assert (np.diff(lengths[flat]) >= 0).all()


def test_shuffled_order_follows_the_generator():
    lengths = np.random.default_rng(0).integers(1, 30, size=300)

    def run(seed):
        return np.concatenate(
            bucket_batches(lengths, 16, shuffle=True, rng=np.random.default_rng(seed), chunk_batches=4)
        )

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def naive_collate(split, idx, pad_id):
    seqs = [split[i].tolist() for i in idx]
    T = max(max((len(s) for s in seqs), default=0), 1)
    tokens = [s + [pad_id] * (T - len(s)) for s in seqs]
    return tokens, [len(s) for s in seqs], split.labels[idx].tolist()


@pytest.mark.parametrize("pad_id", [0, 7])
def test_collate_matches_naive_reference(pad_id):
    split = random_split(100, seed=4, max_len=25)
    for idx in (np.array([3, 1, 99, 50]), np.arange(100), np.array([10])):
        tokens, lengths, labels = collate(split, idx, pad_id=pad_id)
        ref_tokens, ref_lengths, ref_labels = naive_collate(split, idx, pad_id)
        assert tokens.dtype == lengths.dtype == labels.dtype == torch.int64
        assert tokens.shape == (len(idx), max(ref_lengths))
        assert tokens.tolist() == ref_tokens
        assert lengths.tolist() == ref_lengths and labels.tolist() == ref_labels


def test_collate_empty_sequences_and_device():
    split = EncodedSplit.from_sequences([[], []], [0, 1])
    tokens, lengths, _ = collate(split, np.array([0, 1]), pad_id=5, device="cpu")
    assert tokens.shape == (2, 1) and tokens.tolist() == [[5], [5]] and lengths.tolist() == [0, 0]


def test_inference_batches_cover_everything_with_bounded_padding():
    from textclf.text.batching import inference_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, 1000)
    batches = inference_batches(lengths, 256, waste=1.25, min_rows=16)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))  # every row exactly once
    assert np.all(np.diff(lengths[flat]) >= 0)  # length-sorted
    for b in batches:
        assert 1 <= len(b) <= 256
        if len(b) > 16:  # above the floor, padding stays within the budget
            assert len(b) * lengths[b].max() <= 1.25 * lengths[b].sum()
    # Equal lengths waste nothing: batches are simply max_rows long.
    same = inference_batches(np.full(600, 7), 256)
    assert [len(b) for b in same] == [256, 256, 88]
