"""Which of textclf's own source a computation runs: the code part of every cache key.

A cached result must be recomputed when the code that produced it changes,
and only then. Hashing the whole package (:func:`code_fingerprint` with no
module) is safe but coarse: a fix to the report, the CLI or MLflow logging
would invalidate every trained model, and a user who upgrades for such a fix
would retrain everything. :func:`code_fingerprint` with a module hashes only
that module's **import closure** inside textclf: the module, every textclf
module it imports (at the top or inside a function, since a function may run),
transitively, and the ``__init__`` of each package on the way (whose own
top-level imports run on import; the lazy imports inside its functions run only
when those are called, and a module that calls one imports that package itself).

Why the closure is enough: the package has no dynamic imports (no
``importlib.import_module``, no relative imports), so a computation can only
run textclf code it imports by name; and a stage's inputs are its spec and its
upstream stages' keys, each hashing its own code. The one way in for other
code is an extension (an encoder, metric or statistical test registered by a
call or declared as a ``textclf.*`` entry point): :func:`plugin_fingerprint`
hashes the behaviour of every package that defines one, and the cache keys
include it whenever there is any, so editing a plug-in recomputes what it ran.
The import-linter layers keep the closures small (a training stage never
imports the report or the CLI). ``tests/test_code_identity.py`` checks the
graph against Python's own parser and that an edit recomputes exactly the
stages whose code it touches.

What is hashed is each module's **behaviour**, not its bytes: the syntax tree
with docstrings dropped (:func:`behaviour_of`), so a comment, a docstring or a
reformatting keeps every cached model while a changed constant, name or
statement recomputes what runs it (HF datasets strips comments from a module's
source before hashing it for the same reason). Only the modules of the
closure being keyed are parsed, once per process.

The imports are found with a regular expression over the raw source
(milliseconds for the package, where parsing every file would cost a few
tenths of a second in each process that computes a key).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from textclf.core.disk import write_atomically

PACKAGE = Path(__file__).resolve().parents[1]  # textclf/ (this is textclf/core/code.py)
ROOT = PACKAGE.name

# `import textclf.x.y` and `from textclf.x import a, b` / `from textclf.x import (a,\n b)`; group 1 is the
# indentation (empty: a module-level import), then the imported module, then the imported names.
_IMPORT = re.compile(
    rb"^([ \t]*)(?:from[ \t]+(" + ROOT.encode() + rb"(?:\.\w+)*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)"
    rb"|import[ \t]+(" + ROOT.encode() + rb"(?:\.\w+)*))",
    re.M,
)


@functools.lru_cache(maxsize=1)
def _modules() -> dict[str, bytes]:
    """Every module of the package: dotted name -> source bytes."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_bytes()
    return out


def imports_of(source: bytes, modules: set[str] | dict[str, bytes]) -> tuple[set[str], set[str]]:
    """(every textclf module ``source`` imports, those it imports at module level), as dotted names.

    ``from textclf.models import folder`` imports ``textclf.models.folder`` when
    that is a module, besides the package itself.
    """
    every, top = set(), set()
    for indent, module, names, plain in _IMPORT.findall(source):
        found = {plain.decode()} if plain else {module.decode()}
        if module:
            for name in re.findall(rb"\w+", names.split(b"#")[0] if not names.startswith(b"(") else names):
                sub = f"{module.decode()}.{name.decode()}"
                if sub in modules:
                    found.add(sub)
        every |= found
        if not indent:
            top |= found
    return every, top


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, tuple[set[str], set[str]]]:
    modules = _modules()
    return {name: imports_of(src, modules) for name, src in modules.items()}


@functools.cache
def import_closure(module: str) -> frozenset[str]:
    """``module`` and every textclf module it can run, by name (see the module docstring)."""
    modules, graph = _modules(), _graph()
    if module not in modules:
        raise KeyError(f"{module!r} is not a module of {ROOT}")
    seen: dict[str, bool] = {}  # name -> reached as an import (True) or only as a parent package (False)
    stack = [(module, True)]
    while stack:
        name, imported = stack.pop()
        if name not in modules or (name in seen and (seen[name] or not imported)):
            continue  # unknown, or reached before at least as fully
        seen[name] = imported
        every, top = graph[name]
        stack.extend((dep, True) for dep in (every if imported else top))
        parts = name.split(".")
        stack.extend((".".join(parts[:i]), False) for i in range(1, len(parts)))
    return frozenset(seen)


def behaviour_of(source: bytes) -> bytes:
    """What of a module's source can change what it does: its syntax tree without docstrings.

    ``ast.dump`` leaves out line and column numbers, so comments, blank lines,
    docstrings and formatting all vanish; every statement, name, constant and
    annotation (pydantic reads annotations) stays. A file that does not parse is
    taken as it is.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False).encode()


_memo: dict = {"file": None, "known": None, "new": {}}  # behaviour hashes remembered between processes (remember_in)


def remember_in(path: str | Path) -> None:
    """Keep behaviour hashes in ``path`` (the stage cache's ``.code-behaviour.json``), one JSON file.

    Parsing the whole package costs a few tenths of a second, which every process
    that computes a key would pay again; the file maps each module source's raw
    hash to its behaviour hash, so an unchanged module is read, not parsed. One
    small file, not one per module: a cache on a nearly full disk loses little.
    """
    if _memo["file"] != Path(path):
        _memo.update(file=Path(path), known=None, new={})


def _remembered() -> dict[str, str]:
    if _memo["known"] is None:
        try:
            known = json.loads(_memo["file"].read_text()) if _memo["file"] is not None else {}
            _memo["known"] = known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            _memo["known"] = {}
    return _memo["known"]


def _save_remembered() -> None:
    """Write the hashes this process computed, merged with the file's (any writer's content is right)."""
    path, new = _memo["file"], _memo["new"]
    if path is None or not new:
        return
    _memo["known"] = None  # re-read: another process may have added entries
    merged = {**_remembered(), **new}
    try:  # a read-only or full cache only loses the shortcut
        write_atomically(path, lambda tmp: tmp.write_text(json.dumps(merged)))
        _memo["known"], _memo["new"] = merged, {}
    except OSError:
        pass


@functools.cache
def _behaviour_hash(name: str) -> bytes:
    source = _modules()[name]
    raw = hashlib.sha256(source).hexdigest()
    known = _remembered().get(raw)
    if isinstance(known, str) and len(known) == 64:
        return bytes.fromhex(known)
    digest = hashlib.sha256(behaviour_of(source)).digest()
    _memo["new"][raw] = digest.hex()
    return digest


@functools.cache
def code_fingerprint(module: str | None = None) -> str:
    """A hash of the behaviour of ``module``'s import closure (module name + :func:`behaviour_of`); of the whole package when None.

    Module names, not file paths, keep it equal for the same code installed elsewhere
    (another node of a cluster, another virtual environment).
    """
    modules = _modules()
    names = sorted(modules) if module is None else sorted(import_closure(module))
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + _behaviour_hash(name) + b"\0")
    _save_remembered()
    return h.hexdigest()[:20]


def _defining_modules(entry: Any) -> set[str]:
    """Modules outside textclf whose code a registered entry runs: its class and the callables it holds."""
    import dataclasses
    import functools as ft

    values = [entry] + (
        [getattr(entry, f.name) for f in dataclasses.fields(entry)] if dataclasses.is_dataclass(entry) else []
    )
    found = set()
    for value in values:
        while isinstance(value, ft.partial):
            value = value.func
        module = getattr(value, "__module__", None) if callable(value) else type(value).__module__
        if isinstance(module, str) and module.split(".")[0] not in (ROOT, "builtins"):
            found.add(module)
    return found


def _package_files(module: str) -> list[Path]:
    """The source files of ``module``'s top-level package (a helper module it imports changes what it does too)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(
            p for d in spec.submodule_search_locations for p in Path(d).rglob("*.py") if "__pycache__" not in p.parts
        )
    return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []


_noted: set[str] = set()  # modules of extensions registered outside a Registry (data sources, file formats)


def note_extension(entry: Any) -> None:
    """Count ``entry``'s code (a registered data source or file format) in :func:`plugin_fingerprint`."""
    _noted.update(_defining_modules(entry))


def plugin_fingerprint(*, data: bool = False) -> str:
    """A hash of the behaviour of the code behind every extension from outside textclf; "" when there is none.

    Entry points in the ``textclf.*`` groups are found without importing them (each names its module), and
    what registration calls added to the registries in this process (sent on to pool workers) is traced to
    its modules. ``data``: also the data sources and file formats registered by a call, which only the
    process that prepares the data needs (their effect reaches later stages through that stage's key).
    """
    from textclf.core.registry import Registry, _entry_points

    eps = _entry_points(tuple(sys.path))
    groups = [g for g in eps.groups if g.startswith(f"{ROOT}.")]
    modules = {ep.value.split(":")[0].strip() for g in groups for ep in eps.select(group=g)}
    if data:
        modules |= _noted
    for registry in Registry.by_group.values():
        for entry in registry.added.values():
            modules |= _defining_modules(entry)
    if not modules:
        return ""
    h = hashlib.sha256()
    for path in sorted({p for m in modules for p in _package_files(m)}):
        try:
            h.update(str(path).encode() + b"\0" + hashlib.sha256(behaviour_of(path.read_bytes())).digest())
        except OSError:
            h.update(str(path).encode() + b"\0unreadable")
    return h.hexdigest()[:20]
