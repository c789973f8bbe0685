"""The suite's in-process CLI runner (the ``cli`` fixture): a call leaves the test process as it found it."""

from __future__ import annotations

import logging
import os

import pytest
from conftest import make_rows, process_state_restored, write_csv


def test_a_training_in_process_leaves_logging_env_threads_and_mlflow_as_they_were(tmp_path, cli):
    import mlflow
    import torch

    write_csv(tmp_path / "d.csv", make_rows(60))
    root = logging.getLogger()
    handlers, env = list(root.handlers), dict(os.environ)
    torch.set_num_threads(2)
    res = cli("train", "--set", "data.source=d.csv", "--set", "train.epochs=1", "--set", "train.num_threads=1")
    assert res.code == 0, res.output
    assert "test_accuracy" in res.folded  # the output was captured
    assert root.handlers == handlers
    assert dict(os.environ) == env
    assert torch.get_num_threads() == 2  # the verb set 1
    assert mlflow.active_run() is None
    assert mlflow.get_tracking_uri() == os.environ["MLFLOW_TRACKING_URI"]
    # No handler anywhere keeps the call's captured streams (closed after this test: "Logging error" later) ...
    import sys

    loggers = [root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    held = [lg.name for lg in loggers for h in lg.handlers if vars(h).get("stream") in (sys.stdout, sys.stderr)]
    assert not held
    # ... and a library imported during the call keeps the level it set itself (SQL statements stay unlogged).
    assert logging.getLogger("sqlalchemy").level == logging.WARNING


def test_a_run_left_active_is_reported_and_ended(tmp_path):
    import mlflow

    with pytest.raises(AssertionError, match="left MLflow run .* active"):
        with process_state_restored():
            mlflow.start_run()
    assert mlflow.active_run() is None  # the next test starts clean
