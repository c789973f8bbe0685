"""The content-addressed stage cache.

Every stage output lives in ``<cache>/<stage>/<key>/`` where ``key`` hashes the
upstream keys, the params that stage reads and the textclf source the stage
runs (:func:`textclf.core.code.code_fingerprint`: its module's import closure,
so an edited install recomputes what the edit touches instead of reusing what
older code produced, and keeps what it does not touch). Variants
that share upstream params therefore share upstream outputs, and a re-run with
nothing changed finds every entry and recomputes nothing.

Writes are atomic: an entry is built in a temporary sibling directory and
renamed into place only when complete, so an interrupted or concurrent run
never sees half an entry. A per-key file lock keeps two processes from
computing the same entry at once (the second waits, then reuses it).

Every entry records the size and hash of each of its files in
``_entry.json`` (:mod:`textclf.core.checksums`); :meth:`StageCache.get`
checks them once per process before handing the entry out, and a damaged
entry (a flipped bit, a truncated file) is removed with a warning, so the
caller recomputes it. Entries written before checksums were recorded have
none and are used as they are: recomputing them all (every trained model)
would cost far more than the damage it could catch.

Entries in use are never pruned. A process that reads or writes an entry
holds a *shared* lock on the entry's use-lock file until the cache object is
closed or the process exits (the kernel drops ``flock`` locks of a dead
process), and ``prune`` removes an entry only when it can take both that lock
and the compute lock exclusively, without waiting. Temporaries of a live
writer (its pid is in their name) and the checkpoint folder of a training
that holds its key's lock are skipped the same way. ``fcntl.flock`` is used
directly rather than the ``filelock`` package because shared (reader) locks
are what make "in use" visible, and ``filelock`` only offers exclusive ones.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf.core import checksums
from textclf.core.code import code_fingerprint, plugin_fingerprint, remember_in
from textclf.core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = ".textclf"
META = "_entry.json"
_EXTRA = "_entry.extra.json"


def default_cache_dir() -> Path:
    return Path(os.environ.get("TEXTCLF_CACHE_DIR") or DEFAULT_CACHE_DIR)


# What a folder we cannot write answers: no permission, a read-only filesystem, a file
# where a folder should be (ENOTDIR; EEXIST from mkdir), a name too long, a link loop.
UNWRITABLE = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
)
_ROOTS: set[Path] = set()  # every cache root this process opened: where an unwritable path is "the cache"


def unwritable_message(root: Path, exc: OSError) -> str:
    where = exc.filename if exc.filename else root
    return (
        f"The stage cache {root} cannot be written ({where}: {exc.strerror or exc}). textclf keeps prepared data, "
        "tokenizers, models and their lock files there, even when everything is cached. Point it at a writable folder: "
        "--cache-dir DIR or TEXTCLF_CACHE_DIR=DIR."
    )


def unwritable_error(exc: BaseException) -> ConfigError | None:
    """A ConfigError naming the cache folder and the fix, when ``exc`` is a write refused inside a cache root (else None)."""
    from textclf.core.disk import chain

    for e in chain(exc):
        if isinstance(e, OSError) and e.errno in UNWRITABLE and e.filename:
            path = Path(os.fsdecode(e.filename)).absolute()
            for root in _ROOTS | {default_cache_dir().absolute()}:
                if path == root or path.is_relative_to(root):
                    return ConfigError(unwritable_message(root, e))
    return None


def stage_key(
    stage: str, params: dict[str, Any], upstream: list[str] | tuple[str, ...] = (), code: str | None = None
) -> str:
    """The key of ``stage`` on ``params`` after ``upstream``: the code part hashes module ``code``'s import closure
    (:func:`textclf.core.code.code_fingerprint`; the whole package when None)."""
    key = {"stage": stage, "params": params, "upstream": list(upstream), "code": code_fingerprint(code)}
    # Registered data sources / formats run where the data is prepared (the driver; workers never see them)
    # and reach every later stage through prepare's key.
    plugins = plugin_fingerprint(data=stage == "prepare")
    if plugins:  # only then: the keys of an install without extensions stay as they were
        key["plugins"] = plugins
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass
class Entry:
    stage: str
    key: str
    path: Path
    meta: dict[str, Any]

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


@dataclass
class PruneResult:
    removed: int = 0
    freed: int = 0  # bytes
    in_use: list[str] = field(default_factory=list)  # "stage/key" entries skipped: a live process uses them


class StageCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        remember_in(self.root / ".code-behaviour.json")  # behaviour hashes of textclf's modules, read instead of parsed
        self._held: dict[tuple[str, str], Any] = {}  # (stage, key) -> open use-lock file (shared lock)
        _ROOTS.add(self.root.absolute())

    def check_writable(self) -> None:
        """Refuse, before any work, a cache folder this process cannot write: a ConfigError naming it and the fix.

        Every run writes there, a fully cached one too (its lock files); a
        failure half-way would leave a run FAILED for a problem known at the start.
        """
        probe = self.root / ".locks" / f".probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.touch()
            probe.unlink()
        except OSError as exc:
            if exc.errno in UNWRITABLE:
                raise ConfigError(unwritable_message(self.root, exc)) from None
            raise

    def __getstate__(self) -> dict[str, Any]:
        # Locks belong to the process that took them: a copy sent to a worker starts with none.
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]
        remember_in(self.root / ".code-behaviour.json")
        self._held = {}

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        """Whether the entry exists (not checked: see :meth:`get`)."""
        return (self.path(stage, key) / META).is_file()

    def get(self, stage: str, key: str) -> Path | None:
        """The entry's folder, checked against its checksums; None when missing or damaged (then removed).

        Callers hold the key's :meth:`lock`, so removing a damaged entry never
        races with a process that is writing it again.
        """
        p = self.path(stage, key)
        if not (p / META).is_file():
            return None
        self.hold(stage, key)
        problem = self._damage(p)
        if problem:
            log.warning("stage-cache entry %s is damaged (%s); removed, it is computed again", p, problem)
            _remove(p)
            return None
        return p

    @staticmethod
    def _damage(p: Path) -> str | None:
        """Why the entry at ``p`` cannot be trusted, or None (checked once per process per entry)."""
        if p / META in _VERIFIED:
            return None
        try:
            files = json.loads((p / META).read_text()).get("files")
        except (OSError, ValueError, AttributeError):
            return f"{META} is unreadable"
        if files is None:  # written before checksums were recorded: used as it is
            return None
        if not isinstance(files, dict):
            return f"{META} has no valid file list"
        problem = checksums.mismatch(p, files)
        if problem is None:
            _VERIFIED.add(p / META)
        return problem

    def hold(self, stage: str, key: str) -> None:
        """Mark the entry in use by this process (a shared lock kept until :meth:`close` or exit)."""
        if (stage, key) in self._held:
            return
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        fh = open(lock_dir / f"{stage}-{key}.use", "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # a prune holds it exclusively right now: wait for it to finish
            fcntl.flock(fh, fcntl.LOCK_SH)
        self._held[(stage, key)] = fh

    def close(self) -> None:
        """Release the shared locks of the entries this object used."""
        for fh in self._held.values():
            fh.close()
        self._held.clear()

    @contextlib.contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{stage}-{key}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def write(self, stage: str, key: str, meta: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a temporary directory; on success it becomes the entry, atomically."""
        final = self.path(stage, key)
        _remove_dead_temporaries(final.parent, key)
        tmp = final.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
            extra = tmp / _EXTRA
            if extra.is_file():  # metadata the computation added (annotate)
                meta = {**(meta or {}), **json.loads(extra.read_text())}
                extra.unlink()
            record = {"stage": stage, "key": key, "created": time.time(), **(meta or {})}
            record["files"] = checksums.record(tmp, skip=(META,))
            (tmp / META).write_text(json.dumps(record, indent=1, default=str))
            if final.exists():  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, final)
                _VERIFIED.add(final / META)  # just hashed from what this process wrote
            self.hold(stage, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def annotate(tmp: Path, meta: dict[str, Any]) -> None:
        """Add ``meta`` to the ``_entry.json`` of the entry being written in ``tmp``."""
        (tmp / _EXTRA).write_text(json.dumps(meta, default=str))

    def remove(self, stage: str, key: str) -> None:
        """Delete an entry (callers hold its lock: a forced recompute replaces it)."""
        p = self.path(stage, key)
        if p.exists():
            _remove(p)

    def scratch(self, stage: str, key: str) -> Path:
        """A per-key working directory that survives interruption (e.g. training checkpoints)."""
        p = self.root / stage / ".work" / key
        p.mkdir(parents=True, exist_ok=True)
        return p

    def entries(self) -> list[Entry]:
        out = []
        if not self.root.is_dir():
            return out
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for d in sorted(stage_dir.iterdir()):
                if d.is_dir() and (d / META).is_file():
                    try:
                        meta = json.loads((d / META).read_text())
                    except (OSError, json.JSONDecodeError):
                        meta = {"corrupt": True}
                    out.append(Entry(stage=stage_dir.name, key=d.name, path=d, meta=meta))
        return out

    def prune(
        self, *, older_than_days: float | None = None, stage: str | None = None, everything: bool = False
    ) -> PruneResult:
        """Remove entries (and temporaries of dead processes); never what a live process uses or writes."""
        result = PruneResult()
        now = time.time()
        for e in self.entries():
            if stage and e.stage != stage:
                continue
            age_days = (now - float(e.meta.get("created", now))) / 86400
            if not (everything or (older_than_days is not None and age_days > older_than_days)):
                continue
            with self._exclusive(e.stage, e.key) as free:
                if not free:
                    result.in_use.append(f"{e.stage}/{e.key}")
                    continue
                size = e.size
                _remove(e.path)
                result.removed += 1
                result.freed += size
        if self.root.is_dir():
            for tmp in self.root.glob("*/.tmp-*"):
                # .tmp-<key>-<pid>-<rand>: a live writer's temporary is never touched.
                if (stage is None or tmp.parent.name == stage) and not _writer_alive(tmp.name):
                    _remove(tmp)
            for work in self.root.glob("*/.work/*"):  # training checkpoints, kept for resuming
                if stage and work.parent.parent.name != stage:
                    continue
                if everything or (
                    older_than_days is not None and (now - work.stat().st_mtime) / 86400 > older_than_days
                ):
                    with self._exclusive(work.parent.parent.name, work.name, use=False) as free:
                        if free:
                            _remove(work)
        return result

    @contextlib.contextmanager
    def _exclusive(self, stage: str, key: str, *, use: bool = True) -> Iterator[bool]:
        """Try, without waiting, to hold the entry's compute lock (and use-lock) exclusively; yields success."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        names = [f"{stage}-{key}.lock"] + ([f"{stage}-{key}.use"] if use else [])
        handles = []
        try:
            for name in names:
                fh = open(lock_dir / name, "a")
                handles.append(fh)
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
            yield True
        finally:
            for fh in handles:
                fh.close()


_VERIFIED = checksums.Verified()  # entries this process has checked (or written)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _writer_alive(name: str) -> bool:
    """Whether the process that named a temporary ``.tmp-<key>-<pid>-<rand>`` is alive (unknown names count as alive)."""
    try:
        pid = int(name.split("-")[2])
    except (IndexError, ValueError):
        return True
    return pid_alive(pid)


def _remove_dead_temporaries(stage_dir: Path, key: str) -> None:
    """Delete this key's temporaries left by killed processes (their pid is in the name).

    Called under the key's lock, so no live writer of this key can be mid-way.
    """
    if stage_dir.is_dir():
        for tmp in stage_dir.glob(f".tmp-{key}-*"):
            if not _writer_alive(tmp.name):
                _remove(tmp)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (ours always does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
