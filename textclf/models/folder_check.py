"""Validating a model folder completely before anything is allocated.

:func:`textclf.models.folder.read_folder` runs these checks in order, each
failure a :class:`~textclf.core.errors.ModelError` naming the file and the
field: a folder is anybody's download, and a crafted one must never get as
far as a traceback, a huge allocation, or wrong answers with exit code 0.

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
from pathlib import Path
from typing import Any

from textclf.core.errors import ConfigError, ModelError

FORMAT_VERSION = 1  # the newest model folder format this textclf reads and writes
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
    from textclf.models.registry import ENCODERS, HPARAMS, POOLINGS

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
        raise ModelError(
            f"{path}: not a valid safetensors file ({exc}). Only safetensors weights are loaded (never pickle)."
        ) from None


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
# characters turned a 400-character text into 3.2 GB; a Split regex "(a|aa)+$" panics
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
