"""Size + hash of every file of a folder, recorded when it is written and checked before it is used again.

A stage-cache entry or a downloaded model folder is written once and read
many times, possibly much later and by another process; a bit flipped on
disk, a file truncated by a crash of the filesystem or by hand, would
otherwise be used silently or fail deep inside a loader. The record is
``{relative path: [size, blake2b-128 hex]}``; files are hashed in 1 MiB
blocks, so memory stays flat whatever their size.

Checking reads every byte, so callers check a folder once per process (see
:class:`Verified`), not on every use.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_BLOCK = 1 << 20


def file_digest(path: str | Path, new=lambda: hashlib.blake2b(digest_size=16)) -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks (``new``: the hash constructor, e.g. ``hashlib.sha256``)."""
    h = new()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def record(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, list]:
    """``{relative path: [size, digest]}`` for every regular file under ``root`` (names in ``skip`` excluded)."""
    out: dict[str, list] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel in skip or p.is_symlink() or not p.is_file():
            continue
        out[rel] = [p.stat().st_size, file_digest(p)]
    return out


def mismatch(root: Path, files: dict[str, list]) -> str | None:
    """The first file of ``files`` that is missing or differs under ``root`` (a short reason), or None."""
    # Sizes first: a truncated or missing file is found without reading anything.
    for rel, (size, _) in files.items():
        p = root / rel
        try:
            actual = p.stat().st_size
        except OSError:
            return f"{rel} is missing"
        if actual != size:
            return f"{rel} has {actual:,} bytes, {size:,} were written"
    for rel, (_, digest) in files.items():
        try:
            if file_digest(root / rel) != digest:
                return f"{rel} does not match its checksum"
        except OSError as exc:
            return f"{rel} cannot be read ({exc.strerror or exc})"
    return None


class Verified:
    """Folders already checked by this process, keyed by their record file's identity.

    The key holds the record file's inode and mtime, so an entry that was
    removed and written again (by another process) is checked again.
    """

    def __init__(self) -> None:
        self._seen: set[tuple] = set()

    @staticmethod
    def _key(record_file: Path) -> tuple | None:
        try:
            st = os.stat(record_file)
        except OSError:
            return None
        return (str(record_file.absolute()), st.st_ino, st.st_mtime_ns, st.st_size)

    def __contains__(self, record_file: Path) -> bool:
        return self._key(record_file) in self._seen

    def add(self, record_file: Path) -> None:
        key = self._key(record_file)
        if key is not None:
            self._seen.add(key)
