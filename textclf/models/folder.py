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
with the embedding, a model too large for the memory) is a
:class:`~textclf.errors.ModelError` naming the file and the field, raised
before the weights are read (:mod:`textclf.models.folder_check`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from textclf.core import disk
from textclf.core.errors import ModelError
from textclf.models.folder_check import FORMAT_VERSION

FILES = ("config.json", "tokenizer.json", "model.safetensors", "labels.json")


# What a model folder may hold: the files above, the TF-IDF baseline's folder and
# what `textclf export --onnx` adds. A folder holding anything else is not ours to replace.
MODEL_ENTRIES = frozenset(FILES) | {"tfidf", "model.onnx", "onnx.json"}


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (setting it briefly races other threads' files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_created(path: Path) -> None:
    """Give ``path`` the mode a newly created file gets (0666 less the umask), as ``open(path, "w")`` would."""
    os.chmod(path, 0o666 & ~_umask())


def _atomic_dir(target: Path):
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, target: Path) -> Path:
    """Move the finished folder ``tmp`` to ``target``, replacing what is there, never leaving half of either.

    An existing ``target`` is renamed aside first and removed only once ``tmp``
    is in place; if the second rename fails the old folder is put back.
    """
    _fsync_tree(tmp)
    if not target.exists():
        os.replace(tmp, target)
        return target
    old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def _fsync_tree(root: Path) -> None:
    """Flush every file of ``root`` to disk, so a crash after the rename never leaves empty files behind."""
    for path in [*root.rglob("*"), root]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:  # some filesystems refuse fsync on directories
            pass
        finally:
            os.close(fd)


def is_model_folder(path: str | Path) -> bool:
    """True for a folder written by textclf: a textclf ``config.json`` and nothing but model files."""
    p = Path(path)
    if not (p.is_dir() and (p / "config.json").is_file()):
        return False
    try:
        doc = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(doc, dict)
        and doc.get("kind") in ("neural", "tfidf")
        and "format_version" in doc
        and all(child.name in MODEL_ENTRIES for child in p.iterdir())
    )


def check_output(target: str | Path, *, force: bool, option: str = "--output") -> Path:
    """Refuse, before any work, an output folder that writing a model there would destroy.

    A missing or empty folder is fine; a textclf model folder is replaced only
    with ``force``; anything else (a file, a folder holding other files) is
    never replaced, ``force`` or not.
    """
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return target
    if not target.is_dir() or target.is_symlink():
        raise ModelError(
            f"{option} {target}: a file (or link) is in the way; textclf writes a model folder there. Choose another {option}."
        )
    if not any(target.iterdir()):
        return target
    if not is_model_folder(target):
        others = sorted(c.name for c in target.iterdir() if c.name not in MODEL_ENTRIES)[:5]
        raise ModelError(
            f"{option} {target} is a folder that is not a textclf model ({'it holds ' + ', '.join(others) if others else 'its config.json is not a textclf one'}); "
            f"textclf never replaces it. Choose another {option} (a new or empty folder)."
        )
    if not force:
        raise ModelError(
            f"{option} {target} already holds a textclf model. Pass --force to replace it, or choose another {option}."
        )
    return target


def copy_model(src: str | Path, target: str | Path, *, force: bool, extra: dict[str, Path] | None = None) -> Path:
    """Copy the model files of folder ``src`` (plus ``extra``: name -> file) to ``target`` atomically.

    :func:`check_output` decides whether ``target`` may be replaced; a failure
    (a full disk, an interruption) leaves ``target`` as it was.
    """
    src, target = Path(src), Path(target)
    check_output(target, force=force)
    files = [c for c in src.iterdir() if c.name in MODEL_ENTRIES] + [Path(p) for p in (extra or {}).values()]
    needed = sum(f.stat().st_size for c in files for f in ([c] if c.is_file() else c.rglob("*")) if f.is_file())
    # The copy lands in a sibling of target: its temporaries and target itself are ours to name.
    with disk.reporting(
        target,
        root=target.parent,
        what="the model folder",
        needed=needed,
        fix="The folder was left as it was. Free some space or choose another --output, then re-run.",
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _atomic_dir(target)
        try:
            for child in src.iterdir():
                if child.name not in MODEL_ENTRIES:
                    continue
                if child.is_dir():
                    shutil.copytree(child, tmp / child.name)
                else:
                    shutil.copy2(child, tmp / child.name)
            for name, path in (extra or {}).items():
                shutil.copy2(path, tmp / name)
            for path in tmp.rglob("*"):  # copy2 keeps modes: a 0600 file of an older folder stays unreadable to others
                if path.is_file() and not path.is_symlink():
                    _as_created(path)
            if target.exists() and not any(target.iterdir()):
                target.rmdir()  # an empty folder: nothing to keep
            return _publish(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def save_neural(
    directory: str | Path,
    *,
    model,
    tokenizer,
    label_names: list[str],
    config: dict[str, Any],
    extra: dict | None = None,
) -> Path:
    """Write the model folder atomically (temp dir + rename)."""
    from safetensors.torch import save_file

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_dir(target)
    try:
        from textclf._version import __version__

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(
            state, str(tmp / "model.safetensors"), metadata={"format": "textclf", "format_version": str(FORMAT_VERSION)}
        )
        _as_created(tmp / "model.safetensors")  # safetensors writes 0600; the folder's other files follow the umask
        tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "labels.json").write_text(json.dumps(list(label_names), indent=1))
        doc = {
            "format_version": FORMAT_VERSION,
            "textclf_version": __version__,
            "kind": "neural",
            "model": model.hparams,
            "config": config,
            **(extra or {}),
        }
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
        from textclf._version import __version__

        baseline.save(tmp / "tfidf")
        (tmp / "labels.json").write_text(json.dumps(list(label_names), indent=1))
        doc = {"format_version": FORMAT_VERSION, "textclf_version": __version__, "kind": "tfidf", "config": config}
        (tmp / "config.json").write_text(json.dumps(doc, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, target)


def _read_json_text(path: Path, what: str) -> str:
    """The text of JSON file ``path``, checked to parse."""
    if not path.is_file():
        raise ModelError(f"{path}: missing. A textclf model folder holds {', '.join(FILES)}; is {path.parent} one?")
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); the {what} file is corrupt. Re-export the model.") from None
    return text


def _read_json(path: Path, what: str) -> Any:
    return json.loads(_read_json_text(path, what))


def read_folder(directory: str | Path, *, weights: bool = True) -> dict[str, Any]:
    """Validate a model folder completely, then return its parsed pieces (weights as a state dict).

    Everything is checked before the weights are read (see
    :mod:`textclf.models.folder_check`): a bad folder costs no allocation.
    ``weights=False`` checks the weights file but leaves ``state`` out (and torch
    unimported): :func:`load_weights` reads it when needed.
    """
    from textclf.models import folder_check as check

    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"Model folder not found: {d}.")
    config_path, labels_path = d / "config.json", d / "labels.json"
    config = check.check_config(config_path, _read_json(config_path, "config"))
    labels = check.check_labels(labels_path, _read_json(labels_path, "labels"))
    if config["kind"] == "tfidf":
        return {"kind": "tfidf", "config": config, "labels": labels, "dir": d}
    hp = check.check_hparams(config_path, config["model"], build=weights)
    tok_path, weights_path = d / "tokenizer.json", d / "model.safetensors"
    for path in (tok_path, weights_path):
        if not path.is_file():
            raise ModelError(f"{path}: missing. A textclf model folder holds {', '.join(FILES)}.")
    header = check.weights_header(weights_path)
    if hp["num_classes"] != len(labels):
        raise ModelError(
            f"{labels_path}: lists {len(labels)} classes but the model head has {hp['num_classes']:,} outputs "
            f"(model.num_classes in {config_path.name}); the labels belong to another model."
        )
    if weights:
        check.check_weights(weights_path, config_path, hp, header)
    from tokenizers import Tokenizer

    from textclf.text.tokenize import tokenizer_failures

    tok_text = _read_json_text(tok_path, "tokenizer")
    check.check_tokenizer_json(tok_path, json.loads(tok_text))
    with tokenizer_failures(f"{tok_path}: cannot be read as a tokenizer", "Re-export the model."):
        tokenizer = Tokenizer.from_str(tok_text)
    check.check_tokenizer(tok_path, tokenizer, hp, config_path, weights_path)
    folder = {"kind": "neural", "config": config, "labels": labels, "tokenizer": tokenizer, "dir": d}
    if weights:
        check.check_memory(config_path, hp, header)
        folder["state"] = _read_weights(weights_path)
    return folder


def load_weights(folder: dict[str, Any]) -> None:
    """Read the weights of a folder read with ``weights=False``: the checks that need torch first, then the tensors."""
    from textclf.models import folder_check as check

    d = Path(folder["dir"])
    config_path, path, hp = d / "config.json", d / "model.safetensors", folder["config"]["model"]
    check.check_buildable(config_path, hp)
    header = check.weights_header(path)
    check.check_weights(path, config_path, hp, header)
    check.check_memory(config_path, hp, header)
    folder["state"] = _read_weights(path)


def _read_weights(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"{path}: not a valid safetensors file ({exc}). Only safetensors weights are loaded (never pickle)."
        ) from None


def build_model(folder: dict[str, Any]):
    """A TextClassifier with the folder's weights, in eval mode (strict shapes)."""
    from textclf.models.classifier import TextClassifier

    hp = dict(folder["config"]["model"])
    try:
        model = TextClassifier(**hp)
    except TypeError as exc:
        raise ModelError(
            f"{folder['dir'] / 'config.json'}: model hyper-parameters do not fit this textclf version ({exc})."
        ) from None
    if "state" not in folder:  # read with weights=False
        load_weights(folder)
    try:
        model.load_state_dict(folder["state"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelError(
            f"{folder['dir'] / 'model.safetensors'}: tensors do not fit the architecture in config.json: {' '.join(first)}"
        ) from None
    model.eval()
    return model


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def export_folder(
    folder: dict[str, Any], target: str | Path, *, force: bool = False, extra: dict[str, Path] | None = None
) -> Path:
    """Copy a validated model folder (only the files that make up the model) to ``target``, atomically."""
    return copy_model(Path(folder["dir"]), target, force=force, extra=extra)
