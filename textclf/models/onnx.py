"""ONNX for a neural model folder: the export (``textclf export --onnx``), checked against torch with
onnxruntime, and :func:`onnx_runner`, the torch-free way ``predict`` / ``embed`` run an exported folder.

A folder exported with ``--onnx`` answers without importing torch (whose import alone takes most of
a short ``textclf predict``): ``onnx.json`` records the SHA-256 of the weights and the tokenizer the
graph was exported from, and the graph is used only while both still match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from textclf.core.checksums import file_digest
from textclf.core.errors import ModelError
from textclf.models.folder import build_model


def _logits_module(model):
    """(tokens, lengths) -> (logits, pooled encoder output): the graph an ONNX runtime serves (no labels, no loss)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, tokens, lengths):
            pooled = self.inner.embed(tokens, lengths)  # what TextClassifier.forward feeds its head
            return self.inner.head(self.inner.output_dropout(pooled)), pooled

    # eval() on the wrapper too: the exporter traces in the wrapper's mode, and dropout must be off.
    return Logits(model).eval()


def _sample_batch(vocab_size: int, batch: int, time: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, time + 1, (batch,), generator=g)
    lengths[0] = time
    tokens = torch.randint(min(2, vocab_size - 1), vocab_size, (batch, time), generator=g)
    tokens[torch.arange(time)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


def export_onnx(folder: dict[str, Any], path: str | Path, *, opset: int = 17, verify: bool = True) -> dict[str, Any]:
    """Write ``model.onnx``: inputs ``tokens`` int64 (batch, time) right-padded with 0 and
    ``lengths`` int64 (batch,); outputs ``logits`` float32 (batch, classes) and ``embedding``
    float32 (batch, encoder output size), the vector ``textclf embed`` returns.

    Uses torch's TorchScript-based exporter, which maps nn.RNN / nn.GRU / nn.LSTM
    onto ONNX's own RNN / GRU / LSTM operators and keeps batch *and* time dynamic
    (the encoder skips its host read of the lengths while tracing, so nothing
    data-dependent is baked in). The torch.export-based exporter unrolls the
    recurrent cells over time and fixes the sequence length for several of our
    variants, so it is not used. With ``onnxruntime`` installed the file is
    checked against torch on two batches of other shapes than the traced one.
    """
    import warnings

    import torch

    if folder["kind"] != "neural":
        raise ModelError(f"{folder['dir']}: a TF-IDF baseline cannot be exported to ONNX (only rnn/gru/lstm models).")
    model = build_model(folder).to("cpu")
    wrapped = _logits_module(model)
    hp = folder["config"]["model"]
    path = Path(path)
    example = _sample_batch(hp["vocab_size"], 3, 6, seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation / tracer / batch-size notices of the legacy exporter
            torch.onnx.export(
                wrapped,
                example,
                str(path),
                input_names=["tokens", "lengths"],
                output_names=["logits", "embedding"],
                dynamic_axes={
                    "tokens": {0: "batch", 1: "time"},
                    "lengths": {0: "batch"},
                    "logits": {0: "batch"},
                    "embedding": {0: "batch"},
                },
                opset_version=opset,
                dynamo=False,
            )
    except ImportError as exc:
        raise ModelError(
            f"ONNX export needs extra packages ({exc}). Install them with: pip install 'textclf[onnx]'."
        ) from None
    except Exception as exc:  # an exporter failure is a limitation to report, not a crash
        path.unlink(missing_ok=True)
        if "not installed" in str(exc):  # torch reports a missing `onnx` package this way
            raise ModelError(
                f"ONNX export needs the onnx package ({exc}). Install it with: pip install 'textclf[onnx]'."
            ) from None
        raise ModelError(
            f"ONNX export of {folder['dir']} failed: {exc.__class__.__name__}: {str(exc).splitlines()[0][:300]}"
        ) from None
    from textclf.text.tokenize import char_limit

    max_length = int((folder["config"].get("config") or {}).get("tokenizer", {}).get("max_length", 256))
    info: dict[str, Any] = {
        "file": path.name,
        "opset": opset,
        "exporter": "torch.onnx (TorchScript)",
        "inputs": {
            "tokens": "int64 [batch, time]: ids from tokenizer.json, right-padded with 0 ([PAD]); empty text -> [1] ([UNK])",
            "lengths": "int64 [batch]: real tokens per row, 1 <= length <= time",
        },
        "outputs": {
            "logits": "float32 [batch, classes]: softmax gives probabilities in labels.json order",
            "embedding": "float32 [batch, embedding_dim]: the pooled encoder output (textclf embed)",
        },
        "embedding_dim": int(model.encoder.output_size),
        "max_length": max_length,
        # The files the graph was exported from: predict / embed use the graph only while both still match.
        "weights_sha256": file_digest(Path(folder["dir"]) / "model.safetensors", hashlib.sha256),
        "tokenizer_sha256": file_digest(Path(folder["dir"]) / "tokenizer.json", hashlib.sha256),
        # What textclf does to a text before the graph sees it: a runtime that skips the
        # cut tokenizes a long text whole and gets other ids (and other logits) than textclf.
        "preprocess": {
            "char_limit": char_limit(max_length),
            "steps": [
                f"cut the text to its first {char_limit(max_length)} characters (Unicode code points, before any normalization)",
                "encode the cut text with tokenizer.json",
                f"keep the first {max_length} ids (max_length); an empty result becomes [1] ([UNK])",
            ],
        },
        "labels": folder["labels"],
    }
    info["verified"] = (
        _verify_onnx(wrapped, path, hp["vocab_size"]) if verify else {"checked": False, "reason": "not requested"}
    )
    return info


def _verify_onnx(wrapped, path: Path, vocab_size: int, atol: float = 1e-4) -> dict[str, Any]:
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        return {"checked": False, "reason": "onnxruntime is not installed (pip install onnxruntime)"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, time, seed in ((5, 11, 1), (1, 3, 2), (4, 17, 3)):
        tokens, lengths = _sample_batch(vocab_size, batch, time, seed)
        with torch.inference_mode():
            want = [t.numpy() for t in wrapped(tokens, lengths)]
        got = sess.run(["logits", "embedding"], {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        worst = max(worst, *(float(np.abs(g - w).max()) for g, w in zip(got, want)))
    if not worst <= atol:
        path.unlink(missing_ok=True)
        raise ModelError(
            f"ONNX export check failed: onnxruntime differs from torch by {worst:.2e} (> {atol}); {path.name} was removed."
        )
    return {"checked": True, "runtime": f"onnxruntime {ort.__version__}", "max_abs_diff": worst, "atol": atol}


class OnnxRunner:
    """A folder's ``model.onnx`` in onnxruntime (CPU): logits and the pooled embedding, no torch."""

    def __init__(self, session: Any, info: dict[str, Any]):
        self.session = session
        self.info = info
        self.outputs = {o.name for o in session.get_outputs()}

    def run(self, split: Any, output: str, batch_size: int = 256) -> np.ndarray:
        """``output`` ("logits" or "embedding") for every row of an EncodedSplit, float32, in its order."""
        from textclf.text.batching import inference_batches, pad_batch

        batches = inference_batches(split.lengths, batch_size)  # as the torch path: sorted, little padding
        parts = []
        for idx in batches:
            tokens, lengths = pad_batch(split, idx)
            parts.append(self.session.run([output], {"tokens": tokens, "lengths": lengths})[0])
        out = np.empty((len(split), parts[0].shape[1]), dtype=np.float32)
        out[np.concatenate(batches)] = np.concatenate(parts)  # un-permute
        return out


def onnx_runner(directory: str | Path) -> tuple[OnnxRunner | None, str]:
    """``(runner, "")`` when ``directory``'s model.onnx stands for its weights, else ``(None, why not)``."""
    d = Path(directory)
    graph, info_path = d / "model.onnx", d / "onnx.json"
    if not graph.is_file() or not info_path.is_file():
        return None, f"{d} holds no model.onnx + onnx.json (textclf export --onnx writes them)"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{info_path} cannot be read ({exc})"
    for key, name in (("weights_sha256", "model.safetensors"), ("tokenizer_sha256", "tokenizer.json")):
        if not isinstance(info, dict) or not info.get(key):
            return None, f"{info_path} does not record the {name} it was exported from (re-export with --onnx)"
        if file_digest(d / name, hashlib.sha256) != info[key]:
            return None, f"{graph} was exported from another {name} than the folder's (re-export with --onnx)"
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed (pip install 'textclf[onnx]')"
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the graph's shape-inference notices are not the user's business
    try:
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any load failure means: use the weights instead
        return None, f"{graph}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})"
    if "logits" not in {o.name for o in session.get_outputs()}:
        return None, f"{graph} has no 'logits' output (re-export with --onnx)"
    return OnnxRunner(session, info), ""
