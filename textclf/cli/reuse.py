"""CLI verbs that use trained models: ``predict``, ``embed`` and ``export``.

Plain functions with typer annotations, registered on the main app in
:mod:`textclf.cli.main`. Every verb takes ``--model REF`` (a folder, ``runs:/``,
``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``PARENT_RUN_ID:VARIANT``,
``PARENT_RUN_ID:best``, ``best``; see :mod:`textclf.tracking.refs`). The model
of a FAILED or deleted run needs ``--allow-failed``.

Input files: ``.txt`` (one text per line; ``-`` reads lines from stdin) or
any table format training reads (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``
and registered ones; text in ``--text-column``), through the same reader.
The other columns of a table are kept in the output, so ids travel along; an
input column that would collide with an output column (``label``,
``proba_<class>``, ``embedding``) is kept as ``input_<name>``, in every
format; where that name is taken too, the input is refused, naming the
columns. Outputs are written to a temporary file and renamed into place, so a
failure never leaves half a file, and an ``--output`` that is the ``--input``
file is refused unless ``--force``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from textclf import load_model
from textclf.core.errors import DataError, ModelError

# typer renders help text as rich markup: an unescaped "[/model]" reads as a closing tag and crashes --help.
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Model: a folder, runs:/RUN_ID\\[/model], models:/NAME@ALIAS, models:/NAME/VERSION, "
        "PARENT_RUN_ID:VARIANT (that `textclf run`'s best seed of VARIANT), PARENT_RUN_ID:best, or best (the latest run's best).",
    ),
]
TextColOpt = Annotated[
    str, typer.Option("--text-column", help="Column holding the text in .csv/.tsv/.jsonl/.parquet input.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")]
TrackOpt = Annotated[
    Optional[str],
    typer.Option(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)."
    ),
]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu (default), cuda, cuda:N or mps.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results.")]
AllowFailedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-failed",
        help="Use the model of a FAILED or deleted MLflow run (refused otherwise: it may be half-trained).",
    ),
]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="auto (default): a folder exported with --onnx runs on onnxruntime, without torch (CPU); "
        "else torch. torch: always the weights. onnx: the ONNX graph or an error saying why not.",
    ),
]
CacheOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir", help="Where models from MLflow are downloaded (default: $TEXTCLF_CACHE_DIR or .textclf)."
    ),
]


TABLE_OUTPUTS = (".csv", ".tsv", ".jsonl", ".parquet")


def _quiet_libs() -> None:
    import logging
    import os
    import warnings

    from textclf.core.logs import NOISY

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow\..*")


def _err(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(msg, highlight=False, markup=False, soft_wrap=True)


# --------------------------------------------------------------------------- input / output files


def read_texts(path: Path | str, text_column: str = "text"):
    """``(table, texts)``: the input rows as a DataFrame and the list of texts to use.

    ``.txt`` and ``-`` (stdin) hold one text per line; every table format is
    read by the reader that training uses (:func:`textclf.data.sources.read_file`,
    so a registered format works here too), each cell as written. Raises
    DataError naming the file, the line / row and the fix.
    """
    import pandas as pd

    from textclf.data.sources import FORMATS, read_file

    if str(path) == "-":
        lines = sys.stdin.read().splitlines()
        return pd.DataFrame({"text": lines}), lines
    p = Path(path)
    if p.suffix.lower() == ".txt":
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{p}: not UTF-8 text (byte offset {exc.start}).") from None
        except OSError as exc:
            raise DataError(f"{p}: cannot be read ({exc.strerror}). Check the path.") from None
        return pd.DataFrame({"text": lines}), lines
    if p.suffix.lower() not in FORMATS:
        kinds = ", ".join([".txt", *FORMATS])
        raise DataError(f"{p}: unsupported input type {p.suffix or '(no extension)'!r}. Use one of {kinds}.")
    table = read_file(p, strings=True).to_pandas()
    if text_column not in table.columns:
        raise DataError(
            f"{p}: no column {text_column!r}; columns are {list(map(str, table.columns))}. Pass --text-column NAME."
        )
    col = table[text_column]
    missing = [int(i) for i in col.index[col.isna()]]
    if missing:
        rows = ", ".join(str(i + 1) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{p}: {len(missing)} row(s) have no text in column {text_column!r} (data rows {rows}). Fill or drop them."
        )
    return table, [str(t) for t in col.tolist()]


def _merge(table, added, source: str = "the input"):
    """Input columns + the new ones, one rule for every format.

    An input column named like an output column (``label``, ``proba_<class>``,
    ``embedding``) is kept as ``input_<name>``: a file's true labels stay next to
    the predicted ones. Where ``input_<name>`` is itself taken (the input is an
    earlier prediction output), renaming again would give two columns one name
    (CSV writes both, JSONL keeps one, Parquet refuses): refused, naming the
    columns, before the model loads.
    """
    import pandas as pd

    table = table.reset_index(drop=True).rename(columns=_renames(table.columns, list(added.columns), source))
    return pd.concat([table, added.reset_index(drop=True)], axis=1)


def _renames(columns, added: list[str], source: str) -> dict:
    """``{input column: input_<column>}`` for the input columns an output column would hide (see :func:`_merge`)."""
    names = [str(c) for c in columns]
    clash = {c: f"input_{c}" for c in names if c in set(added)}
    taken = sorted(new for new in clash.values() if new in names or new in added)
    if taken:
        olds = sorted(c for c, new in clash.items() if new in taken)
        raise DataError(
            f"{source} has columns {olds} and {taken}: textclf writes {olds} itself and keeps an input column of that "
            f"name as input_<name>, which is taken too (is it an earlier prediction output?). Drop or rename "
            f"{taken} (or {olds}) in the input, then run again."
        )
    return clash


def _output_columns(labels: list[str]) -> list[str]:
    return ["label", *(f"proba_{name}" for name in labels)]


def check_not_input(output: Path, input: Path | None, *, force: bool) -> None:
    """Refuse an ``--output`` that is the ``--input`` file (overwriting it loses the data) unless ``force``."""
    if input is None or str(input) == "-" or not output.exists():
        return
    try:
        same = os.path.samefile(output, input)
    except OSError:
        same = False
    if same and not force:
        raise DataError(
            f"--output {output} is the --input file: writing there replaces your data with the predictions "
            "(its columns renamed). Choose another --output, or pass --force to replace the input."
        )


def atomic_write(path: Path, write, what: str) -> None:
    """``write(tmp)`` to a temporary next to ``path``, then renamed over it: a failure leaves ``path`` as it was."""
    from textclf.core import disk

    with disk.reporting(path, root=path.parent, what=what, fix="Free space on that disk or choose another --output."):
        disk.write_atomically(path, write)


def write_table(df, path: Path) -> None:
    """.csv / .tsv / .jsonl / .parquet by extension (floats written at full precision), atomically."""
    _check_ext(path, TABLE_OUTPUTS)
    ext = path.suffix.lower()

    def write(tmp: Path) -> None:
        if ext in (".csv", ".tsv"):
            df.to_csv(tmp, index=False, sep="\t" if ext == ".tsv" else ",")
        elif ext == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                _write_jsonl(df, fh)
        else:
            df.to_parquet(tmp, index=False)

    atomic_write(path, write, "the predictions")


def _write_jsonl(df, fh) -> None:
    for row in df.to_dict(orient="records"):
        fh.write(json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") and not isinstance(v, (list, dict, str)) else v


# --------------------------------------------------------------------------- verbs


def predict(
    model: ModelOpt,
    texts: Annotated[
        Optional[list[str]], typer.Argument(help="Texts to classify (or use --input).", show_default=False)
    ] = None,
    input: Annotated[
        Optional[Path],
        typer.Option(
            "--input", "-i", help="Texts from a .txt (one per line; - for stdin), .csv, .tsv, .jsonl or .parquet file."
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Write predictions to .csv, .tsv, .jsonl or .parquet (default: print them)."
        ),
    ] = None,
    text_column: TextColOpt = "text",
    batch_size: BatchOpt = 256,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="Printed output without --output: auto (a table on a terminal, else jsonl), table, jsonl or csv.",
        ),
    ] = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Allow --output to be the --input file (it is replaced by the predictions).")
    ] = False,
    allow_failed: AllowFailedOpt = False,
    tracking_uri: TrackOpt = None,
    cache_dir: CacheOpt = None,
    device: DeviceOpt = None,
    engine: EngineOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Predict labels and class probabilities for texts with a trained model."""
    _quiet_libs()
    if texts and input is not None:
        raise DataError("Give texts as arguments or --input FILE, not both.")
    if not texts and input is None:
        raise DataError('Nothing to predict: pass texts (textclf predict --model REF "some text") or --input FILE.')
    if format_ not in ("auto", "table", "jsonl", "csv"):
        raise DataError(f"--format must be auto, table, jsonl or csv. Got {format_!r} instead.")
    if output is not None:  # fail on a bad output type before the model loads
        _check_ext(output, TABLE_OUTPUTS)
        check_not_input(output, input, force=force)
    import pandas as pd

    table, items = (pd.DataFrame({"text": list(texts)}), list(texts)) if texts else read_texts(input, text_column)
    clf = load_model(
        model, tracking_uri=tracking_uri, device=device, cache_dir=cache_dir, allow_failed=allow_failed, engine=engine
    )
    source = str(input) if input is not None and str(input) != "-" else "the input"
    renamed = _renames(table.columns, _output_columns(clf.labels), source)  # before predicting
    text_column = renamed.get(text_column, text_column)
    result = _merge(table, clf.predict_table(items, batch_size=batch_size), source)
    if output is not None:
        write_table(result, output)
        if not quiet:
            _err(f"wrote {len(result)} predictions to {output}")
        return
    fmt = format_ if format_ != "auto" else ("table" if sys.stdout.isatty() else "jsonl")
    if fmt == "jsonl":
        _write_jsonl(result, sys.stdout)
    elif fmt == "csv":
        result.to_csv(sys.stdout, index=False)
    else:
        _print_table(result, text_column if text_column in result.columns else "text", clf.labels)


def _print_table(df, text_col: str, labels: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Texts and label names are the user's: Text, never parsed as markup ("[/]" would raise).
    t = Table(title_justify="left")
    t.add_column(Text(text_col), overflow="ellipsis", max_width=60)
    t.add_column("label")
    for name in labels:
        t.add_column(Text(f"proba_{name}"), justify="right")
    for _, row in df.iterrows():
        t.add_row(
            Text(str(row.get(text_col, ""))), Text(str(row["label"])), *[f"{row[f'proba_{n}']:.4f}" for n in labels]
        )
    Console().print(t)


def _check_ext(path: Path, allowed: tuple[str, ...]) -> None:
    if path.suffix.lower() not in allowed:
        raise DataError(
            f"--output {path}: unsupported type {path.suffix or '(no extension)'!r}. Use {', '.join(allowed)}."
        )


def embed(
    model: ModelOpt,
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help="Texts: .txt (one per line; - for stdin), .csv, .tsv, .jsonl or .parquet."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help=".npy (float32 matrix, one row per text) or .parquet (input columns + an 'embedding' list column).",
        ),
    ],
    text_column: TextColOpt = "text",
    batch_size: BatchOpt = 256,
    force: Annotated[
        bool, typer.Option("--force", help="Allow --output to be the --input file (it is replaced by the embeddings).")
    ] = False,
    allow_failed: AllowFailedOpt = False,
    tracking_uri: TrackOpt = None,
    cache_dir: CacheOpt = None,
    device: DeviceOpt = None,
    engine: EngineOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Embed texts with a trained encoder (the pooled recurrent state: hidden size x directions)."""
    import numpy as np

    from textclf.serving.classifier import Encoder

    _quiet_libs()
    _check_ext(output, (".npy", ".parquet"))
    check_not_input(output, input, force=force)
    table, items = read_texts(input, text_column)
    parquet = output.suffix.lower() == ".parquet"
    source = str(input) if str(input) != "-" else "the input"
    renamed = _renames(table.columns, ["embedding"], source) if parquet else {}  # before the model loads
    enc = Encoder(
        load_model(
            model,
            tracking_uri=tracking_uri,
            device=device,
            cache_dir=cache_dir,
            allow_failed=allow_failed,
            engine=engine,
        )
    )
    vectors = enc.embed(items, batch_size=batch_size)

    def write(tmp: Path) -> None:
        if not parquet:
            with open(tmp, "wb") as fh:  # a file object: np.save would append .npy to a path
                np.save(fh, vectors, allow_pickle=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        base = table.reset_index(drop=True).rename(columns=renamed)
        arr = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), vectors.shape[1])
        tbl = pa.Table.from_pandas(base, preserve_index=False).append_column("embedding", arr)
        pq.write_table(tbl, tmp)

    atomic_write(output, write, "the embeddings")
    if not quiet:
        _err(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {output}")


def export(
    model: ModelOpt,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Folder to write (config.json, tokenizer.json, model.safetensors, labels.json)."
        ),
    ],
    onnx: Annotated[
        bool,
        typer.Option("--onnx", help="Also write model.onnx (tokens, lengths -> logits) and onnx.json describing it."),
    ] = False,
    opset: Annotated[int, typer.Option("--opset", min=9, help="ONNX opset for --onnx.")] = 17,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace --output if it holds a textclf model (other folders are never replaced)."
        ),
    ] = False,
    allow_failed: AllowFailedOpt = False,
    tracking_uri: TrackOpt = None,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Copy a model out as a self-contained safetensors folder, optionally with an ONNX graph."""
    from textclf.models import folder as artifacts
    from textclf.tracking.refs import load_folder

    _quiet_libs()
    folder, _ = load_folder(model, tracking_uri=tracking_uri, cache_dir=cache_dir, allow_failed=allow_failed)
    if onnx and folder["kind"] != "neural":
        raise ModelError(f"{model}: a TF-IDF baseline cannot be exported to ONNX; drop --onnx to copy its folder.")
    artifacts.check_output(output, force=force)  # before any work
    with tempfile.TemporaryDirectory() as tmp:
        info, extra = None, {}
        if onnx:  # into the same atomic publish as the folder: a failed export changes nothing
            from textclf.models.onnx import export_onnx

            info = export_onnx(folder, Path(tmp) / "model.onnx", opset=opset)
            (Path(tmp) / "onnx.json").write_text(json.dumps(info, indent=1))
            extra = {"model.onnx": Path(tmp) / "model.onnx", "onnx.json": Path(tmp) / "onnx.json"}
        target = artifacts.copy_model(folder["dir"], output, force=force, extra=extra)
    if info is not None and not quiet:
        v = info["verified"]
        check = (
            f"checked with {v['runtime']}: max |diff| {v['max_abs_diff']:.1e}"
            if v.get("checked")
            else f"not checked ({v['reason']})"
        )
        _err(f"wrote {target / 'model.onnx'} ({check})")
    if not quiet:
        _err(f"exported {model} to {target}")
