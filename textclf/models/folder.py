"""The trained-model folder: the product every variant leaves behind, written atomically and read back safely.

::

    model/
      config.json        resolved config + model hyper-parameters + textclf version
      tokenizer.json     the HF tokenizer (no code)
      model.safetensors  weights (no pickle)
      labels.json        class names in head order

A TF-IDF baseline folder has ``config.json`` (``kind: tfidf``), ``labels.json``
and the baseline's own JSON / ``.npy`` files.

Writing (:func:`save_neural`, :func:`save_tfidf`, :func:`copy_model`) goes to
a temporary sibling that is renamed into place, so a failure never leaves half
a folder; :func:`check_output` refuses, before any work, a target that is not
ours to replace.

Reading (:func:`read_folder`) never unpickles and never executes code from the
folder: a folder is anybody's download, and a crafted one must never get as
far as a traceback, a huge allocation, or wrong answers with exit code 0.
These checks run in order, each failure a :class:`~textclf.core.errors.ModelError`
naming the file and the field, before the weights are read:

1. ``config.json`` is a mapping with a known ``kind`` and ``format_version``,
   its ``config`` section a mapping (``tokenizer.max_length`` an integer);
2. ``labels.json`` is a list of at least two distinct class names;
3. ``config.json``'s ``model`` hyper-parameters have the right types and
   ranges and fit their registered encoder family (built on the meta device);
4. ``model.safetensors``' header (read without the data) holds exactly the
   tensors, with exactly the shapes, those hyper-parameters describe, and
   the labels count the head's outputs;
5. ``tokenizer.json`` is built only from the components textclf writes
   (:func:`check_tokenizer_json`, before the ``tokenizers`` library parses
   it), its vocabulary size is ``model.vocab_size`` and every id it can emit
   is a row of the embedding;
6. the weights fit in the memory available (:mod:`textclf.models.size`).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textclf.core import disk
from textclf.core.errors import ConfigError, ModelError

FORMAT_VERSION = 1  # the newest model folder format this textclf reads and writes
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


def _write_folder(
    directory: str | Path, kind: str, label_names: list[str], doc: dict[str, Any], fill: Callable[[Path], None]
) -> Path:
    """Write a model folder of ``kind`` atomically: ``fill(tmp)`` adds the model's own files to a temporary sibling.

    ``labels.json`` and ``config.json`` (``doc`` plus the format fields) are
    written last, and the temporary folder replaces ``directory`` only whole.
    """
    from textclf._version import __version__

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_dir(target)
    try:
        fill(tmp)
        (tmp / "labels.json").write_text(json.dumps(list(label_names), indent=1))
        head = {"format_version": FORMAT_VERSION, "textclf_version": __version__, "kind": kind}
        (tmp / "config.json").write_text(json.dumps({**head, **doc}, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, target)


def save_neural(
    directory: str | Path,
    *,
    model,
    tokenizer,
    label_names: list[str],
    config: dict[str, Any],
    extra: dict | None = None,
) -> Path:
    """Write a neural model's folder atomically (weights as safetensors, the tokenizer as JSON)."""

    def fill(tmp: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        metadata = {"format": "textclf", "format_version": str(FORMAT_VERSION)}
        save_file(state, str(tmp / "model.safetensors"), metadata=metadata)
        _as_created(tmp / "model.safetensors")  # safetensors writes 0600; the folder's other files follow the umask
        tokenizer.save(str(tmp / "tokenizer.json"))

    doc = {"model": model.hparams, "config": config, **(extra or {})}
    return _write_folder(directory, "neural", label_names, doc, fill)


def save_tfidf(directory: str | Path, *, baseline, label_names: list[str], config: dict[str, Any]) -> Path:
    """Write a TF-IDF baseline's folder atomically (the baseline's own files under ``tfidf/``)."""
    return _write_folder(directory, "tfidf", label_names, {"config": config}, lambda tmp: baseline.save(tmp / "tfidf"))


def _present(path: Path) -> Path:
    if not path.is_file():
        raise ModelError(f"{path}: missing. A textclf model folder holds {', '.join(FILES)}; is {path.parent} one?")
    return path


def _read_json_text(path: Path, what: str) -> str:
    """The text of JSON file ``path``, checked to parse."""
    try:
        text = _present(path).read_text(encoding="utf-8")
        json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); the {what} file is corrupt. Re-export the model.") from None
    return text


def _not_safetensors(path: Path, exc: Exception) -> ModelError:
    return ModelError(
        f"{path}: not a valid safetensors file ({exc}). Only safetensors weights are loaded (never pickle)."
    )


def read_folder(directory: str | Path, *, weights: bool = True) -> dict[str, Any]:
    """Validate a model folder completely, then return its parsed pieces (weights as a state dict).

    Every check in the module docstring runs before the weights are read: a
    bad folder costs no allocation. ``weights=False`` leaves ``state`` out and
    torch unimported (the ONNX engine needs neither); the checks that build the
    model on torch's meta device then run in :func:`load_weights`, before it reads them.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ModelError(f"Model folder not found: {d}.")
    config_path, labels_path = d / "config.json", d / "labels.json"
    config = check_config(config_path, json.loads(_read_json_text(config_path, "config")))
    labels = check_labels(labels_path, json.loads(_read_json_text(labels_path, "labels")))
    if config["kind"] == "tfidf":
        return {"kind": "tfidf", "config": config, "labels": labels, "dir": d}
    hp = check_hparams(config_path, config["model"], build=weights)
    tok_path, weights_path = _present(d / "tokenizer.json"), _present(d / "model.safetensors")
    header = weights_header(weights_path)
    if hp["num_classes"] != len(labels):
        raise ModelError(
            f"{labels_path}: lists {len(labels)} classes but the model head has {hp['num_classes']:,} outputs "
            f"(model.num_classes in {config_path.name}); the labels belong to another model."
        )
    if weights:
        check_weights(weights_path, config_path, hp, header)
    from tokenizers import Tokenizer

    from textclf.text.tokenize import tokenizer_failures

    tok_text = _read_json_text(tok_path, "tokenizer")
    check_tokenizer_json(tok_path, json.loads(tok_text))
    with tokenizer_failures(f"{tok_path}: cannot be read as a tokenizer", "Re-export the model."):
        tokenizer = Tokenizer.from_str(tok_text)
    check_tokenizer(tok_path, tokenizer, hp, config_path, weights_path)
    folder = {"kind": "neural", "config": config, "labels": labels, "tokenizer": tokenizer, "dir": d}
    if weights:
        check_memory(config_path, hp, header)
        folder["state"] = _read_weights(weights_path)
    return folder


def load_weights(folder: dict[str, Any]) -> None:
    """Read the weights of a folder read with ``weights=False``: the checks that need torch first, then the tensors."""
    d = Path(folder["dir"])
    config_path, path, hp = d / "config.json", d / "model.safetensors", folder["config"]["model"]
    check_buildable(config_path, hp)
    header = weights_header(path)
    check_weights(path, config_path, hp, header)
    check_memory(config_path, hp, header)
    folder["state"] = _read_weights(path)


def _read_weights(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _not_safetensors(path, exc) from None


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


# Checks of an untrusted folder, in the order read_folder runs them.
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
# Which hyper-parameters decide the shape of each group of tensors (for the mismatch message).
SHAPED_BY = {
    "embedding": ("vocab_size", "embedding_dim", "frozen_rows"),
    "encoder": ("cell", "hidden_size", "layers", "bidirectional", "embedding_dim", "pooling"),
    "head": ("num_classes", "hidden_size", "bidirectional", "cell"),
}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def check_config(path: Path, doc: Any) -> dict[str, Any]:
    """``config.json``: a mapping, a known kind and format, a ``config`` mapping (and ``model`` mapping for a neural model)."""
    if not isinstance(doc, dict):
        raise ModelError(
            f"{path}: expected a JSON object with format_version, kind, model and config; got {_kind(doc)}. Re-export the model."
        )
    kind = doc.get("kind")
    if kind not in ("neural", "tfidf"):
        raise ModelError(
            f"{path}: field kind must be 'neural' or 'tfidf'; got {kind!r}. Is this a textclf model folder?"
        )
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelError(
            f"{path}: field format_version must be an integer in [1, {FORMAT_VERSION}] (the formats this textclf reads); got {version!r}."
        )
    config = doc.get("config", {})
    if not isinstance(config, dict) or not isinstance(config.get("tokenizer", {}), dict):
        raise ModelError(
            f"{path}: field config must be an object of config sections (tokenizer: {{...}}, ...); got {_kind(config)}."
        )
    max_length = config.get("tokenizer", {}).get("max_length", 256)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ModelError(f"{path}: field config.tokenizer.max_length must be an integer >= 1; got {max_length!r}.")
    if kind == "neural" and not isinstance(doc.get("model"), dict):
        raise ModelError(
            f"{path}: field model must be an object of the model's hyper-parameters (vocab_size, hidden_size, ...); got {_kind(doc.get('model'))}."
        )
    return doc


def check_labels(path: Path, labels: Any) -> list[str]:
    """``labels.json``: a list of at least two distinct, non-empty class names."""
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise ModelError(
            f"{path}: expected a JSON list of at least two class names (non-empty strings); got {_kind(labels)}."
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(labels):
        if name in seen:
            raise ModelError(
                f"{path}: class {name!r} is listed twice (positions {seen[name] + 1} and {i + 1}); each head output "
                "needs its own name, or probabilities are reported under the wrong class. Re-export the model."
            )
        seen[name] = i
    return labels


def _int(key: str, value: Any, lo: int, hi: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        return f"{key} must be an integer in [{lo:,}, {hi:,}]; got {value!r}"
    return None


def _fraction(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        return f"{key} must be a number in [0, 1); got {value!r}"
    return None


def check_hparams(path: Path, model: dict[str, Any], *, build: bool = True) -> dict[str, Any]:
    """``config.json``'s ``model`` section: every field typed and in range, valid for its encoder family.

    ``build=False`` leaves out the one check that needs torch (building the model on the meta device);
    :func:`check_buildable` runs it before the weights are read.
    """
    from textclf.models.checks import HPARAMS, POOLINGS
    from textclf.models.registry import ENCODERS

    allowed = list(HPARAMS)
    problems = [
        f"model.{k} is not a model hyper-parameter (known: {', '.join(allowed)})" for k in model if k not in allowed
    ]
    problems += [f"model.{k} is missing" for k in ("vocab_size", "embedding_dim", "num_classes") if k not in model]
    hp = {k: v for k, v in model.items() if k in allowed}
    checks = {
        "vocab_size": lambda v: _int("model.vocab_size", v, 1, 2**31 - 1),
        "embedding_dim": lambda v: _int("model.embedding_dim", v, 1, 2**20),
        "num_classes": lambda v: _int("model.num_classes", v, 2, 2**31 - 1),
        "hidden_size": lambda v: _int("model.hidden_size", v, 1, 2**20),
        "layers": lambda v: _int("model.layers", v, 1, 16),
        "frozen_rows": lambda v: _int("model.frozen_rows", v, 0, 2**31 - 1),
        "padding_idx": lambda v: None if v is None else _int("model.padding_idx", v, 0, 2**31 - 1),
        "bidirectional": lambda v: (
            None if isinstance(v, bool) else f"model.bidirectional must be true or false; got {v!r}"
        ),
        "cell": lambda v: (
            None
            if isinstance(v, str) and v in ENCODERS
            else f"model.cell must be one of {', '.join(ENCODERS)}; got {v!r}"
        ),
        "pooling": lambda v: (
            None
            if isinstance(v, str) and v in POOLINGS
            else f"model.pooling must be one of {', '.join(POOLINGS)}; got {v!r}"
        ),
        "dropout": lambda v: _fraction("model.dropout", v),
        "embedding_dropout": lambda v: _fraction("model.embedding_dropout", v),
        "output_dropout": lambda v: _fraction("model.output_dropout", v),
        "class_weights": lambda v: (
            None
            if v is None
            or (
                isinstance(v, list)
                and all(
                    isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w) and w >= 0 for w in v
                )
            )
            else "model.class_weights must be null or a list of finite non-negative numbers"
        ),
    }
    problems += [p for k, v in hp.items() if k in checks for p in [checks[k](v)] if p]
    family = ENCODERS.get(hp.get("cell", "lstm")) if isinstance(hp.get("cell", "lstm"), str) else None
    if family is not None and not problems:
        problems += [
            f"model.{key} must be {value!r} for model.cell={hp.get('cell', 'lstm')!r}; got {hp[key]!r}"
            for key, value in family.fixed
            if key in hp and hp[key] != value
        ]
    if problems:
        raise ModelError(
            f"{path}: invalid model hyper-parameters (field model):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    if build:
        check_buildable(path, hp)
    return hp


def check_buildable(path: Path, hp: dict[str, Any]) -> None:
    """The classifier's own checks (padding row, frozen rows, class weights) on the meta device: nothing allocated."""
    from textclf.models.size import meta_model

    try:
        meta_model(hp)
    except (ConfigError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: invalid model hyper-parameters (field model):\n  - {exc}") from None


def weights_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Tensor name -> (shape, dtype) from the safetensors header, without reading the data."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise _not_safetensors(path, exc) from None


def check_weights(
    path: Path, config_path: Path, hp: dict[str, Any], header: dict[str, tuple[tuple[int, ...], str]]
) -> None:
    """The header holds exactly the tensors ``hp`` describes, float, of the same shapes."""
    from textclf.models.size import expected_state

    expected = expected_state(hp)
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        raise ModelError(
            f"{path}: tensors do not fit the architecture in {config_path.name}: "
            + "; ".join(
                x
                for x in (f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else "")
                if x
            )
            + ". The weights and config.json come from different models."
        )
    for name, shape in expected.items():
        got, dtype = header[name]
        if dtype not in FLOAT_DTYPES:
            raise ModelError(
                f"{path}: tensor {name} holds {dtype} numbers; model weights are floating point ({', '.join(sorted(FLOAT_DTYPES))})."
            )
        if got != shape:
            fields = ", ".join(
                f"model.{k}={json.dumps(hp[k])}" for k in SHAPED_BY.get(name.split(".", 1)[0], ()) if k in hp
            )
            raise ModelError(
                f"{path}: tensors do not fit the architecture in {config_path.name}: {name} has shape {got}, but "
                f"{config_path.name} ({fields}) makes it {shape}. The weights and config.json come from different models."
            )


# What textclf's tokenizers are made of (textclf.text.tokenize.build_tokenizer), field by field.
# Anything else is refused before the tokenizers library parses the file: a crafted
# component is work without bound at predict time (a normalizer Replace "a" -> 20,000
# characters multiplies a text's size 20,000 times, docs/benchmarks.md "Work without bound
# from one input"; a Split regex "(a|aa)+$" panics
# in Oniguruma; padding to a fixed length of 10^9 allocates it for every text).
# Fields a component may omit are those older `tokenizers` releases did not write.
_SPECIALS = ("[PAD]", "[UNK]")  # textclf.text.tokenize.SPECIALS at ids 0 and 1
_METASPACE = {
    "replacement": ("\u2581",),
    "prepend_scheme": ("always", "first"),
    "split": (True, False),
    "add_prefix_space": (True, False),
    "str_rep": ("\u2581",),
}
_ALLOWED = {
    "normalizer": {"NFKC": {}, "Lowercase": {}},
    "pre_tokenizer": {
        "Whitespace": {},
        "BertPreTokenizer": {},
        "Metaspace": _METASPACE,
        # the char tokenizer's one regex: every character its own piece
        "Split": {"pattern": ({"Regex": "[\\s\\S]"},), "behavior": ("Isolated",), "invert": (False,)},
    },
    "decoder": {"WordPiece": {"prefix": ("##",), "cleanup": (True, False)}, "Metaspace": _METASPACE},
}
_MODEL_FIELDS = {
    "WordLevel": {"vocab", "unk_token"},
    "BPE": {
        "vocab",
        "merges",
        "unk_token",
        "dropout",
        "continuing_subword_prefix",
        "end_of_word_suffix",
        "fuse_unk",
        "byte_fallback",
        "ignore_merges",
    },
    "WordPiece": {"vocab", "unk_token", "continuing_subword_prefix", "max_input_chars_per_word"},
    "Unigram": {"vocab", "unk_id", "byte_fallback"},
}
# Model fields with the only values textclf writes: BPE dropout makes predictions random;
# WordPiece's work per word grows with the square of max_input_chars_per_word.
_MODEL_VALUES = {
    "dropout": (None,),
    "continuing_subword_prefix": (None, "##"),
    "end_of_word_suffix": (None,),
    "byte_fallback": (False,),
    "fuse_unk": (True, False),
    "ignore_merges": (True, False),
    "max_input_chars_per_word": (100,),
}


def _component(where: str, doc: Any, allowed: dict[str, dict[str, tuple]]) -> str | None:
    """Why ``doc`` is not one of ``allowed`` (type -> field -> the values allowed), or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str) or doc["type"] not in allowed:
        got = doc.get("type") if isinstance(doc, dict) else _kind(doc)
        return f"{where} is {got!r}; textclf writes only {', '.join(sorted(allowed))}"
    fields = allowed[doc["type"]]
    for key, value in doc.items():
        if key == "type":
            continue
        if key not in fields:
            return f"{where} ({doc['type']}) has field {key!r}, which textclf never writes"
        if value not in fields[key]:
            return f"{where} ({doc['type']}) field {key} is {value!r}; textclf writes {' or '.join(repr(v) for v in fields[key])}"
    return None


def _vocab_problem(model: dict[str, Any]) -> str | None:
    vocab = model.get("vocab")
    if model["type"] == "Unigram":
        ok = isinstance(vocab, list) and all(
            isinstance(x, list)
            and len(x) == 2
            and isinstance(x[0], str)
            and isinstance(x[1], (int, float))
            and not isinstance(x[1], bool)
            for x in vocab
        )
        return None if ok else "model.vocab must be a list of [piece, score] pairs"
    if not (isinstance(vocab, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in vocab.values())):
        return "model.vocab must map tokens to integer ids"
    merges = model.get("merges", [])
    if model["type"] == "BPE" and not (
        isinstance(merges, list)
        and all(
            isinstance(m, str) or (isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m))
            for m in merges
        )
    ):
        return "model.merges must be a list of token pairs"
    return None


def check_tokenizer_json(path: Path, doc: Any) -> None:
    """``tokenizer.json`` holds only components textclf writes, with the parameters it writes.

    Runs on the parsed JSON before ``Tokenizer.from_str``: a component outside
    the list is refused with its name, whatever the ``tokenizers`` library would
    have made of it.
    """
    fix = "Re-export the model with textclf, or retrain it; a tokenizer from elsewhere is not loaded."
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: expected a JSON object (a Hugging Face tokenizer); got {_kind(doc)}. {fix}")
    known = {
        "version",
        "truncation",
        "padding",
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "model",
    }
    problems = [f"field {k!r} is not part of a tokenizer textclf writes" for k in doc if k not in known]
    for key in ("truncation", "padding", "post_processor"):
        if doc.get(key) is not None:
            problems.append(
                f"field {key} is {json.dumps(doc[key])[:80]}; textclf writes null (the model cuts and pads texts itself)"
            )
    added = doc.get("added_tokens", [])
    contents = (
        [(t.get("id"), t.get("content")) for t in added if isinstance(t, dict)] if isinstance(added, list) else None
    )
    if contents != list(enumerate(_SPECIALS)):
        problems.append(
            f"field added_tokens must be {_SPECIALS[0]} (id 0) and {_SPECIALS[1]} (id 1), as textclf writes; got {json.dumps(added)[:120]}"
        )
    norm = doc.get("normalizer")
    if norm is not None:
        parts = (
            norm.get("normalizers")
            if isinstance(norm, dict) and norm.get("type") == "Sequence" and set(norm) == {"type", "normalizers"}
            else [norm]
        )
        if not isinstance(parts, list):
            parts = [parts]
        problems += [
            p
            for i, part in enumerate(parts)
            for p in [_component(f"normalizer {i + 1}", part, _ALLOWED["normalizer"])]
            if p
        ]
    for key in ("pre_tokenizer", "decoder"):
        if doc.get(key) is not None or key == "pre_tokenizer":
            problem = _component(key, doc.get(key), _ALLOWED[key])
            problems += [problem] if problem else []
    model = doc.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("type"), str) or model["type"] not in _MODEL_FIELDS:
        got = model.get("type") if isinstance(model, dict) else _kind(model)
        problems.append(f"model is {got!r}; textclf writes only {', '.join(_MODEL_FIELDS)}")
    else:
        fields = _MODEL_FIELDS[model["type"]]
        problems += [
            f"model ({model['type']}) has field {k!r}, which textclf never writes"
            for k in model
            if k != "type" and k not in fields
        ]
        problems += [
            f"model ({model['type']}) field {k} is {model[k]!r}; textclf writes {' or '.join(repr(v) for v in _MODEL_VALUES[k])}"
            for k in model
            if k in fields and k in _MODEL_VALUES and model[k] not in _MODEL_VALUES[k]
        ]
        problem = _vocab_problem(model) if "vocab" in model else "model.vocab is missing"
        problems += [problem] if problem else []
    if problems:
        raise ModelError(
            f"{path}: not a tokenizer textclf writes:\n" + "\n".join(f"  - {p}" for p in problems[:8]) + f"\n{fix}"
        )


def check_tokenizer(path: Path, tokenizer, hp: dict[str, Any], config_path: Path, weights: Path) -> None:
    """The tokenizer's vocabulary is the embedding's: its size is ``model.vocab_size``, every id it emits a row."""
    rows = hp["vocab_size"]
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != rows:
        raise ModelError(
            f"{path}: its vocabulary of {size:,} tokens does not match the embedding: {config_path.name} says "
            f"model.vocab_size = {rows:,}, and {weights.name} holds {rows:,} embedding rows. The tokenizer belongs to another model."
        )
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    token, top = max(vocab.items(), key=lambda kv: kv[1]) if vocab else ("", -1)
    if top >= rows or min(vocab.values(), default=0) < 0:
        raise ModelError(
            f"{path}: token {token!r} has id {top:,}, beyond the {rows:,} rows of the embedding in {weights.name} "
            f"({config_path.name} model.vocab_size); the model could not look it up. The tokenizer is corrupt or from another model."
        )


def check_memory(config_path: Path, hp: dict[str, Any], header: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Refuse weights that cannot be loaded (they are read once and copied into the model) in the memory available."""
    from textclf.models import size

    available, source = size.available_memory()
    if available is None:
        return
    keys = {
        "embedding": "model.vocab_size / model.embedding_dim",
        "encoder": "model.hidden_size / model.layers",
        "head": "model.num_classes / model.hidden_size",
    }
    message = size.refusal(
        f"Loading the model of {config_path}",
        size.weights_estimate(hp),
        available,
        source,
        keys,
        lead="Use a machine with more memory; its size comes from",
    )
    if message:
        raise ModelError(message)
