"""Progress bars on a terminal, plain lines elsewhere: the same `textclf train` in a pseudo-terminal and with captured output."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
from conftest import make_rows, write_csv

pytestmark = pytest.mark.slow  # run first: test files are spread over workers longest first

ARGS = [
    "train",
    "--set",
    "data.source=d.csv",
    "--no-track",
    "--set",
    "train.epochs=2",
    "--set",
    "embedding.dim=8",
    "--set",
    "encoder.hidden_size=8",
    "--set",
    "train.batch_size=4",
    "--set",
    "evaluate.latency_samples=2",
]


def _in_terminal(args, cwd) -> str:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "textclf.cli", *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_bars_on_a_terminal_lines_in_a_pipe(tmp_path, cli):
    write_csv(tmp_path / "d.csv", make_rows(90))
    shown = _in_terminal(ARGS, tmp_path)
    assert "━" in shown and "ETA" in shown and "epoch 2/2" in shown  # a training bar with its epoch
    # Not a terminal (the captured output of an in-process run, as a pipe): plain lines.
    piped = cli(*ARGS, "--force")
    assert piped.code == 0, piped.output
    assert "━" not in piped.stderr and "ETA" not in piped.stderr
    assert "epoch 1/2 | train loss" in piped.stderr  # the plain per-epoch lines instead
    quiet = cli(*ARGS, "--force", "-q")
    assert quiet.code == 0 and "epoch 1/2" not in quiet.stderr
