"""Errors a user can fix.

Everything raised as a :class:`TextclfError` is an *expected* failure: bad
config, bad data, a missing model. The CLI prints its message (no traceback
unless ``--debug``) and exits with :attr:`TextclfError.exit_code`. Anything
else is a bug and keeps its traceback. :func:`short_repr` quotes a value
in such a message at a bounded cost, whatever the value.
"""

from __future__ import annotations

import datetime
import enum
import itertools
from pathlib import PurePath
from typing import Any


class TextclfError(Exception):
    """Base class for errors whose message tells the user what to fix."""

    exit_code = 2


class ConfigError(TextclfError):
    """A config key, value or override is invalid."""


class DataError(TextclfError):
    """Input data is missing, unreadable or invalid."""


class ModelError(TextclfError):
    """A model reference or model artifact cannot be loaded."""


class TrainingError(TextclfError):
    """Training diverged (NaN/inf loss) or cannot continue."""

    exit_code = 1


class DiskFullError(TextclfError):
    """A write failed for lack of space: a full disk, a quota, a file-size limit."""

    exit_code = 1


class StoreLockedError(TextclfError):
    """The MLflow SQLite store stayed locked by another process for longer than textclf waits."""

    exit_code = 1


def short_repr(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, in bounded time and memory, for quoting user input.

    Only the first few items of each container and the first three levels
    are looked at, so a huge, deep, shared or self-referential value costs
    no more than a small one. Objects of other types show as
    ``<TypeName object>``: their own ``__repr__`` could cost anything.
    """
    try:
        text = _short(value, 3)
    except Exception:  # noqa: BLE001 - a hostile __len__/__iter__ must not break an error message
        text = f"<{type(value).__name__} object>"
    limit = max(int(limit), 8)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(x: Any, level: int) -> str:
    if x is None or isinstance(x, (bool, datetime.date, datetime.time, datetime.timedelta)):
        return repr(x)
    if isinstance(x, int):  # str() of a huge int is quadratic, and refused past 4300 digits
        return (
            int.__repr__(x) if x.bit_length() <= 128 else f"<int of about {int(x.bit_length() * 0.30103) + 1:,} digits>"
        )
    if isinstance(x, float):
        return float.__repr__(x)
    if isinstance(x, str):  # slice first: the repr of a 100 MB string is 100 MB
        return repr(str.__getitem__(x, slice(0, 80))) + ("..." if len(x) > 80 else "")
    if isinstance(x, (bytes, bytearray)):
        return repr(bytes(x[:80]))[:88] + ("..." if len(x) > 80 else "")
    if isinstance(x, enum.Enum):
        return f"<{type(x).__name__}.{str(x.name)[:60]}>"
    if isinstance(x, PurePath):
        return f"{type(x).__name__}({_short(str(x), level)})"
    if not isinstance(x, (dict, list, tuple, set, frozenset)):
        return f"<{type(x).__name__} object>"
    kind = "set" if isinstance(x, set) else "frozenset" if isinstance(x, frozenset) else None
    brackets = "[]" if isinstance(x, list) else "()" if isinstance(x, tuple) else "{}"
    if not x or level <= 0:
        inside = "..." if x else ""
        return f"{kind}({inside})" if kind else f"{brackets[0]}{inside}{brackets[1]}"
    if isinstance(x, dict):
        parts = [f"{_short(k, level - 1)}: {_short(v, level - 1)}" for k, v in itertools.islice(x.items(), 4)]
        parts += [f"... ({len(x):,} keys)"] if len(x) > 4 else []
    else:
        parts = [_short(item, level - 1) for item in itertools.islice(x, 6)] + (["..."] if len(x) > 6 else [])
    body = brackets[0] + ", ".join(parts) + ("," if isinstance(x, tuple) and len(x) == 1 else "") + brackets[1]
    return f"frozenset({body})" if kind == "frozenset" else body
