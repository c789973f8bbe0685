"""Reading YAML from files and ``--set`` values with limits: no bombs, no duplicate keys, always a tree.

Config files and ``--set`` values are user input; this subclass of PyYAML's
safe loader refuses what ``yaml.safe_load`` would trust. *Size*: a few
hundred bytes of anchors and aliases ("billion laughs") describe billions of
nodes, so each node is measured as it is composed, as if every alias were
written out, from its children's sizes: a bomb is refused after touching
each node once. *Duplicate keys* (equal after typing: ``1`` and ``0x1``),
which YAML drops silently, are an error naming both lines; overriding a key
merged by ``<<: *base`` is not. *Shape*: each use of an alias is built
afresh, so changing one use (as ``--set`` does) never changes another.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode

from textclf.core.errors import ConfigError, short_repr

#: Largest YAML file read: configs are a few kB; a mistaken path to a data file or disk image is not parsed.
MAX_FILE_BYTES = 10 * 1024 * 1024
#: Largest ``--set`` value: more than a shell comfortably passes.
MAX_TEXT_BYTES = 100 * 1024
#: Most nodes (keys, values, items) with aliases written out: configs have thousands, a bomb ~4e8.
MAX_NODES = 100_000
#: Deepest nesting (top level 1) with aliases written out: configs nest 3-4; far from the recursion limit.
MAX_DEPTH = 64
#: Most characters of all scalars with aliases written out: one long string aliased 1000 times is refused.
MAX_EXPANDED_CHARS = 2 * MAX_FILE_BYTES
#: Most alias uses (``*name``, merges included): anchors share a few settings; 1000 means a hostile file.
MAX_ALIASES = 1_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE_KEY = object()  # "<<" among typed keys: equal to no real key
_KINDS = dict(d="a directory", p="a named pipe (FIFO)", c="a character device", b="a block device", s="a socket")


def load_yaml_file(path: str | os.PathLike[str], what: str = "config", *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The YAML file at ``path`` as plain data (``None`` if empty); ``what`` names the file in messages ("params")."""
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
    def check(mode: int, size: int) -> None:
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.filemode(mode)[0], "not a regular file")
            raise ConfigError(f"{path}: is {kind}, not a {what} file; give the path of a YAML file.")
        if size > max_bytes:
            raise ConfigError(
                f"{path}: {what} file is {size:,} bytes, over the {max_bytes:,}-byte limit; "
                f"a {what} file this large is almost certainly the wrong file, check the path."
            )

    try:
        st = os.stat(path)
        check(st.st_mode, st.st_size)  # before opening: opening a FIFO blocks, opening a device can act
        # The path may be swapped after the stat: open without blocking, then check what was opened.
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            st = os.fstat(fh.fileno())
            check(st.st_mode, st.st_size)
            data = fh.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the {what} file ({exc.strerror or exc}); check its permissions."
        ) from None
    check(st.st_mode, len(data))  # it may have grown after the fstat
    return data


def _line(node: Any) -> int:
    return node.start_mark.line + 1


def _at(node: Any) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Limits(Composer):
    """PyYAML's composer, counting as it goes: ten million items are refused before they exist.

    Each node's size with aliases written out is summed from its children's,
    which are composed, so measured, before it.
    """

    source, noun = "YAML", "value"

    def compose_document(self) -> Any:
        self.anchors: dict[str, Any] = {}  # as Composer.__init__ would: CSafeLoader's __init__ does not call it
        self._nodes = self._aliases = self._depth = 0
        self._sizes: dict[int, tuple[int, int, int, Any]] = {}  # id(node) -> nodes, chars, height, heaviest anchor
        return super().compose_document()

    def _refuse(self, problem: str, fix: str) -> None:
        raise ConfigError(f"{self.source}: {problem}; {fix}.")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                self._refuse(
                    f"more than {MAX_ALIASES:,} YAML alias uses (*name), the last at {_at(event)}",
                    "write the values out or use fewer aliases",
                )
            node = super().compose_node(parent, index)
            anchor = f"anchor &{_clip(event.anchor, 40)} at line {_line(node)}"
            if id(node) not in self._sizes:  # the anchored node is still being composed
                self._refuse(
                    f"{anchor} contains an alias to itself, which would make an infinitely deep value",
                    "remove that alias",
                )
            if self._depth + self._sizes[id(node)][2] > MAX_DEPTH:
                problem = f"YAML nested more than {MAX_DEPTH} levels deep once aliases are written out ({anchor})"
                self._refuse(problem, "write the values out or remove the aliases")
            return node
        self._nodes += 1
        if self._nodes > MAX_NODES:
            problem = f"more than {MAX_NODES:,} YAML values (the limit is reached at {_at(event)})"
            self._refuse(
                problem, f"a {self.noun} this large is almost certainly a mistake, split it or shorten its lists"
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._refuse(
                f"YAML nested more than {MAX_DEPTH} levels deep at line {_line(event)}", "flatten the structure"
            )
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._measure(node, event.anchor)
        if isinstance(node, MappingNode):
            self._refuse_duplicate_keys(node)
        return node

    def _measure(self, node: Any, anchor: str | None) -> tuple[int, int, int, Any]:
        nodes, chars, height, heaviest = 1, 0, 1, None
        if isinstance(node, ScalarNode):  # most nodes: nothing to add up
            chars = len(node.value)
        else:
            children = [part for pair in node.value for part in pair] if isinstance(node, MappingNode) else node.value
            for n, c, h, heavy in [self._sizes[id(child)] for child in children]:
                nodes, chars, height = nodes + n, chars + c, max(height, h + 1)
                heaviest = heavy if heaviest is None or (heavy is not None and heavy > heaviest) else heaviest
            for count, limit, what in ((nodes, MAX_NODES, "nodes"), (chars, MAX_EXPANDED_CHARS, "characters of text")):
                if count > limit:
                    where = f"the value at line {_line(node)}"
                    if heaviest is not None:
                        where = f"anchor &{heaviest[1]} at line {heaviest[2]}, repeated in {where}"
                    problem = f"YAML aliases expand to more than {limit:,} {what} ({where})"
                    self._refuse(problem, "write the values out or remove the aliases")
        if anchor is not None:  # an anchored node outweighs every anchor inside it
            heaviest = (nodes / MAX_NODES + chars / MAX_EXPANDED_CHARS, _clip(anchor, 40), _line(node))
        return nodes, chars, height, heaviest

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # the constructor refuses a non-scalar key as unhashable
            key = _MERGE_KEY if key_node.tag == _MERGE_TAG else self.construct_object(key_node, deep=True)
            first = seen.setdefault(key, key_node)  # a scalar node's value is hashable (or refused when built)
            if first is key_node:
                continue
            lines = f"at lines {_line(first)} and {_line(key_node)}"
            if key is _MERGE_KEY:
                fix = "a key may appear only once in a mapping, so list the merged mappings in one: '<<: [*first, *second]'"
                self._refuse(f"duplicate merge key '<<' {lines}", fix)
            same = ""
            if first.value != key_node.value:
                same = f", written {short_repr(key_node.value, 60)} the second time, which YAML reads as the same key"
            self._refuse(
                f"duplicate key {short_repr(first.value, 80)} {lines} (YAML keeps only the last{same})",
                "merge the two into one",
            )

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        self.constructed_objects.pop(node, None)  # built afresh for each alias use: no two uses share a list or dict
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except (ValueError, TypeError, KeyError, AttributeError):  # a value its type cannot take: 2024-13-45, !!bool x
            value = short_repr(node.value, 60) if isinstance(node, ScalarNode) else "the value"
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._refuse(f"{value} at {_at(node)} is not a valid {tag}", "quote it to keep it as text, or correct it")


def _limited(parser_loader: type) -> type:
    """``parser_loader`` (SafeLoader, or CSafeLoader with libyaml's fast parser) composing with the limits."""

    class Loader(_Limits, parser_loader):  # type: ignore[misc,valid-type]
        def __init__(self, stream: str) -> None:
            parser_loader.__init__(self, stream)  # not Composer's, which comes first in the MRO

    return Loader


_Loader = _limited(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _load(text: str, source: str, noun: str) -> Any:
    try:
        loader = _Loader(text)  # constructing it already reads: a bad character fails here
        loader.source, loader.noun = source, noun
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own cap, met first as its scanner reads ahead
            raise ConfigError(
                f"{source}: YAML nested more than {MAX_DEPTH} levels deep{where.split(',')[0]}; flatten the structure."
            ) from None
        problem = exc.problem or exc.context or type(exc).__name__
        if exc.problem and exc.context:  # "while scanning a quoted scalar at line 3, found unexpected end of stream"
            opened = exc.context_mark and mark and exc.context_mark.line != mark.line
            problem = f"{exc.context}{f' at line {exc.context_mark.line + 1}' if opened else ''}, {exc.problem}"
        row = text.split("\n", mark.line + 1)[mark.line : mark.line + 1] if mark else []  # none past the end
        tab = bool(row) and row[0][mark.column : mark.column + 1] == "\t"
        fix = "Replace the tab with spaces" if tab else "Fix the syntax of that line"
        raise ConfigError(f"{source}: malformed YAML{where}: {_clip(problem)}. {fix}.") from None
    except yaml.reader.ReaderError as exc:
        pos = exc.position if isinstance(exc.position, int) else 0
        where = f"line {text.count(chr(10), 0, pos) + 1}, column {pos - text.rfind(chr(10), 0, pos)}"
        char = f" (character #x{exc.character:04x})" if isinstance(exc.character, int) else ""
        raise ConfigError(
            f"{source}: malformed YAML at {where}: {_clip(str(exc.reason))}{char}. Fix that character."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {_clip(str(exc))}. Fix the syntax.") from None
    except UnicodeError:  # a str holding lone surrogates cannot be handed to libyaml
        raise ConfigError(f"{source}: not valid Unicode text; remove the unpaired surrogate characters.") from None
