"""Where data comes from: two registries, :data:`SOURCES` (the kinds of ``data.source``) and :data:`FORMATS` (file types).

Each kind (``file``, ``hf``, ``builtin``, and any registered with
:func:`register_source` or the ``textclf.sources`` entry-point group) says, in
one :class:`Source` entry:

* how to recognise a spec (``reviews.csv``, ``hf:rotten_tomatoes``, ``builtin:reviews``);
* how to read it into ``{split: datasets.Dataset}`` (Arrow columns, never
  Python lists of rows);
* its *identity* for the prepare stage's cache key: a local file by the hash of
  its content (re-hashed only when its size, mtime, ctime or inode change), so
  a file edited in place is never served from the cache;
* the MLflow dataset source that records where a split came from.

``file`` is the default: it is tried after every other kind, whatever the
order of registration, so a new kind never has to be placed before it.

:func:`read_file` is the one reader of local files: training, ``data inspect``
and the inputs of ``predict`` / ``embed`` all read through it, so a format
registered with :func:`register_format` works everywhere.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from textclf.core.checksums import file_digest
from textclf.core.code import note_extension
from textclf.core.disk import write_atomically
from textclf.core.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileFormat:
    """How files of one extension are read.

    ``reader`` is one of :data:`READERS` (``csv``, ``json``, ``parquet``;
    ``options`` are its keyword arguments) or a function ``path ->
    pyarrow.Table | list[dict]``.
    """

    reader: str | Callable[[Path], Any]
    options: dict[str, Any] = field(default_factory=dict)


# An empty CSV cell is missing (a label or text to fix); "NA", "null" and friends stay strings.
_CSV = {"keep_default_na": False, "na_values": [""]}
FORMATS: dict[str, FileFormat] = {
    ".csv": FileFormat("csv", {**_CSV, "delimiter": ","}),
    ".tsv": FileFormat("csv", {**_CSV, "delimiter": "\t"}),
    ".jsonl": FileFormat("json"),
    ".json": FileFormat("json"),
    ".parquet": FileFormat("parquet"),
}


def register_format(suffix: str, reader: str | Callable[[Path], Any], **options: Any) -> FileFormat:
    """Read files ending in ``suffix`` (``".psv"``) with ``reader`` (see :class:`FileFormat`), for every command."""
    if isinstance(reader, str) and reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}: use one of {', '.join(READERS)} or a function path -> table.")
    fmt = FORMATS[suffix.lower()] = FileFormat(reader, options)
    note_extension(fmt)  # its reader's code goes into the cache keys
    return fmt


def _cache_dir(cache_dir: str | Path | None) -> str:
    return str(Path(cache_dir or os.environ.get("TEXTCLF_CACHE_DIR", ".textclf")) / "datasets")


def check_utf8(path: Path, chunk_size: int = 1 << 20) -> None:
    """Raise DataError naming the byte offset of the first undecodable byte.

    Done up front because the CSV/JSON readers report decoding failures deep
    inside their own stack, without the offset a user needs to fix the file.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    line = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                pos = offset + exc.start
                line += chunk[: exc.start].count(b"\n")
                raise DataError(
                    f"{path}: not valid UTF-8 at byte offset {pos} (line {line}): byte "
                    f"{chunk[exc.start : exc.start + 1]!r}. Re-save the file as UTF-8, e.g. "
                    f"`iconv -f latin1 -t utf-8 {path.name} > fixed.{path.suffix.lstrip('.')}`."
                ) from None
            offset += len(chunk)
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(f"{path}: file ends in the middle of a UTF-8 character (byte offset {offset}).") from None


def _read_csv(p: Path, strings: bool = False, **options: Any) -> pa.Table:
    import warnings

    import pandas as pd

    if strings:  # every cell as written: no type inference, an empty cell is ""
        options.update(dtype=object, keep_default_na=False, na_values=None)
    # As the ``datasets`` csv builder reads (pandas, then Arrow): the same types and messages as before. But a first
    # row with more fields than the header (an unquoted comma in a text) would silently become pandas' index and
    # shift every column; index_col=False makes pandas say so, and the line is named here.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Length of header or names does not match", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(p, index_col=False, **options)
        except pd.errors.ParserWarning:
            raise ValueError(_longer_than_header(p, options.get("delimiter", ","))) from None
    return pa.Table.from_pandas(frame)


def _longer_than_header(p: Path, delimiter: str) -> str:
    """Where a row of ``p`` first holds more fields than its header, in pandas' words for the other rows."""
    import csv

    with open(p, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh, delimiter=delimiter)
        header = next(rows, [])
        for row in rows:
            if len(row) > len(header):
                return f"Expected {len(header)} fields in line {rows.line_num}, saw {len(row)}"
    return f"Expected {len(header)} fields per line, as in the header; a line holds more"


def _read_json(p: Path, strings: bool = False) -> pa.Table:
    """JSON Lines, or one JSON array of objects (or of texts: a ``text`` column), read by ``pyarrow.json``."""
    import io

    import pyarrow.json as paj

    data = p.read_bytes().removeprefix(codecs.BOM_UTF8)
    if data.lstrip().startswith(b"["):
        items = json.loads(data)
        items = [x if isinstance(x, dict) else {"text": x} for x in items]
        data = "\n".join(json.dumps(x) for x in items).encode()
    block = 1 << 20
    while True:
        try:
            return paj.read_json(io.BytesIO(data), read_options=paj.ReadOptions(block_size=block))
        except pa.ArrowInvalid as exc:
            if "straddling" in str(exc) and block < len(data):
                block *= 4  # a record longer than a block: read in larger blocks
                continue
            if ") changed from" not in str(exc) or "changed from object" in str(exc):
                raise
            try:
                return _mixed_json_lines(data)
            except ValueError:
                raise exc from None


def _mixed_json_lines(data: bytes) -> pa.Table:
    """JSON Lines whose field holds values of several types (``1`` on one line, ``"pos"`` on the next).

    Such a field is read as strings, as a CSV cell would be (``1`` -> ``"1"``),
    so the label checks see the mix and name it.
    """
    rows = [json.loads(line) for line in data.splitlines() if line.strip()]
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError("not every line is an object")
    columns: dict[str, list] = {}
    for r in rows:
        for k in r:
            columns.setdefault(k, [])
    for k, values in columns.items():
        values.extend(r.get(k) for r in rows)
        if len({type(v) for v in values if v is not None}) > 1:
            values[:] = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
    return pa.table(columns)


def _read_parquet(p: Path, strings: bool = False) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(p)


READERS: dict[str, Callable[..., pa.Table]] = {"csv": _read_csv, "json": _read_json, "parquet": _read_parquet}


def read_file(path: str | Path, *, strings: bool = False) -> pa.Table:
    """Read one local file into a ``pyarrow.Table``, with pandas / pyarrow only.

    Light on purpose: ``predict`` / ``embed`` read their inputs here and must
    not pay for importing ``datasets``; training wraps the table with
    :func:`as_dataset`. ``strings`` reads every CSV cell as written (``007``
    stays ``007``, an empty cell is ``""``): ``predict`` / ``embed`` pass their
    input's columns through unchanged, where training infers types and treats
    an empty cell as missing.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"Data file not found: {p}. Check the path (relative paths are resolved from {Path.cwd()}).")
    if p.is_dir():
        raise DataError(f"{p} is a directory; name a data file.")
    if not p.is_file():
        raise DataError(f"{p} is {_file_kind(p)}, not a regular file; name a data file (copy the data into one).")
    if not os.access(p, os.R_OK):
        raise DataError(f"{p}: permission denied. Make the file readable (chmod +r).")
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise DataError(f"{p}: unsupported file type {p.suffix!r}. Use one of {', '.join(FORMATS)}.")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: the file is empty. Expected a header and at least one row.")
    if fmt.reader in ("csv", "json"):
        check_utf8(p)
    try:
        if callable(fmt.reader):
            rows = fmt.reader(p)
            table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
        else:
            table = READERS[fmt.reader](p, strings=strings, **fmt.options)
    except DataError:
        raise
    except Exception as exc:  # name the file and the cause
        msg = str(exc)
        if "No columns to parse" in msg or isinstance(exc, pa.ArrowInvalid) and "Empty" in msg:
            raise DataError(
                f"{p}: no header or rows could be read. Expected a header line such as 'text,label'."
            ) from None
        hint = ""
        if fmt.reader == "csv" and "Expected" in msg and "fields" in msg:
            sep = {",": "comma", "\t": "tab"}.get(fmt.options.get("delimiter", ","), repr(fmt.options.get("delimiter")))
            hint = (
                f" Rows have different numbers of fields: is the file {sep}-separated (as its extension says)? "
                f"Fields that contain the delimiter must be quoted."
            )
        if fmt.reader == "json" and "changed from object" in msg:
            hint = (
                ' Each line must be a JSON object such as {"text": "...", "label": "..."}'
                " (texts alone, one a line, go in a .txt file for predict / embed)."
            )
        what = fmt.reader.upper() if isinstance(fmt.reader, str) else f"{p.suffix} ({fmt.reader.__name__})"
        raise DataError(f"{p}: could not be parsed as {what}: {msg}.{hint}") from None
    if table.num_rows == 0:
        if fmt.reader == "csv":  # the header line as written
            with open(p, encoding="utf-8", errors="replace") as fh:
                header = fh.readline().strip()
            raise DataError(f"{p}: the file has a header ({header}) but no rows.")
        if table.num_columns == 0:
            raise DataError(f"{p}: the file holds no rows.")
        raise DataError(f"{p}: the file has a header ({', '.join(table.column_names)}) but no rows.")
    return table


def as_dataset(table: pa.Table):
    """An in-memory ``datasets.Dataset`` over ``table`` without hashing its content.

    ``datasets`` otherwise fingerprints a new in-memory dataset by serialising
    the whole table, a transient copy several times the data
    (docs/benchmarks.md, "Building in-memory datasets"). textclf keys its
    caches on its own content fingerprints, so the library's fingerprint only
    has to be unique.
    """
    import uuid

    import datasets
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(table), fingerprint=uuid.uuid4().hex[:16])


def _hub_offline() -> bool:
    """True when offline mode is on (HF_HUB_OFFLINE=1) or the hub cannot be reached within a few seconds.

    Probing first matters: without it, ``load_dataset`` on a machine without
    network retries for about half a minute before giving up.
    """
    import socket
    from urllib.parse import urlparse

    import datasets
    from huggingface_hub import constants

    if datasets.config.HF_HUB_OFFLINE or constants.HF_HUB_OFFLINE:
        return True
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):  # set after import
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=3).close()
    except OSError:
        return True
    return False


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        name = type(e).__name__
        if isinstance(e, ConnectionError) or name in (
            "OfflineModeIsEnabled",
            "LocalEntryNotFoundError",
            "ConnectError",
            "ConnectTimeout",
        ):
            return True
        e = e.__cause__ or e.__context__
    return False


def read_hub(spec: str, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """``hf:NAME[:CONFIG]`` -> {split: Dataset}. Raises a DataError when the hub is unreachable.

    A local dataset folder (``hf:path/to/dir``) is read without touching the network.
    """
    import datasets
    from huggingface_hub import constants

    name, _, config = spec.partition(":")
    offline = not Path(name).is_dir() and _hub_offline()
    saved = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    try:
        if offline:  # still serve a dataset that is already in the local cache, without retries
            datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
        dd = datasets.load_dataset(name, config or None, cache_dir=_cache_dir(cache_dir))
    except Exception as exc:
        text = f"{exc.__class__.__name__}: {exc}"
        if offline or _is_connection_error(exc):
            reason = "the Hugging Face Hub is unreachable from this machine (no network, or HF_HUB_OFFLINE=1) and the dataset is not in the local cache"
        else:
            reason = f"loading failed ({text.splitlines()[0][:300]})"
        call = f"'{name}'" + (f", '{config}'" if config else "")
        raise DataError(
            f"Cannot load hf:{spec}: {reason}. Use a local file instead: where the hub is reachable, save each split "
            f"(e.g. `datasets.load_dataset({call})['train'].to_csv('train.csv')`), copy the files here, then use "
            f"--set data.train=train.csv --set data.validation=validation.csv --set data.test=test.csv "
            f"(or one file: --set data.source=train.csv)."
        ) from None
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    aliases = {"valid": "validation", "dev": "validation", "val": "validation"}
    return {aliases.get(k, k): v for k, v in dd.items()}


def read_builtin(name: str, seed: int, options: dict[str, Any], cache_dir: str | Path | None = None):
    """Generate a built-in corpus and store it as Parquet so it is file-backed (and map-cacheable)."""
    import datasets

    from textclf.core.code import code_fingerprint
    from textclf.data import corpora

    # The generators are code: an edited one must not reuse a corpus the old one wrote (they are in this module's imports).
    key = hashlib.sha256(
        json.dumps(
            {"name": name, "seed": seed, "options": options, "code": code_fingerprint(__name__)},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    target = Path(_cache_dir(cache_dir)) / "builtin" / f"{name}-{key}.parquet"
    if not target.exists():
        rows = corpora.generate(name, seed=seed, **options)
        import pyarrow.parquet as pq

        # text, label and any extra columns (e.g. listops depth, for slices); a concurrent run never sees half a file
        write_atomically(target, lambda tmp: pq.write_table(pa.table(rows), tmp))
    return datasets.load_dataset(
        "parquet", data_files={"data": str(target)}, split="data", cache_dir=_cache_dir(cache_dir)
    )


def _file_kind(p: Path) -> str:
    mode = p.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


# --------------------------------------------------------------------------- identity of local files

_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns, ctime_ns, inode) -> sha256, for this process


def file_sha256(path: str | Path, cache_root: str | Path | None = None) -> str:
    """Content hash of a local file, memoised on its stat.

    The memo key holds ``st_ctime_ns``, which no user tool can set back: a file
    rewritten with its size and mtime restored still gets a new ctime, so it is
    hashed again. A touched but unchanged file is hashed again and keeps its
    hash. With ``cache_root`` the memo is also kept on disk, so a new process
    does not re-read an unchanged large file.
    """
    p = Path(path).resolve()
    st = p.stat()
    memo = (str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if memo in _HASHES:
        return _HASHES[memo]
    disk = (
        Path(cache_root) / ".file-hashes" / (hashlib.sha256(str(p).encode()).hexdigest()[:24] + ".json")
        if cache_root
        else None
    )
    if disk is not None and disk.is_file():
        try:
            saved = json.loads(disk.read_text())
            if saved.get("stat") == list(memo):
                _HASHES[memo] = saved["sha256"]
                return saved["sha256"]
        except (OSError, ValueError, AttributeError):
            pass  # a damaged memo only costs a re-hash
    digest = file_digest(p, hashlib.sha256)
    _HASHES[memo] = digest
    if disk is not None:
        try:
            write_atomically(disk, lambda tmp: tmp.write_text(json.dumps({"stat": list(memo), "sha256": digest})))
        except OSError:
            pass
    return digest


def _file_identity(spec: str, cache_root: str | Path | None) -> dict[str, Any]:
    p = Path(spec)
    if not p.is_file():
        return {"path": str(p)}  # reading it raises the clear error
    return {"path": str(p.resolve()), "sha256": file_sha256(p, cache_root)}


# --------------------------------------------------------------------------- MLflow dataset sources


def _file_dataset_source(spec: str, split: str):
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return CodeDatasetSource(tags={"textclf.file": str(Path(spec).resolve())})


def _hub_dataset_source(spec: str, split: str):
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    name, _, config = spec[3:].partition(":")
    return HuggingFaceDatasetSource(path=name, config_name=config or None, split=split or None)


# --------------------------------------------------------------------------- the registry


def _code_dataset_source(spec: str, split: str):
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return CodeDatasetSource(tags={"textclf.source": spec})


@dataclass(frozen=True)
class Source:
    """One kind of ``data.source``."""

    name: str
    matches: Callable[[str], bool]
    # (spec, data config, cache dir) -> {split: Dataset}; a source without a split structure returns {"train": ...}
    read: Callable[[str, Any, Any], dict[str, Any]]
    # (spec, cache root) -> what the prepare key holds. The default, the spec itself, suits a source whose
    # data never changes under one spec; give the content's version or hash where it can.
    identity: Callable[[str, Any], dict[str, Any]] = lambda spec, root: {"source": spec}
    mlflow_source: Callable[[str, str], Any] = _code_dataset_source  # (spec, split) -> mlflow DatasetSource


DEFAULT = "file"  # a spec no other kind matches is a path: tried last, whatever the order of registration

SOURCES: dict[str, Source] = {
    "hf": Source(
        "hf",
        lambda s: s.startswith("hf:"),
        lambda s, cfg, cache: read_hub(s[3:], cache),
        lambda s, root: {"hf": s},
        _hub_dataset_source,
    ),
    "builtin": Source(
        "builtin",
        lambda s: s.startswith("builtin:"),
        lambda s, cfg, cache: {"train": read_builtin(s[8:], cfg.split_seed, dict(cfg.options), cache)},
        lambda s, root: {"builtin": s},
    ),
    DEFAULT: Source(
        DEFAULT,
        lambda s: True,
        lambda s, cfg, cache: {"train": as_dataset(read_file(s))},
        _file_identity,
        _file_dataset_source,
    ),
}


def register_source(
    name: str, matches: str | Callable[[str], bool], read: Callable[[str, Any, Any], dict[str, Any]], **more: Any
) -> Source:
    """Add a kind of ``data.source``: ``matches`` is a prefix (``"myhub:"``) or a predicate on the spec.

    ``read(spec, data_config, cache_dir)`` returns ``{split: datasets.Dataset}``;
    ``identity`` and ``mlflow_source`` may be given too (see :class:`Source`).
    A name registered again replaces the earlier entry.
    """
    test = (lambda s: s.startswith(matches)) if isinstance(matches, str) else matches
    src = SOURCES[name] = Source(name, test, read, **more)
    note_extension(src)  # its code goes into the cache keys
    return src


_entry_points_loaded = False


def _load_entry_points() -> None:
    """Register the kinds installed packages declare in the ``textclf.sources`` entry-point group, once a process.

    Each entry point names a :class:`Source`. One that fails to load is skipped
    with a warning naming it (the other kinds still work); a kind registered in
    code keeps its name.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="textclf.sources"):
        try:
            src = ep.load()
            if not isinstance(src, Source):
                raise TypeError(f"it is a {type(src).__name__}, not a textclf.data.sources.Source")
        except Exception as exc:
            log.warning(
                "textclf.sources entry point %r (%s) was not loaded: %s. Fix or uninstall the package that declares it.",
                ep.name,
                ep.value,
                exc,
            )
            continue
        SOURCES.setdefault(src.name, src)


def source_of(spec: str) -> Source:
    """The registry entry that reads ``spec``: the first kind that matches it, else ``file``."""
    _load_entry_points()
    return next((s for n, s in SOURCES.items() if n != DEFAULT and s.matches(spec)), SOURCES[DEFAULT])
