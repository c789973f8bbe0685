"""Bounds on values that came from outside: how big a config value may be, and how to quote one in a message.

Config values are user input, and an error message that quotes one must not
cost more than the mistake it reports: :func:`short_repr` quotes any value in
bounded time and space. :func:`check_tree_size` applies the same node, depth
and text limits that :mod:`textclf.core.yamlio` applies to YAML to a value
built in Python (an override passed to the library), so nothing downstream
deep-copies or serialises a monster.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import reprlib
from pathlib import PurePath
from typing import Any

from textclf.core.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_EXPANDED_CHARS", "MAX_FILE_BYTES", "MAX_NODES", "check_tree_size", "short_repr"]

#: Largest YAML file read, in bytes. Real config files are a few kB; 10 MB
#: leaves room for long inline lists (labels, vocabularies) while keeping a
#: mistaken path to a data file or a disk image from being parsed.
MAX_FILE_BYTES = 10 * 1024 * 1024


#: Most nodes (every key, value and list item) in one document, counted with
#: every alias written out. A large config has a few thousand; 100,000 keeps
#: the composed graph to tens of MB and any later deep copy or validation
#: pass well under a second, while a billion-laughs bomb (nine levels of nine
#: aliases, ~4e8 nodes) is refused after counting ~100 graph nodes.
MAX_NODES = 100_000


#: Deepest nesting, counting the top-level mapping as level 1 and aliases as
#: written out. Configs nest 3-4 levels; 64 is far beyond any real one and
#: keeps every recursive walk (YAML composing, validation, ``deepcopy``,
#: serialising) far from Python's recursion limit.
MAX_DEPTH = 64


#: Most characters in all scalars together (keys included), counted with
#: every alias written out. Without aliases this is at most the file size,
#: so it only stops amplification: one long string aliased a thousand times
#: costs nothing to load but gigabytes to serialise, hash or print.
MAX_EXPANDED_CHARS = 2 * MAX_FILE_BYTES


def short_repr(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, in bounded time and memory.

    Safe for any input: huge strings, bytes and ints, long lists, deep or
    self-referential nesting, structures sharing sub-objects. Only the first
    few items of each container and the first few levels are looked at.
    Objects of unknown types are shown as ``<TypeName object>`` because
    their own ``__repr__`` could cost anything.
    """
    limit = max(int(limit), 8)
    try:
        text = _SHORT_REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __len__/__iter__ must not break an error message
        text = f"<{type(value).__name__} object>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def check_tree_size(
    value: Any,
    limit: int = MAX_NODES,
    where: str = "value",
    *,
    max_depth: int = MAX_DEPTH,
    max_chars: int = MAX_EXPANDED_CHARS,
) -> int:
    """Refuse a value (built in Python, not read from YAML) that is too big, too deep or cyclic.

    Counts like the YAML limits: every dict key, dict value, list/tuple/set
    item and the value itself is one node, strings and bytes add their
    length to the text total, and a sub-object reached twice counts twice
    (that is what copying or serialising it costs). The walk is iterative
    and stops as soon as a limit is passed, so it is cheap even for a huge
    value. Objects other than dicts, lists, tuples, sets, strings and bytes
    count as one node each and are not looked into. Returns the node count.
    ``where`` starts error messages.
    """
    count = 0
    chars = 0
    # One iterator per open container: memory is O(depth), not O(size),
    # and a 10**7-item list costs nothing past the limit.
    stack: list[Any] = [iter((value,))]
    open_ids: list[int] = [0]
    on_path: set[int] = set()
    while stack:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            on_path.discard(open_ids.pop())
            continue
        count += 1
        if count > limit:
            raise ConfigError(
                f"{where}: more than {limit:,} values once nested lists and mappings are counted; pass a smaller value."
            )
        if len(stack) > max_depth:
            raise ConfigError(f"{where}: nested more than {max_depth} levels deep; flatten the value.")
        if isinstance(item, (str, bytes, bytearray)):
            chars += len(item)
            if chars > max_chars:
                raise ConfigError(f"{where}: more than {max_chars:,} characters of text in all; pass a smaller value.")
            continue
        if isinstance(item, dict):
            children: Any = itertools.chain.from_iterable(item.items())
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = iter(item)
        else:
            continue
        if id(item) in on_path:
            raise ConfigError(f"{where}: a list or mapping contains itself; pass a plain tree of values.")
        stack.append(children)
        open_ids.append(id(item))
        on_path.add(id(item))
    return count


class _ShortRepr(reprlib.Repr):
    """reprlib with type checks by isinstance and no step that scales with the input.

    reprlib itself sorts every key of a dict or set before showing a few,
    calls the full ``repr`` of bytes, big ints and unknown objects and then
    truncates; each of those is replaced here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = 4
        self.maxlist = self.maxtuple = self.maxarray = self.maxdeque = 6
        self.maxset = self.maxfrozenset = 6
        self.maxstring = 80
        self.maxlong = 40
        self.maxother = 60

    def repr1(self, x: Any, level: int) -> str:
        if x is None or isinstance(x, bool):
            return repr(x)
        if isinstance(x, int):
            return self._int(x)
        if isinstance(x, float):
            return float.__repr__(x)
        if isinstance(x, str):
            # Slice before repr: repr of a 100 MB string would be a 100 MB string.
            head = str.__getitem__(x, slice(0, self.maxstring))
            return repr(head) + ("..." if len(x) > self.maxstring else "")
        if isinstance(x, (bytes, bytearray)):
            head = bytes(x[: self.maxstring])
            return self._cut(repr(head) + ("..." if len(x) > self.maxstring else ""), self.maxstring + 8)
        if isinstance(x, dict):
            return self._mapping(x, level)
        if isinstance(x, list):
            return self.repr_list(x, level)
        if isinstance(x, tuple):
            return self.repr_tuple(x, level)
        if isinstance(x, (set, frozenset)):
            return self._set(x, level)
        if isinstance(x, (datetime.date, datetime.time, datetime.timedelta)):
            return repr(x)
        if isinstance(x, enum.Enum):
            return f"<{type(x).__name__}.{self._cut(str(x.name), self.maxother)}>"
        if isinstance(x, PurePath):
            return f"{type(x).__name__}({self.repr1(str(x), level)})"
        return f"<{type(x).__name__} object>"

    def _int(self, x: int) -> str:
        # str() of a huge int is quadratic, and refused past 4300 digits.
        if x.bit_length() > 128:
            return f"<int of about {int(x.bit_length() * 0.30103) + 1:,} digits>"
        return int.__repr__(x)

    def _cut(self, text: str, limit: int) -> str:
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def _mapping(self, x: dict, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        parts = [
            f"{self.repr1(key, level - 1)}: {self.repr1(val, level - 1)}"
            for key, val in itertools.islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            parts.append(f"... ({len(x):,} keys)")
        return "{" + ", ".join(parts) + "}"

    def _set(self, x: set | frozenset, level: int) -> str:
        name = "set" if isinstance(x, set) else "frozenset"
        if not x:
            return f"{name}()"
        if level <= 0:
            return f"{name}(...)"
        parts = [self.repr1(item, level - 1) for item in itertools.islice(x, self.maxset)]
        if len(x) > self.maxset:
            parts.append("...")
        body = "{" + ", ".join(parts) + "}"
        return body if name == "set" else f"{name}({body})"


_SHORT_REPR = _ShortRepr()
