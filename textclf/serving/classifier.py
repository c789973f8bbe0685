"""Trained models in use: predict labels and probabilities, embed texts.

:class:`Classifier` wraps a model folder (neural or TF-IDF) and takes raw
text; :class:`Encoder` exposes a neural model's pooled encoder output as
fixed-size text embeddings. Both come from :func:`textclf.load_model` /
:func:`textclf.load_encoder`, which accept any model reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textclf.core.errors import ModelError


def encode_texts(tokenizer, texts: Sequence[str], max_length: int):
    """Raw texts -> EncodedSplit (CSR), truncated like training; empty encodings become one [UNK]."""
    from textclf.text.batching import EncodedSplit
    from textclf.text.tokenize import UNK_ID, cut_texts, encode_batch

    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not a single string")
    texts, _ = cut_texts(texts, max_length)  # a huge text is never tokenized whole
    encs = encode_batch(tokenizer, texts)
    seqs = [(e.ids[:max_length] or [UNK_ID]) for e in encs]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
    return EncodedSplit(ids=ids, offsets=offsets, labels=np.zeros(len(seqs), dtype=np.int64))


class Classifier:
    """A trained text classifier: ``predict`` / ``predict_proba`` on raw text."""

    def __init__(self, folder: dict[str, Any], device: str | None = None):
        self.folder = folder
        self.kind = folder["kind"]
        self.labels: list[str] = list(folder["labels"])
        self.config: dict[str, Any] = folder["config"].get("config", {})
        self.path = Path(folder["dir"])
        self.ref = None  # the textclf.refs.ResolvedModel it was loaded from (set by textclf.load_model)
        if self.kind == "tfidf":
            from textclf.models.tfidf import TfidfBaseline

            self.baseline = TfidfBaseline.load(self.path / "tfidf")
            self.model = None
            self.tokenizer = None
        else:
            import torch

            from textclf.models.folder import build_model

            self.model = build_model(folder)
            self.tokenizer = folder["tokenizer"]
            self.device = torch.device(device) if device else torch.device("cpu")
            self.model.to(self.device)
            self.max_length = int(self.config.get("tokenizer", {}).get("max_length", 256))

    @classmethod
    def from_folder(cls, directory: str | Path, device: str | None = None) -> Classifier:
        from textclf.models.folder import read_folder

        return cls(read_folder(directory), device=device)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n, num_classes) probabilities, columns in the order of :attr:`labels`."""
        if self.kind == "tfidf":
            return self.baseline.predict_proba(list(texts))
        from textclf.models.predict import predict_proba

        split = encode_texts(self.tokenizer, texts, self.max_length)
        if len(split) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return predict_proba(self.model, split, batch_size=batch_size, device=self.device)

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[str]:
        proba = self.predict_proba(texts, batch_size=batch_size)
        return [self.labels[i] for i in proba.argmax(axis=1)]

    def predict_table(self, texts: Sequence[str], batch_size: int = 256):
        """A DataFrame with ``label`` and one ``proba_<class>`` column per class (the serving output)."""
        import pandas as pd

        proba = self.predict_proba(texts, batch_size=batch_size)
        # All columns at once: one insert per class is slow (and warned about) with 1,000 classes.
        columns = {"label": [self.labels[i] for i in proba.argmax(axis=1)]}
        columns.update({f"proba_{name}": proba[:, j].astype(float) for j, name in enumerate(self.labels)})
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        return f"Classifier(kind={self.kind!r}, labels={self.labels}, path={str(self.path)!r})"


class Encoder:
    """The trained embedding + recurrent encoder, pooled as configured: text -> vector."""

    def __init__(self, clf: Classifier):
        if clf.kind != "neural":
            raise ModelError(f"{clf.path}: a TF-IDF baseline has no neural encoder to embed with.")
        self.classifier = clf
        self.module = clf.model  # the underlying torch.nn.Module (embedding + encoder + head)
        self.tokenizer = clf.tokenizer

    @property
    def dim(self) -> int:
        return int(self.module.encoder.output_size)

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n, dim) float32 pooled encoder outputs, in input order."""
        import torch

        from textclf.text.batching import bucket_batches, collate

        split = encode_texts(self.tokenizer, texts, self.classifier.max_length)
        out = np.zeros((len(split), self.dim), dtype=np.float32)
        if len(split) == 0:
            return out
        self.module.eval()
        with torch.inference_mode():
            for idx in bucket_batches(split.lengths, batch_size, shuffle=False, rng=None):
                tokens, lengths, _ = collate(split, idx, pad_id=0, device=self.classifier.device)
                out[idx] = self.module.embed(tokens, lengths).float().cpu().numpy()
        return out
