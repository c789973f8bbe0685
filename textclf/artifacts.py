"""The trained-model folder: the product every variant leaves behind.

::

    model/
      config.json        resolved config + model hyper-parameters + textclf version
      tokenizer.json     the HF tokenizer (no code)
      model.safetensors  weights (no pickle)
      labels.json        class names in head order

A TF-IDF baseline folder has ``config.json`` (``kind: tfidf``), ``labels.json``
and the baseline's own JSON / ``.npy`` files. Loading never unpickles and
never executes code from the folder; every inconsistency (missing file, wrong
tensor shapes, labels that disagree with the head, a tokenizer that disagrees
with the embedding) is a :class:`~textclf.errors.ModelError` naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from textclf.errors import ModelError

FILES = ("config.json", "tokenizer.json", "model.safetensors", "labels.json")
FORMAT_VERSION = 1


def _atomic_dir(target: Path):
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def save_neural(directory: str | Path, *, model, tokenizer, label_names: list[str], config: dict[str, Any], extra: dict | None = None) -> Path:
    """Write the model folder atomically (temp dir + rename)."""
    from safetensors.torch import save_file

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_dir(target)
    try:
        from textclf import __version__

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "textclf", "format_version": str(FORMAT_VERSION)})
        tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "labels.json").write_text(json.dumps(list(label_names), indent=1))
        doc = {"format_version": FORMAT_VERSION, "textclf_version": __version__, "kind": "neural", "model": model.hparams, "config": config, **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(doc, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, target)


def save_tfidf(directory: str | Path, *, baseline, label_names: list[str], config: dict[str, Any]) -> Path:
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_dir(target)
    try:
        from textclf import __version__

        baseline.save(tmp / "tfidf")
        (tmp / "labels.json").write_text(json.dumps(list(label_names), indent=1))
        doc = {"format_version": FORMAT_VERSION, "textclf_version": __version__, "kind": "tfidf", "config": config}
        (tmp / "config.json").write_text(json.dumps(doc, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, target)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ModelError(f"{path}: missing. A textclf model folder holds {', '.join(FILES)}; is {path.parent} one?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); the {what} file is corrupt. Re-export the model.") from None


def read_folder(directory: str | Path) -> dict[str, Any]:
    """Validate a model folder and return its parsed pieces (weights as a state dict)."""
    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"Model folder not found: {d}.")
    config = _read_json(d / "config.json", "config")
    labels = _read_json(d / "labels.json", "labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) or len(labels) < 2:
        raise ModelError(f"{d / 'labels.json'}: expected a JSON list of at least two class names.")
    kind = config.get("kind")
    if kind == "tfidf":
        return {"kind": "tfidf", "config": config, "labels": labels, "dir": d}
    if kind != "neural" or "model" not in config:
        raise ModelError(f"{d / 'config.json'}: not a textclf model config (kind={kind!r}).")
    tok_path = d / "tokenizer.json"
    if not tok_path.is_file():
        raise ModelError(f"{tok_path}: missing. A textclf model folder holds {', '.join(FILES)}.")
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(tok_path))
    except Exception as exc:
        raise ModelError(f"{tok_path}: cannot be read as a tokenizer ({exc}).") from None
    weights = d / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights}: missing.")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: not a valid safetensors file ({exc}). Only safetensors weights are loaded (never pickle).") from None
    hp = config["model"]
    emb = state.get("embedding.weight")
    head = state.get("head.weight")
    if emb is None or head is None:
        raise ModelError(f"{weights}: expected tensors embedding.weight and head.weight; found {sorted(state)[:6]}...")
    if head.shape[0] != len(labels):
        raise ModelError(
            f"{d / 'labels.json'}: lists {len(labels)} classes but the model head in {weights.name} has {head.shape[0]} outputs."
        )
    if tokenizer.get_vocab_size() != emb.shape[0] or hp.get("vocab_size") != emb.shape[0]:
        raise ModelError(
            f"{tok_path}: vocabulary of {tokenizer.get_vocab_size()} tokens does not match the embedding in "
            f"{weights.name} ({emb.shape[0]} rows); the tokenizer belongs to another model."
        )
    return {"kind": "neural", "config": config, "labels": labels, "tokenizer": tokenizer, "state": state, "dir": d}


def build_model(folder: dict[str, Any]):
    """A TextClassifier with the folder's weights, in eval mode (strict shapes)."""
    from textclf.model import TextClassifier

    hp = dict(folder["config"]["model"])
    try:
        model = TextClassifier(**hp)
    except TypeError as exc:
        raise ModelError(f"{folder['dir'] / 'config.json'}: model hyper-parameters do not fit this textclf version ({exc}).") from None
    try:
        model.load_state_dict(folder["state"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelError(f"{folder['dir'] / 'model.safetensors'}: tensors do not fit the architecture in config.json: {' '.join(first)}") from None
    model.eval()
    return model


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
