"""Reading YAML from files and ``--set`` values with limits: no bombs, no duplicate keys, always a tree.

Config files and ``--set`` values are user input. This is PyYAML's safe
loader with its composer and constructor extended, because plain
``yaml.safe_load`` trusts the input in three ways:

* **Size.** A few hundred bytes of anchors and aliases ("billion laughs")
  describe a value with billions of nodes; ``safe_load`` builds it cheaply as
  shared objects and the cost arrives when something copies, serialises or
  prints it. Here each node is measured as it is composed, *as if every alias
  were written out*, from its children's sizes, so a bomb is refused after
  touching each node once. File size, node count, nesting depth, text and
  alias uses all have limits (below).
* **Duplicate keys.** YAML keeps the last of two equal keys (compared after
  typing, so ``1`` and ``0x1`` are equal) and drops the first without a word.
  Here that is an error naming both lines. Keys that override a merged
  ``<<: *base`` key are not duplicates; two ``<<`` keys in one mapping are.
* **Shape.** The result is a tree: each use of an alias is built afresh, so
  changing one use (as ``--set`` and variant overrides do) never changes another.

Typing is SafeLoader's; the C parser (libyaml) is used when PyYAML has it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from textclf.core.errors import ConfigError, short_repr

#: Largest YAML file read, in bytes. Real config files are a few kB; 10 MB
#: leaves room for long inline lists while keeping a mistaken path to a data
#: file or a disk image from being parsed.
MAX_FILE_BYTES = 10 * 1024 * 1024
#: Largest ``--set`` value, in bytes: more than a shell comfortably passes.
MAX_TEXT_BYTES = 100 * 1024
#: Most nodes (keys, values, list items) in one document, aliases written out.
#: A large config has a few thousand; a billion-laughs bomb has ~4e8.
MAX_NODES = 100_000
#: Deepest nesting (the top level is 1), aliases written out. Configs nest 3-4
#: levels; 64 keeps every recursive walk far from Python's recursion limit.
MAX_DEPTH = 64
#: Most characters in all scalars together, aliases written out: stops one
#: long string aliased a thousand times (cheap to load, costly to serialise).
MAX_EXPANDED_CHARS = 2 * MAX_FILE_BYTES
#: Most alias uses (``*name``, merges included): anchors share a handful of
#: settings; a thousand uses means a generated or hostile file.
MAX_ALIASES = 1_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE_KEY = object()  # stands for "<<" among typed keys, equal to no real key
_FILE_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a named pipe (FIFO)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def load_yaml_file(path: str | os.PathLike[str], what: str = "config", *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The YAML file at ``path`` as plain Python data (``None`` if empty), or a ConfigError naming file and line.

    ``what`` names the kind of file in messages ("params", "pipeline", ...).
    """
    path = Path(path)
    data = _read_regular_file(path, what, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text at line {line} (byte offset {exc.start}); save the file as UTF-8."
        ) from None
    return _load(text, str(path), noun=f"{what} file")


def load_yaml_text(text: str, source: str = "--set value", *, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Parse YAML from a string (a ``--set`` value) with the same limits; ``source`` starts every message."""
    if not isinstance(text, str):
        raise TypeError(f"load_yaml_text needs a str, got {type(text).__name__}")
    # Characters are a lower bound on UTF-8 bytes: a huge string is refused without encoding a copy.
    exact = text.isascii() or len(text) <= max_bytes
    size = len(text) if text.isascii() or not exact else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ConfigError(
            f"{source}: {'' if exact else 'at least '}{size:,} bytes of YAML, over the {max_bytes:,}-byte limit; "
            "put a value this large in a file instead."
        )
    return _load(text, source, noun="value")


def _read_regular_file(path: Path, what: str, max_bytes: int) -> bytes:
    def check(st: os.stat_result, size: int) -> None:
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _FILE_KINDS.items() if test(st.st_mode)), "not a regular file")
            raise ConfigError(f"{path}: is {kind}, not a {what} file; give the path of a YAML file.")
        if size > max_bytes:
            raise ConfigError(
                f"{path}: {what} file is {size:,} bytes, over the {max_bytes:,}-byte limit; "
                f"a {what} file this large is almost certainly the wrong file, check the path."
            )

    try:
        st = os.stat(path)
        check(st, st.st_size)  # before opening: opening a FIFO blocks, opening a device can act
        # The path can be swapped after the stat: open without blocking and check what was opened.
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            st = os.fstat(fh.fileno())
            check(st, st.st_size)
            data = fh.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the {what} file ({exc.strerror or exc}); check its permissions."
        ) from None
    check(st, len(data))  # it may have grown after the fstat
    return data


def _line(node: Any) -> int:
    return node.start_mark.line + 1


def _at(event: Any) -> str:
    return f"line {event.start_mark.line + 1}, column {event.start_mark.column + 1}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Limits(Composer):
    """PyYAML's composer, counting nodes, depth and alias uses, and measuring every node with aliases written out.

    Counting while composing bounds memory: ten million list items are refused
    once the count passes the limit, before they exist, and the depth check
    keeps the recursive composer far from Python's recursion limit.
    """

    source = "YAML"
    noun = "value"

    def compose_document(self) -> Any:
        self.anchors: dict[str, Any] = {}  # as Composer.__init__, which CSafeLoader's __init__ never calls
        self._nodes = self._aliases = self._depth = 0
        # id(node) -> (nodes, chars, height, heaviest anchor inside) with aliases written out
        self._sizes: dict[int, tuple[int, int, int, Any]] = {}
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ConfigError(
                    f"{self.source}: more than {MAX_ALIASES:,} YAML alias uses (*name), the last at {_at(event)}; "
                    "write the values out or use fewer aliases."
                )
            node = super().compose_node(parent, index)
            anchor = f"anchor &{_clip(event.anchor, 40)} at line {_line(node)}"
            if id(node) not in self._sizes:  # its anchor is still being composed
                raise ConfigError(
                    f"{self.source}: {anchor} contains an alias to itself, which would make an infinitely deep "
                    "value; remove that alias."
                )
            if self._depth + self._sizes[id(node)][2] > MAX_DEPTH:
                raise ConfigError(
                    f"{self.source}: YAML nested more than {MAX_DEPTH} levels deep once aliases are written out "
                    f"({anchor}); write the values out or remove the aliases."
                )
            return node
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError(
                f"{self.source}: more than {MAX_NODES:,} YAML values (the limit is reached at {_at(event)}); "
                f"a {self.noun} this large is almost certainly a mistake, split it or shorten its lists."
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ConfigError(
                f"{self.source}: YAML nested more than {MAX_DEPTH} levels deep at line {_line(event)}; "
                "flatten the structure."
            )
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._measure(node, event.anchor)
        if isinstance(node, MappingNode):
            self._refuse_duplicate_keys(node)
        return node

    def _measure(self, node: Any, anchor: str | None) -> tuple[int, int, int, Any]:
        """Size of ``node`` with aliases written out, from its children's (composed, so measured, before it)."""
        children = node.value if isinstance(node, SequenceNode) else []
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes = [self._sizes[id(child)] for child in children]
        nodes = 1 + sum(size[0] for size in sizes)
        chars = (len(node.value) if isinstance(node, ScalarNode) else 0) + sum(size[1] for size in sizes)
        heaviest = max((size[3] for size in sizes if size[3] is not None), default=None)
        for count, limit, what in ((nodes, MAX_NODES, "nodes"), (chars, MAX_EXPANDED_CHARS, "characters of text")):
            if count > limit:
                where = f"the value at line {_line(node)}"
                if heaviest is not None:
                    where = f"anchor &{heaviest[1]} at line {heaviest[2]}, repeated in {where}"
                raise ConfigError(
                    f"{self.source}: YAML aliases expand to more than {limit:,} {what} ({where}); "
                    "write the values out or remove the aliases."
                )
        if anchor is not None:  # an anchored node outweighs every anchor inside it
            heaviest = (nodes / MAX_NODES + chars / MAX_EXPANDED_CHARS, _clip(anchor, 40), _line(node))
        return nodes, chars, 1 + max((size[2] for size in sizes), default=0), heaviest

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        """Keys written twice in one mapping, compared after typing as the loaded dict would compare them."""
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # the constructor refuses a non-scalar key as unhashable
            key = _MERGE_KEY if key_node.tag == _MERGE_TAG else self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue
            if first is key_node:
                continue
            lines = f"at lines {_line(first)} and {_line(key_node)}"
            if key is _MERGE_KEY:
                raise ConfigError(
                    f"{self.source}: duplicate merge key '<<' {lines}; a key may appear only once in a mapping, "
                    "so list the merged mappings in one: '<<: [*first, *second]'."
                )
            same = ""
            if first.value != key_node.value:
                same = f", written {short_repr(key_node.value, 60)} the second time, which YAML reads as the same key"
            raise ConfigError(
                f"{self.source}: duplicate key {short_repr(first.value, 80)} {lines} (YAML keeps only the last{same}); "
                "merge the two into one."
            )

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        # Built afresh for each alias use, so no two uses share a list or dict.
        self.constructed_objects.pop(node, None)
        return super().construct_object(node, deep)  # type: ignore[misc]


class _PyLoader(_Limits, yaml.SafeLoader):
    """SafeLoader with the limits (pure Python parser)."""


if yaml.__with_libyaml__:

    class _CLoader(_Limits, yaml.CSafeLoader):  # type: ignore[misc,valid-type]
        """libyaml's parser feeding the Python composer with the limits (first in the MRO, so it replaces libyaml's)."""

        def __init__(self, stream: str) -> None:
            yaml.CSafeLoader.__init__(self, stream)  # not Composer's, which comes first in the MRO

    _Loader: type = _CLoader
else:  # pragma: no cover - depends on how PyYAML was installed
    _Loader = _PyLoader


def _load(text: str, source: str, noun: str) -> Any:
    loader = None
    try:
        loader = _Loader(text)  # constructing it already reads: a bad character fails here
        loader.source, loader.noun = source, noun
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own cap, met first as its scanner reads ahead
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(
                f"{source}: YAML nested more than {MAX_DEPTH} levels deep{where}; flatten the structure."
            ) from None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or type(exc).__name__
        if exc.problem and exc.context:  # "while scanning a quoted scalar at line 3, found unexpected end of stream"
            opened = exc.context_mark and mark and exc.context_mark.line != mark.line
            problem = f"{exc.context}{f' at line {exc.context_mark.line + 1}' if opened else ''}, {exc.problem}"
        raise ConfigError(f"{source}: malformed YAML{where}: {_clip(problem)}. Fix the syntax of that line.") from None
    except yaml.reader.ReaderError as exc:
        where = ""
        if isinstance(exc.position, int) and 0 <= exc.position <= len(text):
            line_start = text.rfind("\n", 0, exc.position) + 1
            where = f" at line {text.count(chr(10), 0, exc.position) + 1}, column {exc.position - line_start + 1}"
        char = f" (character #x{exc.character:04x})" if isinstance(exc.character, int) else ""
        raise ConfigError(
            f"{source}: malformed YAML{where}: {_clip(str(exc.reason))}{char}. Fix that character."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {_clip(str(exc))}. Fix the syntax.") from None
    except UnicodeError:  # a str holding lone surrogates cannot be handed to libyaml
        raise ConfigError(f"{source}: not valid Unicode text; remove the unpaired surrogate characters.") from None
    finally:
        if loader is not None:
            loader.dispose()
