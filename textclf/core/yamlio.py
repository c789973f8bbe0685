"""Reading YAML from files and ``--set`` values with limits: no bombs, no duplicate keys, always a tree.

Config files and ``--set`` values are user input. Plain ``yaml.safe_load``
trusts them in three ways this module does not:

* **Size.** A few hundred bytes of anchors and aliases ("billion laughs")
  describe a value with billions of nodes. ``safe_load`` builds it cheaply as
  a graph of shared objects, and the cost arrives later, when something deep
  copies, serialises, validates or ``repr``-s it. Here the composed node graph
  is measured first, *as if every alias were written out*, with a memo per
  node so a bomb is refused after touching each node once. File size, node
  count, nesting depth and alias uses all have limits (below).
* **Duplicate keys.** YAML keeps the last of two equal keys in a mapping and
  drops the first without a word. Here that is an error naming both lines.
* **Shape.** The result is a tree: a value reached through an alias is an
  independent copy, so changing one use (as ``--set`` and variant overrides
  do) never changes another.

Merge keys (``<<: *base`` or ``<<: [*a, *b]``) keep YAML's merge-key meaning,
exactly as PyYAML's SafeLoader applies them: keys written in the mapping
override merged ones, and among several merged mappings the first listed
wins. Duplicates are checked among the keys written in each mapping only, so
overriding a merged key is not a duplicate; two ``<<`` keys in one mapping
are (list the mappings in one ``<<`` instead). Merged values count towards
the node limit like any alias.

Typing is SafeLoader's (the C parser when PyYAML has it, for speed; the
resolver and constructor are the same Python ones, so results are the same).

The limits shared with values built in Python (nodes, depth, text) and the
bounded quoting of values in messages live in :mod:`textclf.core.bounded`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from textclf.core.bounded import (
    MAX_DEPTH,
    MAX_EXPANDED_CHARS,
    MAX_FILE_BYTES,
    MAX_NODES,
)
from textclf.core.errors import ConfigError
from textclf.core.files import read_regular_file
from textclf.core.yamltree import as_tree, check_duplicate_keys
from textclf.core.yamltree import line_of as _line

try:  # libyaml's parser, when PyYAML was built with it
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was installed
    CParser = None

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_EXPANDED_CHARS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_TEXT_BYTES",
    "load_yaml_file",
    "load_yaml_text",
]

# --------------------------------------------------------------------------- limits


#: Largest ``--set`` value, in bytes. A command-line value is a few words;
#: 100 kB is already more than a shell comfortably passes.
MAX_TEXT_BYTES = 100 * 1024


#: Most alias uses (``*name``, including merges) in one document. Anchors are
#: for sharing a handful of settings between variants; a thousand uses means
#: the file is generated or hostile, and the node limit would reject most
#: such files anyway. The separate count names the real problem sooner.
MAX_ALIASES = 1_000

# Longest piece of YAML's own error text or of an anchor name put in a
# message: both come from the file and could be megabytes long.
_MAX_QUOTED = 200


# --------------------------------------------------------------------------- public API


def load_yaml_file(path: str | os.PathLike[str], what: str = "config", *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Read a YAML file within the limits above and return plain Python data (a tree).

    Returns ``None`` for an empty file (or one holding only comments): what
    an empty file means is the caller's business. Every failure is a
    :class:`ConfigError` naming the file and, where there is one, the line.
    ``what`` names the kind of file in messages ("params", "pipeline", ...).
    """
    path = Path(path)
    data = read_regular_file(path, what, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}).") from None
    return _load(text, str(path), noun=f"{what} file")


def load_yaml_text(text: str, source: str = "--set value", *, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Parse YAML from a string (a ``--set`` value) with the same limits as a file.

    ``source`` starts every error message, so it should say where the text
    came from (e.g. ``"--set encoder.layers"``). Empty text gives ``None``.
    """
    if not isinstance(text, str):
        raise TypeError(f"load_yaml_text needs a str, got {type(text).__name__}")
    # len() in characters is the UTF-8 size for ASCII and a lower bound
    # otherwise, so a huge string is refused without encoding a copy of it.
    exact = text.isascii() or len(text) <= max_bytes
    size = len(text) if text.isascii() or not exact else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ConfigError(
            f"{source}: {'' if exact else 'at least '}{size:,} bytes of YAML, over the {max_bytes:,}-byte limit; "
            "put a value this large in a file instead."
        )
    return _load(text, source, noun="value")


# --------------------------------------------------------------------------- parsing with limits


def _clip(text: str, limit: int = _MAX_QUOTED) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _LimitedComposer(Composer):
    """PyYAML's composer, counting nodes, depth and alias uses as it goes.

    Counting while composing (rather than afterwards) is what bounds memory:
    a file with ten million list items is refused once the count passes the
    limit, before ten million nodes exist. The depth check also keeps the
    composer's recursion far from Python's recursion limit.
    """

    def _start_limits(self, source: str, noun: str) -> None:
        self._source = source
        self._noun = noun
        self._node_count = 0
        self._alias_count = 0
        self._depth = 0
        # id(node) -> (anchor name, node); the node is kept so the id stays its.
        self._anchor_of: dict[int, tuple[str, Node]] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self._alias_count += 1
            if self._alias_count > MAX_ALIASES:
                raise ConfigError(
                    f"{self._source}: more than {MAX_ALIASES:,} YAML alias uses (*name), the last at "
                    f"{_at(event)}; write the values out or use fewer aliases."
                )
            return super().compose_node(parent, index)
        event = self.peek_event()
        self._node_count += 1
        if self._node_count > MAX_NODES:
            raise ConfigError(
                f"{self._source}: more than {MAX_NODES:,} YAML values (the limit is reached at {_at(event)}); "
                f"a {self._noun} this large is almost certainly a mistake, split it or shorten its lists."
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ConfigError(
                f"{self._source}: YAML nested more than {MAX_DEPTH} levels deep at line {_line(event)}; "
                "flatten the structure."
            )
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._anchor_of[id(node)] = (event.anchor, node)
        return node


class _PyLoader(_LimitedComposer, Reader, Scanner, Parser, SafeConstructor, Resolver):
    """SafeLoader with the limited composer (pure Python)."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _LimitedComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


if CParser is not None:

    class _CLoader(_LimitedComposer, CParser, SafeConstructor, Resolver):  # type: ignore[misc,valid-type]
        """CSafeLoader's parser (libyaml) feeding the limited composer.

        The composer comes first in the MRO so its Python methods replace
        CParser's C composer; CParser still supplies the events.
        """

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _LimitedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _Loader: type = _CLoader
else:  # pragma: no cover - depends on how PyYAML was installed
    _Loader = _PyLoader


def _load(text: str, source: str, noun: str) -> Any:
    loader = None
    try:
        # Constructing the loader already reads: the Python reader checks
        # every character, libyaml's encodes the text.
        loader = _Loader(text)
        loader._start_limits(source, noun)
        root = loader.get_single_node()
        if root is None:
            return None
        mappings = _measure(root, loader._anchor_of, source)
        check_duplicate_keys(mappings, source)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if "maximum nesting depth" in str(exc.problem):
            # libyaml's own cap (1000 levels), met before the composer sees
            # level 65 because its scanner reads ahead; same message as ours.
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(
                f"{source}: YAML nested more than {MAX_DEPTH} levels deep{where}; flatten the structure."
            ) from None
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or type(exc).__name__
        if exc.problem and exc.context:
            # "while scanning a quoted scalar at line 3, found unexpected end of stream"
            context_mark = exc.context_mark
            opened = ""
            if context_mark and mark and context_mark.line != mark.line:
                opened = f" at line {context_mark.line + 1}"
            problem = f"{exc.context}{opened}, {exc.problem}"
        raise ConfigError(f"{source}: malformed YAML{where}: {_clip(problem)}. Fix the syntax of that line.") from None
    except ReaderError as exc:
        where = ""
        if isinstance(exc.position, int) and 0 <= exc.position <= len(text):
            line = text.count("\n", 0, exc.position) + 1
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            where = f" at line {line}, column {column}"
        char = f" (character #x{exc.character:04x})" if isinstance(exc.character, int) else ""
        raise ConfigError(
            f"{source}: malformed YAML{where}: {_clip(str(exc.reason))}{char}. Fix that character."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {_clip(str(exc))}. Fix the syntax.") from None
    except UnicodeError:
        # A str holding lone surrogates cannot be handed to libyaml.
        raise ConfigError(f"{source}: not valid Unicode text.") from None
    finally:
        if loader is not None:
            loader.dispose()
    # The constructor shares one Python object between all uses of an
    # anchor; copying makes each use independent. _measure bounded the size.
    return as_tree(data)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _measure(root: Node, anchor_of: dict[int, tuple[str, Node]], source: str) -> list[MappingNode]:
    """Size, text and depth of the document with every alias written out, without writing them out.

    Each node's expanded size is computed once (memo by node id), so the
    work is proportional to the composed graph, which the composer already
    bounded. Also refuses an anchor that contains an alias to itself
    (infinite expansion). Returns the distinct mapping nodes, for the
    duplicate-key check.
    """
    # id(node) -> _Size of the node with its aliases written out
    memo: dict[int, _Size] = {}
    in_progress: set[int] = set()
    mappings: list[MappingNode] = []

    def anchor_text(node_id: int) -> str:
        name, node = anchor_of[node_id]
        return f"anchor &{_clip(name, 40)} at line {_line(node)}"

    def culprit(heavy: int | None, node: Node) -> str:
        where = f"the value at line {_line(node)}"
        return f"{anchor_text(heavy)}, repeated in {where}" if heavy is not None else where

    def visit(node: Node, depth: int) -> _Size:
        key = id(node)
        if key in memo:
            known = memo[key]
            if depth + known.height - 1 > MAX_DEPTH:
                raise ConfigError(
                    f"{source}: YAML nested more than {MAX_DEPTH} levels deep once aliases are written out "
                    f"({anchor_text(key) if key in anchor_of else f'line {_line(node)}'}); "
                    "write the values out or remove the aliases."
                )
            return known
        if key in in_progress:
            raise ConfigError(
                f"{source}: {anchor_text(key) if key in anchor_of else f'the value at line {_line(node)}'} "
                "contains an alias to itself, which would make an infinitely deep value; remove that alias."
            )
        if depth > MAX_DEPTH:  # the composer checks this already; kept so this walk stands on its own
            raise ConfigError(
                f"{source}: YAML nested more than {MAX_DEPTH} levels deep at line {_line(node)}; flatten the structure."
            )
        total = _Size(nodes=1, chars=len(node.value) if isinstance(node, ScalarNode) else 0)
        if not isinstance(node, ScalarNode):
            in_progress.add(key)
            if isinstance(node, MappingNode):
                mappings.append(node)
            for child in _children(node):
                total.add(visit(child, depth + 1), memo)
                if total.nodes > MAX_NODES:
                    raise ConfigError(
                        f"{source}: YAML aliases expand to more than {MAX_NODES:,} nodes "
                        f"({culprit(total.heaviest_by_nodes, node)}); write the values out or remove the aliases."
                    )
                if total.chars > MAX_EXPANDED_CHARS:
                    raise ConfigError(
                        f"{source}: YAML aliases expand to more than {MAX_EXPANDED_CHARS:,} characters of text "
                        f"({culprit(total.heaviest_by_chars, node)}); write the values out or remove the aliases."
                    )
            in_progress.discard(key)
        if key in anchor_of:
            # An anchored node outweighs every anchor inside it.
            total.heaviest_by_nodes = total.heaviest_by_chars = key
        memo[key] = total
        return total

    visit(root, 1)
    return mappings


class _Size:
    """Expanded size of one node, and which anchor inside it weighs most (for messages)."""

    __slots__ = ("chars", "heaviest_by_chars", "heaviest_by_nodes", "height", "nodes")

    def __init__(self, nodes: int, chars: int) -> None:
        self.nodes = nodes
        self.chars = chars
        self.height = 1
        self.heaviest_by_nodes: int | None = None
        self.heaviest_by_chars: int | None = None

    def add(self, child: _Size, memo: dict[int, _Size]) -> None:
        self.nodes += child.nodes
        self.chars += child.chars
        self.height = max(self.height, child.height + 1)
        mine, theirs = self.heaviest_by_nodes, child.heaviest_by_nodes
        if theirs is not None and (mine is None or memo[theirs].nodes > memo[mine].nodes):
            self.heaviest_by_nodes = theirs
        mine, theirs = self.heaviest_by_chars, child.heaviest_by_chars
        if theirs is not None and (mine is None or memo[theirs].chars > memo[mine].chars):
            self.heaviest_by_chars = theirs
