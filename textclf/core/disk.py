"""A full disk, recognised whichever library hit it, and reported once: the path, the reason, the space left.

Writes run out of space deep inside many libraries, and each says so in its
own way: Python raises ``OSError`` with ``errno.ENOSPC`` (``EDQUOT`` for a
quota, ``EFBIG`` past a file-size limit such as ``ulimit -f``); torch raises
``RuntimeError("... unexpected pos ...")`` while handling that ``OSError``;
``shutil.copytree`` gathers the failures as *strings* in one ``shutil.Error``;
safetensors and tokenizers (Rust) say "No space left on device (os error
28)"; SQLite says "database or disk is full". :func:`full_disk` looks through
an exception and everything it was raised from or while handling, and
:func:`disk_full_error` turns a match into one :class:`DiskFullError`.

It is used twice over. Code that writes somewhere a user chose (a stage-cache
entry, a checkpoint, ``--output``) wraps the write in :func:`reporting`, so
the message names *that* path and its fix; the CLI passes anything else that
reaches it through :func:`disk_full_error`, so a write nobody wrapped (inside
MLflow, HF datasets, matplotlib) still ends in a message, not a traceback.
Neither place deletes anything: the writers themselves write to temporaries
and rename, so a failed write leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from textclf.core.errors import DiskFullError

REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the filesystem or the file-size limit (ulimit -f)",
}
# How errors that lost their errno word it (lower case).
_WORDINGS = (
    ("no space left on device", errno.ENOSPC),
    ("(os error 28)", errno.ENOSPC),
    ("[errno 28]", errno.ENOSPC),
    ("database or disk is full", errno.ENOSPC),  # SQLite's SQLITE_FULL
    ("disk quota exceeded", errno.EDQUOT),
    ("(os error 122)", errno.EDQUOT),
    ("[errno 122]", errno.EDQUOT),
    ("file too large", errno.EFBIG),
    ("(os error 27)", errno.EFBIG),
    ("[errno 27]", errno.EFBIG),
)


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from (``__cause__``) or while handling (``__context__``), once each."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 64:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]


def full_disk(exc: BaseException) -> tuple[int, str | None] | None:
    """``(errno, file or None)`` when ``exc`` comes from a write that ran out of space, else None."""
    worded = None
    for e in chain(exc):
        if isinstance(e, OSError) and e.errno in REASONS:
            # A copy names (source, destination): the destination is what did not fit.
            return e.errno, e.filename2 or e.filename
        if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list):
            for entry in e.args[0]:  # (src, dst, "why") per file that failed
                code = _worded(str(entry[-1])) if isinstance(entry, tuple) and entry else None
                if code is not None:
                    return code, str(entry[1]) if len(entry) > 2 else None
        if worded is None:
            code = _worded(str(e))
            if code is not None:
                worded = (code, None)
    return worded


def _worded(text: str) -> int | None:
    text = text.lower()
    return next((code for words, code in _WORDINGS if words in text), None)


def free_bytes(path: str | Path) -> int | None:
    """Free space on the filesystem holding ``path`` (its nearest existing parent), or None."""
    p = Path(path).absolute()
    for candidate in (p, *p.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def disk_full_error(
    exc: BaseException,
    path: str | Path | None = None,
    *,
    root: str | Path | None = None,
    what: str = "",
    needed: int | None = None,
    fix: str = "",
    atomic: bool = False,
    free: int | None = None,
) -> DiskFullError | None:
    """The :class:`DiskFullError` for ``exc`` when it is a full disk (None otherwise; a DiskFullError is returned as is).

    ``path`` is what the caller was writing and ``root`` the tree it owns
    (default ``path``): the message names ``path`` unless the failing file is
    known and lies outside ``root``, in which case it names that file.
    ``atomic``: the caller's write leaves nothing half-written, and the message says so.
    ``free``: the free space to report, when the caller knows better than the filesystem (default: ask it).
    """
    if isinstance(exc, DiskFullError):
        return exc
    found = full_disk(exc)
    if found is None:
        return None
    code, failed = found
    where = path
    if failed is not None and (path is None or not _inside(Path(failed), Path(root or path))):
        where, what = failed, ""
    if where is None:
        where = "a file"
    if free is None and where != "a file":
        free = free_bytes(where)
    space = []
    if needed is not None:
        space.append(f"needs about {human(needed)}")
    if free is not None:
        space.append(f"{human(free)} free there")
    detail = f" ({', '.join(space)})" if space else ""
    doing = f" while writing {what}" if what else ""
    advice = fix or "Free some space (or write elsewhere), then re-run the same command."
    kept = "; nothing half-written was kept" if atomic else ""
    return DiskFullError(f"{where}: {REASONS[code]}{doing}{detail}{kept}. {advice}")


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.absolute().is_relative_to(root.absolute())
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def reporting(
    path: str | Path, *, root: str | Path | None = None, what: str = "", needed: int | None = None, fix: str = ""
) -> Iterator[None]:
    """Turn a full disk inside the block into a :class:`DiskFullError` naming ``path`` (see :func:`disk_full_error`).

    For writes that go to a temporary and are renamed into place: the message says nothing half-written was kept.
    """
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        err = disk_full_error(exc, path, root=root, what=what, needed=needed, fix=fix, atomic=True)
        if err is None:
            raise
        raise err from exc


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` into a temporary beside ``path``, then renamed over it.

    A reader (another process) sees the old file or the new one, never half of
    one; a failure removes the temporary and leaves ``path`` as it was. The
    temporary is a plain new file, so the result gets the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
