"""One kind of registry for every extension point: encoders, metrics, statistical tests.

A :class:`Registry` is a ``{name: entry}`` dict that also holds what
installed packages declare under its entry-point group (``textclf.encoders``,
``textclf.metrics``, ``textclf.stat_tests``): a plugin's ``pyproject.toml``
names an object, e.g. ``[project.entry-points."textclf.metrics"]
balanced_accuracy = "my_pkg.metrics:BALANCED"``, and the CLI finds it with no
import in the user's code. The group is read on the first lookup, not at
import, so importing a registry stays as cheap as importing textclf.
"""

from __future__ import annotations

import functools
import sys
from typing import Any


@functools.lru_cache(maxsize=1)
def _entry_points(path: tuple[str, ...]):
    """Every installed entry point, read once for all groups (a scan of the installed packages, ~0.1 s)."""
    from importlib.metadata import entry_points

    return entry_points()


class Registry(dict):
    """``{name: entry}``, with the entries of the entry-point group ``group`` loaded on first read."""

    by_group: dict[str, Registry] = {}

    def __init__(self, group: str, kind: type, entries: dict[str, Any]):
        super().__init__(entries)
        self.group, self.kind, self.loaded, self.added = group, kind, False, {}
        Registry.by_group[group] = self

    def register(self, name: str, entry: Any) -> None:
        """Add ``entry`` under ``name`` (a ValueError names what is wrong with either)."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"a {self.group} name must be a non-empty string without surrounding spaces, got {name!r}")
        if not isinstance(entry, self.kind):
            raise ValueError(f"{self.group}[{name!r}] must be a {self.kind.__name__}, got {type(entry).__name__}")
        self.load()
        dict.__setitem__(self, name, entry)
        self.added[name] = entry

    def load(self) -> None:
        """Read the entry-point group once; an entry that fails to load or is of the wrong kind is a ConfigError."""
        if self.loaded:
            return
        self.loaded = True
        from textclf.core.errors import ConfigError

        for ep in _entry_points(tuple(sys.path)).select(group=self.group):
            if dict.__contains__(self, ep.name):  # a registration call (or a built-in) wins over an installed plugin
                continue
            where = f"entry point {ep.name} = {ep.value} (group {self.group}, package {getattr(ep.dist, 'name', '?')})"
            try:
                entry = ep.load()
            except Exception as exc:
                raise ConfigError(f"{where} could not be loaded: {exc}. Fix or uninstall that package.") from exc
            if not isinstance(entry, self.kind):
                raise ConfigError(
                    f"{where} is a {type(entry).__name__}, not a {self.kind.__name__}. Point it at a {self.kind.__name__}."
                )
            dict.__setitem__(self, ep.name, entry)

    # Every read goes through load() first.
    def __getitem__(self, key):
        self.load()
        return dict.__getitem__(self, key)

    def __contains__(self, key):
        self.load()
        return dict.__contains__(self, key)

    def __iter__(self):
        self.load()
        return dict.__iter__(self)

    def __len__(self):
        self.load()
        return dict.__len__(self)

    def get(self, key, default=None):
        self.load()
        return dict.get(self, key, default)

    def keys(self):
        self.load()
        return dict.keys(self)

    def values(self):
        self.load()
        return dict.values(self)

    def items(self):
        self.load()
        return dict.items(self)


def registered() -> list[tuple[str, str, dict[str, Any]]]:
    """What registration calls added, as (module defining the entry kind, group, entries), to send to workers."""
    import pickle

    from textclf.core.errors import ConfigError

    for r in Registry.by_group.values():
        for name, entry in r.added.items():
            try:
                pickle.dumps(entry)
            except Exception as exc:
                raise ConfigError(
                    f"{r.group} entry {name!r} cannot be sent to worker processes ({exc}). Define its functions at "
                    "the top level of an importable module (no lambdas or local functions), or run with --jobs 1."
                ) from None
    return [(r.kind.__module__, g, dict(r.added)) for g, r in Registry.by_group.items() if r.added]


def register_again(entries: list[tuple[str, str, dict[str, Any]]]) -> None:
    """In a worker: register what :func:`registered` returned in the driver."""
    import importlib

    for module, group, added in entries:
        importlib.import_module(module)
        for name, entry in added.items():
            Registry.by_group[group].register(name, entry)
