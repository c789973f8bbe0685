"""Built-in corpora, generated deterministically from a seed.

The project ships no third-party text and downloads nothing, so the built-in
data sets (``data.source: builtin:NAME``) are generated here:

* ``reviews``: English-like reviews whose sentiment follows from structure
  (negation, contrast, hedges, long neutral stretches);
* ``long-range``: remember a token across many distractors;
* ``listops``: evaluate nested list operations;
* ``context``: a cue whose meaning depends on a later marker.

``generate(name, seed=..., size=..., **options)`` returns
``{"text": [...], "label": [...]}`` with string labels, balanced classes and
shuffled rows; the same arguments always give byte-identical output.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from textclf.corpora import diagnostics, reviews
from textclf.corpora._common import check_int
from textclf.corpora.diagnostics import context_label, evaluate_listops, long_range_label
from textclf.corpora.reviews import review_label
from textclf.errors import DataError

__all__ = [
    "CORPORA",
    "context_label",
    "corpus_options",
    "corpus_names",
    "default_size",
    "evaluate_listops",
    "generate",
    "long_range_label",
    "review_label",
]

# The submodules keep their names (``textclf.corpora.reviews`` is the module);
# the generator functions are reached through this table.
CORPORA: dict[str, Callable[..., dict[str, list[str]]]] = {
    "reviews": reviews.reviews,
    "long-range": diagnostics.long_range,
    "listops": diagnostics.listops,
    "context": diagnostics.context,
}

_PREFIX = "builtin:"
_MAX_SIZE = 10_000_000


def corpus_names() -> list[str]:
    return sorted(CORPORA)


def _lookup(name: str) -> Callable[..., dict[str, list[str]]]:
    key = name.removeprefix(_PREFIX) if isinstance(name, str) else None
    if key not in CORPORA:
        raise DataError(f"builtin:{name}: unknown built-in corpus {name!r}; available: {', '.join(corpus_names())}")
    return CORPORA[key]


def corpus_options(name: str) -> dict[str, object]:
    """The options of a corpus (besides seed and size) with their defaults."""
    params = inspect.signature(_lookup(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("seed", "size")}


def default_size(name: str) -> int:
    return inspect.signature(_lookup(name)).parameters["size"].default


def generate(name: str, *, seed: int, size: int | None = None, **options: object) -> dict[str, list[str]]:
    """Generate the built-in corpus ``name`` (with or without "builtin:").

    Raises ``DataError`` for an unknown corpus, an unknown option or an
    option value out of range; each message names the culprit.
    """
    fn = _lookup(name)
    allowed = corpus_options(name)
    for option in options:
        if option not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise DataError(f"corpus {name!r} has no option {option!r}; allowed options: {listed}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"option seed={seed!r} is out of range; allowed: an integer")
    size = default_size(name) if size is None else check_int("size", size, 1, _MAX_SIZE)
    return fn(seed=seed, size=size, **options)
