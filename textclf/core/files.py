"""Reading a user's file safely: refuse what is not a regular file, and never read more than a limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from textclf.core.errors import ConfigError

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_irregular(path: Path, what: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    raise ConfigError(f"{path}: is {kind}, not a {what} file; give the path of a YAML file.")


def _refuse_large(path: Path, what: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ConfigError(
            f"{path}: {what} file is {size:,} bytes, over the {max_bytes:,}-byte limit; "
            f"a {what} file this large is almost certainly the wrong file, check the path."
        )


def read_regular_file(path: Path, what: str, max_bytes: int) -> bytes:
    # stat before opening: opening a FIFO blocks until a writer appears, and
    # opening some devices has side effects.
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file ({exc.strerror or exc}).") from None
    _refuse_irregular(path, what, st.st_mode)
    _refuse_large(path, what, st.st_size, max_bytes)
    # The path can be swapped between stat and open, so open without
    # blocking, check the opened file again, and never read past the limit.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what} file; give the path of a YAML file.") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the {what} file (permission denied); check its permissions.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file ({exc.strerror or exc}).") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        _refuse_irregular(path, what, st.st_mode)
        _refuse_large(path, what, st.st_size, max_bytes)
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the {what} file ({exc.strerror or exc}).") from None
    # The file may have grown after the fstat.
    _refuse_large(path, what, len(data), max_bytes)
    return data
