"""Built-in corpora, generated deterministically from a seed.

The project ships no third-party text and downloads nothing, so the built-in
data sets (``data.source: builtin:NAME``) are generated here:

* ``reviews``: English-like reviews whose sentiment follows from structure
  (negation, contrast, hedges, long neutral stretches);
* diagnostic tasks, each isolating one claim about recurrent networks (see
  :mod:`textclf.data.corpora.diagnostics`):

  - ``long-range``: recall the first token after N distractors;
  - ``ends``: combine the first and the last token of a long text;
  - ``context``: cues flipped by markers on either side, majority vote;
  - ``order``: a cue flipped by a later marker (control for ``context``);
  - ``listops``: nested MAX / MIN expressions, stratified by depth.

``generate(name, seed=..., size=..., **options)`` returns
``{"text": [...], "label": [...]}`` with string labels, balanced classes and
shuffled rows; the same arguments always give byte-identical output. A corpus
may add further columns of the same length, one value per row, for slicing
results (``listops`` adds ``depth``, an int); the prepare stage keeps them as
optional slice columns.

Each corpus has a label function that recomputes the label from the text
alone: ``review_label`` (from a review's plan), ``long_range_label``,
``ends_label``, ``context_label``, ``order_label`` and ``evaluate_listops``
(with ``listops_depth`` for the depth column).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from textclf.core.errors import DataError
from textclf.data.corpora import cues, diagnostics, listops, reviews
from textclf.data.corpora._common import check_int
from textclf.data.corpora.cues import context_label, order_label
from textclf.data.corpora.diagnostics import ends_label, long_range_label
from textclf.data.corpora.listops import evaluate_listops, listops_depth
from textclf.data.corpora.review_plan import review_label

__all__ = [
    "CORPORA",
    "context_label",
    "corpus_names",
    "corpus_options",
    "default_size",
    "ends_label",
    "evaluate_listops",
    "generate",
    "listops_depth",
    "long_range_label",
    "order_label",
    "review_label",
]

# The submodules keep their names (``textclf.data.corpora.reviews`` is the module);
# the generator functions are reached through this table.
CORPORA: dict[str, Callable[..., dict[str, list]]] = {
    "reviews": reviews.reviews,
    "long-range": diagnostics.long_range,
    "ends": diagnostics.ends,
    "context": cues.context,
    "order": cues.order,
    "listops": listops.listops,
}

_PREFIX = "builtin:"
_MAX_SIZE = 10_000_000


def corpus_names() -> list[str]:
    return sorted(CORPORA)


def _lookup(name: str) -> Callable[..., dict[str, list]]:
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


def generate(name: str, *, seed: int, size: int | None = None, **options: object) -> dict[str, list]:
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
