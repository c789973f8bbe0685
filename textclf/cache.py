"""The content-addressed stage cache.

Every stage output lives in ``<cache>/<stage>/<key>/`` where ``key`` hashes the
upstream keys, the params that stage reads and the textclf version. Variants
that share upstream params therefore share upstream outputs, and a re-run with
nothing changed finds every entry and recomputes nothing.

Writes are atomic: an entry is built in a temporary sibling directory and
renamed into place only when complete, so an interrupted or concurrent run
never sees half an entry. A per-key file lock keeps two processes from
computing the same entry at once (the second waits, then reuses it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = ".textclf"
META = "_entry.json"


def default_cache_dir() -> Path:
    return Path(os.environ.get("TEXTCLF_CACHE_DIR") or DEFAULT_CACHE_DIR)


def stage_key(stage: str, params: dict[str, Any], upstream: list[str] | tuple[str, ...] = ()) -> str:
    from textclf import __version__

    blob = json.dumps({"stage": stage, "params": params, "upstream": list(upstream), "version": __version__}, sort_keys=True, default=str)
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


class StageCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Path | None:
        p = self.path(stage, key)
        return p if (p / META).is_file() else None

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
            record = {"stage": stage, "key": key, "created": time.time(), **(meta or {})}
            (tmp / META).write_text(json.dumps(record, indent=1, default=str))
            if final.exists():  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

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

    def prune(self, *, older_than_days: float | None = None, stage: str | None = None, everything: bool = False) -> tuple[int, int]:
        """Remove entries (and abandoned temporaries); returns (entries removed, bytes freed)."""
        removed = freed = 0
        now = time.time()
        for e in self.entries():
            if stage and e.stage != stage:
                continue
            age_days = (now - float(e.meta.get("created", now))) / 86400
            if everything or (older_than_days is not None and age_days > older_than_days):
                freed += e.size
                shutil.rmtree(e.path, ignore_errors=True)
                removed += 1
        # Temporaries older than an hour belong to dead processes.
        if self.root.is_dir():
            for tmp in self.root.glob("*/.tmp-*"):
                if everything or now - tmp.stat().st_mtime > 3600:
                    shutil.rmtree(tmp, ignore_errors=True)
        return removed, freed


def _remove_dead_temporaries(stage_dir: Path, key: str) -> None:
    """Delete this key's temporaries left by killed processes (their pid is in the name).

    Called under the key's lock, so no live writer of this key can be mid-way.
    """
    if not stage_dir.is_dir():
        return
    for tmp in stage_dir.glob(f".tmp-{key}-*"):
        try:
            pid = int(tmp.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


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
