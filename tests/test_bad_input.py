"""The adversarial bad-input matrix, through the real CLI.

Every case builds its own bad input in the test's directory, runs the
``textclf`` entry point (``textclf.cli.main.main``) in this process and checks,
beyond its own message:

* the exit code (2 for usage, config and data errors; 0 where the input is
  legitimate and textclf must cope, e.g. a 5 MB text or 1,000 classes);
* no traceback for an expected error;
* nothing half-written: no MLflow run left RUNNING, no stage-cache directory
  without its ``_entry.json``, no abandoned temporary.

A few cases are re-run with ``--debug`` to check the traceback does appear, and
a few through ``python -m textclf.cli`` in a subprocess: the exit code must reach
the shell as it leaves ``main``.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import make_rows, process_state_restored, run_cli, write_csv, write_jsonl

# Small enough that the cases which do train finish in seconds.
TINY = [
    "--set",
    "train.epochs=1",
    "--set",
    "embedding.dim=8",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "evaluate.latency_samples=2",
    "--set",
    "train.num_threads=1",
]


def subprocess_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textclf.cli", *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class Case:
    id: str
    setup: Callable[[Path], None]
    args: list[str]
    code: int = 2
    expect: list[str] = field(default_factory=list)  # substrings of the output (case-insensitive)


# --------------------------------------------------------------------------- inputs


def good(p: Path, n: int = 60) -> None:
    write_csv(p / "good.csv", make_rows(n))


def rows_with(p: Path, name: str, patch: dict[int, dict]) -> None:
    rows = make_rows(60)
    for i, r in patch.items():
        rows[i] = {**rows[i], **r}
    write_csv(p / name, rows)


def nothing(p: Path) -> None:
    pass


def empty_store(p: Path) -> None:
    """An MLflow store that exists but holds no runs or models."""
    from textclf.tracking import store

    with process_state_restored():
        store.setup(None)


def write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        (p / name).write_bytes(content if isinstance(content, bytes) else content.encode())

    return f


def many_classes(p: Path) -> None:
    # 1,000 classes, 6 examples each: every class can be split three ways.
    rows = [{"text": f"token{c} word{c} sample {i}", "label": f"class{c:04d}"} for c in range(1000) for i in range(6)]
    write_csv(p / "many.csv", rows)


def huge_text(p: Path) -> None:
    rows = make_rows(60)
    rows[7] = {"text": "lorem ipsum dolor sit amet " * (5 * 1024 * 1024 // 27), "label": rows[7]["label"]}
    write_csv(p / "huge.csv", rows)


def mixed_label_types(p: Path) -> None:
    rows = [{"text": r["text"], "label": (i if i % 2 else r["label"])} for i, r in enumerate(make_rows(60))]
    write_jsonl(p / "mixed.jsonl", rows)


def leaky(p: Path) -> None:
    rows = make_rows(90)
    write_csv(p / "tr.csv", rows[:60])
    write_csv(p / "va.csv", rows[60:75])
    write_csv(p / "te.csv", rows[:15])  # the test set is a copy of training rows


def unseen_label(p: Path) -> None:
    rows = make_rows(90)
    write_csv(p / "tr.csv", rows[:60])
    write_csv(p / "va.csv", rows[60:75])
    write_csv(p / "te.csv", [*rows[75:89], {"text": "a brand new thing", "label": "surprise"}])


def pipeline(name: str, body: str) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        good(p)
        (p / "pipelines").mkdir(exist_ok=True)
        (p / "pipelines" / f"{name}.yaml").write_text(body)

    return f


def params_file(body: str) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        good(p)
        (p / "bad-params.yaml").write_text(body)

    return f


class Evil:
    """Unpickling this runs a command; the mark file shows whether it did."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _train_tiny(p: Path, *extra: str) -> None:
    good(p)
    assert run_cli("train", "--set", "data.source=good.csv", *TINY, "--no-track", "--quiet", *extra) == 0


def pickled_model(p: Path) -> None:
    """A real model folder whose weights file is replaced by a crafted pickle."""
    _train_tiny(p, "--output", "model")
    (p / "model" / "model.safetensors").write_bytes(pickle.dumps(Evil()))


def pickled_baseline(p: Path) -> None:
    """A real TF-IDF baseline folder whose coefficients are replaced by a pickled object array."""
    import numpy as np

    _train_tiny(p, "--set", "kind=tfidf", "--output", "model")
    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    np.save(p / "model" / "tfidf" / "coef.npy", evil, allow_pickle=True)


def pickled_checkpoint(p: Path) -> None:
    """A crafted pickle exactly where the next run looks for its resume checkpoint."""
    import shutil

    import torch

    _train_tiny(p, "--set", "train.epochs=2")
    train_dir = p / ".textclf" / "train"
    (key,) = [e.name for e in train_dir.iterdir() if not e.name.startswith(".")]
    shutil.rmtree(train_dir / key)  # so the same command must train (and resume) again
    work = train_dir / ".work" / key
    work.mkdir(parents=True, exist_ok=True)
    torch.save({"payload": Evil()}, work / "checkpoint.pt")


CASES = [
    # ---- files
    Case(
        "missing-file",
        nothing,
        ["train", "--set", "data.source=nope.csv"],
        expect=["not found", "nope.csv", "check the path"],
    ),
    Case(
        "empty-file",
        write("empty.csv", b""),
        ["train", "--set", "data.source=empty.csv"],
        expect=["empty.csv", "empty"],
    ),
    Case(
        "directory-not-file",
        lambda p: (p / "dir.csv").mkdir(),
        ["train", "--set", "data.source=dir.csv"],
        expect=["is a directory"],
    ),
    Case(
        "header-only",
        write("h.csv", "text,label\n"),
        ["train", "--set", "data.source=h.csv"],
        expect=["header", "no rows"],
    ),
    Case(
        "unsupported-extension",
        write("d.xlsx", b"PK\x03\x04"),
        ["train", "--set", "data.source=d.xlsx"],
        expect=["unsupported file type", ".csv"],
    ),
    Case(
        "corrupt-parquet",
        write("d.parquet", b"this is not parquet at all"),
        ["train", "--set", "data.source=d.parquet"],
        expect=["d.parquet", "parquet"],
    ),
    Case(
        "malformed-jsonl",
        write("d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n'),
        ["train", "--set", "data.source=d.jsonl"],
        expect=["d.jsonl", "json"],
    ),
    Case(
        "non-utf8",
        write("l1.csv", "text,label\ncaf\xe9 ok,pos\nbad,neg\n".encode("latin-1")),
        ["train", "--set", "data.source=l1.csv"],
        expect=["utf-8", "byte offset 14", "line 2", "iconv"],
    ),
    Case(
        "wrong-delimiter",
        write("semi.csv", "text;label\nnice film;pos\nawful;neg\n"),
        ["train", "--set", "data.source=semi.csv"],
        expect=["delimiter", "text;label"],
    ),
    # ---- columns and rows
    Case(
        "missing-column",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "data.text_column=review"],
        expect=["'review'", "data.text_column", "columns present", "--set data.text_column=text"],
    ),
    Case(
        "all-null-text",
        lambda p: write_csv(p / "n.csv", [{"text": None, "label": r["label"]} for r in make_rows(20)]),
        ["train", "--set", "data.source=n.csv"],
        expect=["n.csv", "null text", "data.on_invalid=drop"],
    ),
    Case(
        "all-null-label",
        lambda p: write_csv(p / "n.csv", [{"text": r["text"], "label": None} for r in make_rows(20)]),
        ["train", "--set", "data.source=n.csv"],
        expect=["n.csv", "missing label"],
    ),
    Case(
        "empty-texts",
        lambda p: rows_with(p, "e.csv", {3: {"text": ""}, 9: {"text": ""}}),
        ["train", "--set", "data.source=e.csv"],
        expect=["e.csv", "rows 4, 10", "data.on_invalid=drop"],
    ),
    Case(
        "whitespace-texts",
        lambda p: rows_with(p, "w.csv", {4: {"text": "   \t "}}),
        ["train", "--set", "data.source=w.csv"],
        expect=["w.csv", "empty text", "row"],
    ),
    Case(
        "nan-labels",
        lambda p: rows_with(p, "nl.csv", {2: {"label": float("nan")}}),
        ["train", "--set", "data.source=nl.csv"],
        expect=["nl.csv", "missing label", "rows 3"],
    ),
    Case(
        "one-class",
        lambda p: write_csv(p / "one.csv", make_rows(30, labels=("pos",))),
        ["train", "--set", "data.source=one.csv"],
        expect=["only one class", "'pos'", "data.label_column"],
    ),
    Case(
        "mixed-label-types",
        mixed_label_types,
        ["train", "--set", "data.source=mixed.jsonl"],
        expect=["mixed.jsonl", "mixes numbers and words", "one label scheme"],
    ),
    Case(
        "label-unseen-in-train",
        unseen_label,
        ["train", "--set", "data.train=tr.csv", "--set", "data.validation=va.csv", "--set", "data.test=te.csv"],
        expect=["te.csv", "'surprise'", "never occur in the training data"],
    ),
    Case(
        "too-few-rows-to-split",
        lambda p: write_csv(p / "s.csv", make_rows(4)),
        ["train", "--set", "data.source=s.csv"],
        expect=["too few rows"],
    ),
    # ---- config
    Case(
        "malformed-yaml",
        params_file("encoder:\n  cell: lstm\n   layers: 2\n"),
        ["train", "--params", "bad-params.yaml", "--set", "data.source=good.csv"],
        expect=["bad-params.yaml", "line"],
    ),
    Case(
        "unknown-key",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "encoder.hiden_size=64"],
        expect=["encoder.hiden_size", "did you mean 'encoder.hidden_size'"],
    ),
    Case(
        "unknown-section-in-params",
        params_file("trainer:\n  epochs: 3\n"),
        ["train", "--params", "bad-params.yaml", "--set", "data.source=good.csv"],
        expect=["trainer", "did you mean 'train'"],
    ),
    Case(
        "negative-size",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "encoder.hidden_size=-5"],
        expect=["encoder.hidden_size", "-5"],
    ),
    Case(
        "negative-fraction",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "data.test_fraction=-0.1"],
        expect=["data.test_fraction", "-0.1"],
    ),
    Case(
        "zero-epochs",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "train.epochs=0"],
        expect=["train.epochs", "0"],
    ),
    Case(
        "wrong-type",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "train.lr=fast"],
        expect=["train.lr", "fast"],
    ),
    Case(
        "bad-choice",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "encoder.cell=transformer"],
        expect=["encoder.cell", "transformer", "lstm"],
    ),
    Case("set-without-equals", good, ["train", "--set", "encoder.layers"], expect=["encoder.layers", "key=value"]),
    Case(
        "glove-dim-mismatch",
        good,
        [
            "train",
            "--set",
            "data.source=good.csv",
            "--set",
            "embedding.pretrained=glove-6b-50d",
            "--set",
            "embedding.dim=100",
        ],
        expect=["embedding.dim", "50"],
    ),
    Case(
        "missing-vectors-file",
        good,
        ["train", "--set", "data.source=good.csv", "--set", "embedding.pretrained=vecs.txt"],
        expect=["vecs.txt", "not found"],
    ),
    Case(
        "unknown-builtin", nothing, ["train", "--set", "data.source=builtin:nope"], expect=["builtin:nope", "reviews"]
    ),
    Case("unknown-option", nothing, ["train", "--epochs", "3"], expect=["no such option", "--epochs"]),
    # ---- pipelines
    Case("unknown-pipeline", nothing, ["run", "no-such-pipeline"], expect=["no-such-pipeline", "compare"]),
    Case(
        "pipeline-bad-baseline",
        pipeline("p", "name: p\ndata: {source: good.csv}\nbaseline: lstm\nvariants:\n  rnn: {encoder.cell: rnn}\n"),
        ["run", "p"],
        expect=["baseline", "lstm", "rnn"],
    ),
    Case(
        "pipeline-unknown-variant",
        pipeline("p", "name: p\ndata: {source: good.csv}\nvariants:\n  rnn: {encoder.cell: rnn}\n"),
        ["run", "p", "--variant", "gru"],
        expect=["gru", "rnn"],
    ),
    Case("pipeline-not-a-mapping", pipeline("p", "- just\n- a list\n"), ["run", "p"], expect=["p.yaml", "mapping"]),
    # ---- models and tracking
    Case(
        "unknown-model-folder", nothing, ["predict", "--model", "no-such-model", "some text"], expect=["no-such-model"]
    ),
    Case(
        "model-reference-without-store",
        nothing,
        ["predict", "--model", "runs:/0123456789abcdef0123456789abcdef/model", "some text"],
        expect=["runs:/0123456789abcdef0123456789abcdef/model", "no mlflow store", "--tracking-uri"],
    ),
    Case(
        "unknown-run-reference",
        empty_store,
        ["predict", "--model", "runs:/0123456789abcdef0123456789abcdef/model", "some text"],
        expect=["runs:/0123456789abcdef0123456789abcdef/model", "textclf ui"],
    ),
    Case(
        "unknown-registered-model",
        empty_store,
        ["predict", "--model", "models:/nobody@champion", "some text"],
        expect=["nobody"],
    ),
    Case(
        "pickle-as-model",
        pickled_model,
        ["predict", "--model", "model", "some text"],
        expect=["model.safetensors", "safetensors"],
    ),
    Case(
        "pickle-in-baseline",
        pickled_baseline,
        ["predict", "--model", "model", "some text"],
        expect=["coef.npy", "allow_pickle=false"],
    ),
    Case(
        "pickle-as-checkpoint",
        pickled_checkpoint,
        ["train", "--set", "data.source=good.csv", *TINY, "--set", "train.epochs=2", "--no-track"],
        code=1,
        expect=["checkpoint.pt", "not loaded", "weights_only=true", "rm "],
    ),
    Case(
        "unreachable-tracking-server",
        good,
        ["train", "--set", "data.source=good.csv", *TINY, "--tracking-uri", "http://127.0.0.1:9"],
        expect=["127.0.0.1:9", "mlflow server"],
    ),
    # ---- legitimate but extreme: textclf must cope (exit 0)
    Case(
        "leakage-warns",
        leaky,
        ["train", "--set", "data.train=tr.csv", "--set", "data.validation=va.csv", "--set", "data.test=te.csv", *TINY],
        code=0,
        expect=["15 test texts also occur in train", "leakage"],
    ),
    Case(
        "one-5mb-text",
        huge_text,
        ["train", "--set", "data.source=huge.csv", *TINY],
        code=0,
        expect=["tokenizer.max_length=256", "were truncated", "1 train", "test_accuracy"],
    ),
    Case(
        "1000-classes",
        many_classes,
        [
            "train",
            "--set",
            "data.source=many.csv",
            *TINY,
            "--set",
            "data.val_fraction=0.2",
            "--set",
            "data.test_fraction=0.2",
        ],
        code=0,
        expect=["test_accuracy"],
    ),
]


def _running_runs(tmp: Path) -> list[str]:
    db = tmp / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")]


def _half_written(tmp: Path) -> list[str]:
    root = tmp / ".textclf"
    if not root.is_dir():
        return []
    bad = [str(t) for t in root.glob("*/.tmp-*")]
    for stage in (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "datasets"):
        bad += [
            str(e)
            for e in stage.iterdir()
            if e.is_dir() and not e.name.startswith(".") and not (e / "_entry.json").is_file()
        ]
    return bad


def check(case: Case, code: int, output: str, tmp: Path) -> None:
    assert code == case.code, output
    folded = " ".join(output.lower().split())
    for s in case.expect:
        assert s.lower() in folded, f"{s!r} not in output:\n{output}"
    assert "Traceback" not in output
    assert "Add type hints" not in output  # library noise the user can do nothing about
    assert not _running_runs(tmp), "an MLflow run was left RUNNING"
    assert not _half_written(tmp), "a stage-cache entry was left half-written"
    assert not (tmp / "PWNED").exists(), "a crafted pickle was executed"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, cli):
    case.setup(tmp_path)
    res = cli(*case.args)
    check(case, res.code, res.output, tmp_path)


# A usage error (click's), a configuration error and a data error (textclf's): their codes reach the shell.
SMOKE = ("unknown-option", "unknown-key", "missing-file")


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SMOKE], ids=lambda c: c.id)
def test_bad_input_through_the_real_process(case: Case, tmp_path):
    case.setup(tmp_path)
    res = subprocess_cli(*case.args)
    check(case, res.returncode, res.stdout + res.stderr, tmp_path)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.id in ("missing-file", "unknown-key", "wrong-delimiter")], ids=lambda c: c.id
)
def test_debug_raises_instead_of_the_message(case: Case, tmp_path):
    from textclf.core.errors import TextclfError

    case.setup(tmp_path)
    with pytest.raises(TextclfError):
        run_cli(*case.args, "--debug")


def test_debug_shows_the_traceback(tmp_path):
    (case,) = [c for c in CASES if c.id == "missing-file"]
    res = subprocess_cli(*case.args, "--debug")
    assert res.returncode != 0
    assert "Traceback" in res.stderr
