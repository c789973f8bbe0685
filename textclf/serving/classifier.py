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


ENGINES = ("auto", "torch", "onnx")


class Classifier:
    """A trained text classifier: ``predict`` / ``predict_proba`` on raw text.

    ``engine``: ``torch`` runs the weights; ``onnx`` the folder's ``model.onnx``
    (written by ``textclf export --onnx``, used only while it matches the
    folder's weights and tokenizer; CPU, no torch import); ``auto`` takes the
    ONNX graph when the folder has a matching one, onnxruntime is installed and
    no other device than the CPU is asked for, else torch. The two agree to
    within the tolerance the export checked (1e-4 on the logits).
    """

    def __init__(self, folder: dict[str, Any], device: str | None = None, engine: str = "auto"):
        if engine not in ENGINES:
            raise ModelError(f"engine must be one of {', '.join(ENGINES)}. Got {engine!r} instead.")
        self.folder = folder
        self.kind = folder["kind"]
        self.labels: list[str] = list(folder["labels"])
        self.config: dict[str, Any] = folder["config"].get("config", {})
        self.path = Path(folder["dir"])
        self.ref = None  # the textclf.refs.ResolvedModel it was loaded from (set by textclf.load_model)
        self.onnx = None
        self._model = None
        self._device = device
        if self.kind == "tfidf":
            from textclf.models.tfidf import TfidfBaseline

            if engine == "onnx":
                raise ModelError(f"{self.path}: a TF-IDF baseline has no ONNX graph; use engine torch or auto.")
            self.baseline = TfidfBaseline.load(self.path / "tfidf")
            self.tokenizer = None
            return
        self.tokenizer = folder["tokenizer"]
        self.max_length = int(self.config.get("tokenizer", {}).get("max_length", 256))
        if engine != "torch" and (device is None or str(device) == "cpu"):
            from textclf.models.onnx import onnx_runner

            self.onnx, why = onnx_runner(self.path)
            if self.onnx is None and engine == "onnx":
                raise ModelError(f"engine onnx: {why}. Use engine torch (the weights) or auto.")
        elif engine == "onnx":
            raise ModelError(f"engine onnx runs on the CPU only; got device {device!r}. Use engine torch.")
        if self.onnx is None:
            self.model  # noqa: B018 - build now: a folder whose weights do not fit fails at load, not at first use

    @property
    def model(self):
        """The torch module (built on first use when the ONNX graph answers predictions)."""
        if self._model is None and self.kind == "neural":
            from textclf.models.folder import build_model

            self._model = build_model(self.folder).to(self.device)
        return self._model

    @model.setter
    def model(self, module) -> None:  # e.g. a compiled or quantized copy of the module to predict with
        self._model = module

    @property
    def device(self):
        import torch

        return torch.device(self._device) if self._device else torch.device("cpu")

    @property
    def engine(self) -> str:
        return "tfidf" if self.kind == "tfidf" else ("onnx" if self.onnx is not None else "torch")

    @classmethod
    def from_folder(cls, directory: str | Path, device: str | None = None, engine: str = "torch") -> Classifier:
        from textclf.models.folder import read_folder

        return cls(read_folder(directory, weights=engine == "torch"), device=device, engine=engine)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n, num_classes) probabilities, columns in the order of :attr:`labels`."""
        if self.kind == "tfidf":
            return self.baseline.predict_proba(list(texts))
        split = encode_texts(self.tokenizer, texts, self.max_length)
        if len(split) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self.onnx is not None:
            logits = self.onnx.run(split, "logits", batch_size)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        from textclf.models.predict import predict_proba

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
        self.tokenizer = clf.tokenizer
        self._onnx = clf.onnx if clf.onnx is not None and "embedding" in clf.onnx.outputs else None

    @property
    def module(self):
        """The underlying torch.nn.Module (embedding + encoder + head)."""
        return self.classifier.model

    @property
    def dim(self) -> int:
        if self._onnx is not None:
            return int(self._onnx.info["embedding_dim"])
        return int(self.module.encoder.output_size)

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(n, dim) float32 pooled encoder outputs, in input order."""
        split = encode_texts(self.tokenizer, texts, self.classifier.max_length)
        if len(split) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.run(split, "embedding", batch_size)
        import torch

        from textclf.text.batching import bucket_batches, collate

        out = np.zeros((len(split), self.dim), dtype=np.float32)
        self.module.eval()
        with torch.inference_mode():
            for idx in bucket_batches(split.lengths, batch_size, shuffle=False, rng=None):
                tokens, lengths, _ = collate(split, idx, pad_id=0, device=self.classifier.device)
                out[idx] = self.module.embed(tokens, lengths).float().cpu().numpy()
        return out
