"""User-chosen names (variants, tasks, labels, registry names) made safe for MLflow, in one place.

Variant, task and label names are the user's own text: ``lr=0.001`` (a grid
over ``train.lr``), ``Sci/Tech``, ``../up``, an emoji, a NUL, a 300-character
label. MLflow takes metric, param and tag keys only of ASCII letters, digits,
``_ - . / :`` and spaces, at most 250 characters, that do not read as a path
(``..x``, ``a//b``); an artifact path must not climb out of its folder. A name
that breaks one of those rules used to fail after every variant had trained.

Every user-chosen string that becomes part of an MLflow key or an artifact
path goes through :func:`safe_keys`, which never fails: a deterministic,
readable mapping (``lr=0.001`` -> ``lr_0.001``; ``Sci/Tech`` -> ``Sci_Tech``)
that keeps distinct names distinct (a name that had to change and then meets
another gets a short hash of its original text, ``a_b-1f3c9e0a``) and keeps
every part within :data:`PART_MAX` characters, so a key of two parts and a
metric name stays within MLflow's limit. The mapping is recorded on the
parent run (``mlflow_keys`` in its summary.json); tables and reports keep
the original names. Run names and tag values may hold any text in MLflow,
but not control characters in every store: :func:`display` replaces those.

Registry names are the exception: a registered model is found again by
``models:/NAME@champion``, so a name that cannot be read back that way is
refused up front (:func:`check_registry_name`) rather than changed behind the
user's back.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from textclf.core.errors import ConfigError

MAX_KEY = 250  # MLflow's MAX_ENTITY_KEY_LENGTH (metric, param and tag keys); also its run-name column
PART_MAX = 100  # one user-chosen part of a key: two parts and a metric name stay within MAX_KEY
MAX_REGISTRY_NAME = 250
# What MLflow accepts in a key, less '/' (a path separator in its file-backed stores
# and artifact paths) and ':' (refused on Windows).
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. ]+")
_DIGEST = 8


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST]


def _clean(name: str) -> str:
    """Unsafe runs of characters become one ``_``; no leading dot (``..`` reads as a path) or edge spaces."""
    return _UNSAFE.sub("_", name).strip(". ") or "_"


def _with_digest(cleaned: str, original: str, limit: int) -> str:
    return cleaned[: limit - _DIGEST - 1].rstrip(". ") + "-" + _digest(original)


def safe_key(name: str, limit: int = PART_MAX) -> str:
    """``name`` as an MLflow-legal key part of at most ``limit`` characters (a long one ends in a hash of the whole)."""
    name = str(name)
    cleaned = _clean(name)
    return cleaned if len(cleaned) <= limit else _with_digest(cleaned, name, limit)


def safe_keys(names: Iterable[str], limit: int = PART_MAX) -> dict[str, str]:
    """Each name -> a distinct MLflow-legal key part (:func:`safe_key`); never fails.

    A name that is legal as it is keeps itself. Names that had to change and
    then meet another name's key get a hash of their original text; should two
    keys still meet (a legal name spelt like another's hashed key), the later
    changed one is numbered.
    """
    names = list(dict.fromkeys(str(n) for n in names))
    keys = {n: safe_key(n, limit) for n in names}
    count: dict[str, int] = {}
    for k in keys.values():
        count[k] = count.get(k, 0) + 1
    for n in names:
        if count[keys[n]] > 1 and keys[n] != n:
            keys[n] = _with_digest(_clean(n), n, limit)
    taken: set[str] = {n for n in names if keys[n] == n}  # names kept as they are win any tie
    for n in names:
        if keys[n] == n:
            continue
        k, i = keys[n], 1
        while k in taken:
            suffix = f"-{i}"
            k, i = keys[n][: limit - len(suffix)] + suffix, i + 1
        taken.add(k)
        keys[n] = k
    return keys


def changed(keys: dict[str, str]) -> dict[str, str]:
    """The entries of a :func:`safe_keys` mapping whose key differs from the name (what a run records)."""
    return {n: k for n, k in keys.items() if n != k}


def metric_key(*parts: str) -> str:
    """Mapped parts and a metric name joined by dots, checked against MLflow's key length."""
    key = ".".join(parts)
    if len(key) > MAX_KEY:  # parts come from safe_keys (≤ PART_MAX each): a programming error, not the user's
        raise ValueError(f"MLflow key of {len(key)} characters (limit {MAX_KEY}): {key[:60]}...")
    return key


def display(text: str, limit: int = MAX_KEY) -> str:
    """Text for a run name or tag value: control characters (NUL, newlines) as ``_``, at most ``limit`` characters.

    Run names and tag values may hold any other text (an emoji, a slash);
    SQL stores other than SQLite refuse NUL, and the run-name column holds 250.
    """
    text = str(text)
    out = "".join("_" if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return out if len(out) <= limit else out[: limit - _DIGEST - 1] + "-" + _digest(text)


MAX_EXPERIMENT_NAME = 500  # MLflow's MAX_EXPERIMENT_NAME_LENGTH


def check_experiment_name(name: str, *, option: str = "--experiment") -> str:
    """``name`` if MLflow can create an experiment of that name (non-empty, at most 500 characters); else a ConfigError."""
    if name and name.strip() and len(name) <= MAX_EXPERIMENT_NAME:
        return name
    got = "an empty name" if not name or not name.strip() else f"{len(name):,} characters"
    raise ConfigError(
        f"{option} {name[:60]!r}{'...' if len(name) > 60 else ''}: an MLflow experiment's name holds 1 to "
        f"{MAX_EXPERIMENT_NAME} characters, got {got}. Choose a shorter name, e.g. {option} train."
    )


_REGISTRY_OK = re.compile(r"[^\W_][\w\-. ]*", re.UNICODE)


def check_registry_name(name: str, *, option: str = "--register") -> str:
    """``name`` if MLflow's registry accepts it and ``models:/NAME@champion`` finds it again; else a ConfigError.

    MLflow refuses '/' and ':' and names that read as paths (``../up``); '@'
    splits ``models:/NAME@ALIAS`` at the wrong place, '?', '#' and '%' are
    read as parts of a URI, and edge spaces are easy to lose when typed again.
    """
    problem = None
    if not name or not name.strip():
        problem = "is empty"
    elif len(name) > MAX_REGISTRY_NAME:
        problem = f"has {len(name)} characters (at most {MAX_REGISTRY_NAME})"
    elif name != name.strip():
        problem = "starts or ends with a space"
    elif not _REGISTRY_OK.fullmatch(name):
        bad = sorted({c for c in name if not (c.isalnum() or c in "_-. ")})
        if bad:
            problem = (
                "holds "
                + ", ".join(repr(c) for c in bad)
                + (" ('/', ':' and '..' are refused by MLflow; '@', '?', '#' and '%' break models:/NAME@champion)")
            )
        else:
            problem = "must start with a letter or digit"
    if problem is None:
        return name
    suggestion = _clean(name).lstrip("_-") or "my-model"
    raise ConfigError(
        f"{option} {name!r}: a registered model's name {problem}. Use letters, digits, '_', '-', '.' and inner spaces, "
        f"starting with a letter or digit, e.g. {option} {suggestion}."
    )
