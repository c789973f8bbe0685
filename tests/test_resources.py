"""Reliability round three: resources. What cannot fit is refused before any work; nothing grows with what it need not.

One test per failure a reliability probe met (numbered as in its report):
6. one huge text (cut before it is tokenized);
7. an absurd ``train.epochs`` (bounded; warm-up no longer stretches with it);
Each drives the real CLI where the promise is about the CLI (exit code 2, the
message, no traceback, nothing started), and the library where it is about a
function.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import make_rows, write_csv

TINY = [
    "--set", "train.epochs=1", "--set", "embedding.dim=8", "--set", "encoder.hidden_size=8",
    "--set", "evaluate.latency_samples=2", "--set", "train.num_threads=1",
]


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TEXTCLF_MEMORY_LIMIT"}  # the machine's real memory
    return subprocess.run([sys.executable, "-m", "textclf.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


def _runs(tmp: Path) -> list[tuple[str, str]]:
    db = tmp / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return list(con.execute("SELECT run_uuid, status FROM runs"))


def _refused(r: subprocess.CompletedProcess, *expect: str) -> str:
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, out
    assert "Traceback" not in out
    for s in expect:
        assert s.lower() in out.lower(), f"{s!r} not in: {out}"
    return out


# --------------------------------------------------------------------------- 6. one huge text

_HUGE_TEXT = textwrap.dedent(
    """
    import resource
    from textclf.serving.classifier import encode_texts
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import _encode_batch, train_tokenizer

    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["lorem ipsum dolor sit amet"]])
    big = "lorem ipsum dolor sit amet " * (5 * 2**20 // 27)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = _encode_batch({"text": [big, "lorem ipsum"]}, tok.to_str(), 256)
    split = encode_texts(tok, [big], 256)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(grew // 1024, out["full_length"][1], len(out["input_ids"][0]), int(split.lengths[0]))
    """
)


def test_6_a_huge_text_is_cut_before_it_is_tokenized():
    from textclf.text.config import TokenizerConfig
    from textclf.text.tokenize import _encode_batch, train_tokenizer

    # a 5 MB text, tokenized for its first 256 tokens, in training and at inference
    r = subprocess.run([sys.executable, "-c", _HUGE_TEXT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    grew_mib, short, kept, served = map(int, r.stdout.split())
    assert grew_mib < 64, f"tokenizing one 5 MB text grew the process by {grew_mib} MiB"
    assert (short, kept, served) == (2, 256, 256)

    # a text whose first tokens are one long run: cut before max_length tokens, yet counted as truncated
    tok = train_tokenizer(TokenizerConfig(min_frequency=1), [["a b c"]])
    out = _encode_batch({"text": ["x" * 10_000 + " a b c", "a b"]}, tok.to_str(), 8)
    assert out["full_length"][0] > 8 and out["full_length"][1] == 2


# --------------------------------------------------------------------------- 7. epochs


def test_7_epochs_are_bounded_and_warm_up_does_not_grow_with_them(tmp_path):
    write_csv(tmp_path / "d.csv", make_rows(60))
    _refused(cli("train", "--set", "data.source=d.csv", *TINY, "--set", "train.epochs=1e9", "--set", "train.patience=1"),
             "train.epochs", "10000")
    from textclf.training.config import TrainConfig
    from textclf.training.optim import warmup_steps

    # warm-up: at most 2 epochs' worth however long the run; what it was for the defaults and short runs
    assert warmup_steps(TrainConfig(epochs=10000), steps_per_epoch=100) == 200
    for epochs in (1, 3, 10, 25, 40):
        for spe in (1, 7, 113):
            assert warmup_steps(TrainConfig(epochs=epochs), spe) == round(0.05 * (epochs * spe))
