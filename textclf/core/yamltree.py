"""What a loaded YAML document must be: no duplicate keys in any mapping, and a tree of independent values."""

from __future__ import annotations

import datetime
from typing import Any

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode

from textclf.core.bounded import short_repr
from textclf.core.errors import ConfigError

MERGE_TAG = "tag:yaml.org,2002:merge"


def line_of(node_or_mark: Any) -> int:
    """1-based line of a YAML node, event or mark."""
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1


def check_duplicate_keys(mappings: list[MappingNode], source: str) -> None:
    """Refuse two equal keys written in one mapping (YAML would keep only the last).

    Keys are compared after YAML typing with Python dict equality, as the
    loaded dict would compare them (``1``, ``1.0`` and ``true`` are one key).
    Runs on the composed graph before merges are applied, so a key that
    overrides a merged ``<<`` key is not a duplicate. Non-scalar keys are
    left to the constructor, which refuses them as unhashable.
    """
    typer = SafeConstructor()
    for mapping in mappings:
        seen: dict[Any, ScalarNode] = {}
        for key_node, _value in mapping.value:
            if not isinstance(key_node, ScalarNode):
                continue
            if key_node.tag == MERGE_TAG:
                typed: Any = MERGE_TAG
            else:
                typed = typer.construct_object(key_node)
                try:
                    hash(typed)
                except TypeError:
                    continue
            first = seen.get(typed)
            if first is None:
                seen[typed] = key_node
                continue
            lines = f"at lines {line_of(first)} and {line_of(key_node)}"
            if typed == MERGE_TAG:
                raise ConfigError(
                    f"{source}: duplicate merge key '<<' {lines}; a key may appear only once in a mapping, "
                    "so list the merged mappings in one: '<<: [*first, *second]'."
                )
            same = (
                ""
                if first.value == key_node.value
                else (f", written {short_repr(key_node.value, 60)} the second time, which YAML reads as the same key")
            )
            raise ConfigError(
                f"{source}: duplicate key {short_repr(first.value, 80)} {lines} "
                f"(YAML keeps only the last{same}); merge the two into one."
            )


_IMMUTABLE_LEAVES = (str, bytes, int, float, bool, type(None), datetime.date, datetime.time)


def as_tree(value: Any) -> Any:
    """Copy lists, dicts and sets (and tuples holding them) without sharing.

    ``copy.deepcopy`` would keep shared objects shared, which is exactly what
    this undoes. Recursion depth is bounded by MAX_DEPTH and total work by
    MAX_NODES, both checked on the node graph before construction.
    """
    if isinstance(value, _IMMUTABLE_LEAVES):
        return value
    if isinstance(value, dict):
        return {key: as_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_tree(item) for item in value]
    if isinstance(value, tuple):  # from !!omap / !!pairs
        return tuple(as_tree(item) for item in value)
    if isinstance(value, set):  # items are hashable scalars
        return set(value)
    return value
