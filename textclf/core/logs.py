"""Logging for every textclf process (the CLI, pool and Ray workers, DDP ranks).

Library code never prints: it logs. Progress lines of a training go to the
``textclf.progress`` logger and appear as they are ("  [lstm s1] epoch 3/10 |
..."); warnings and errors keep their level as a prefix. Third-party libraries
are quieted to warnings.
"""

from __future__ import annotations

import logging
import os
import sys

PROGRESS = "textclf.progress"
# Libraries whose INFO lines are noise in textclf's output: their loggers are set to WARNING wherever textclf logs.
NOISY = ("datasets", "mlflow", "alembic", "urllib3", "filelock", "httpx", "matplotlib", "git", "numba")


def ours_or_warning(record: logging.LogRecord) -> bool:
    """textclf's own records at any level; another library's only from WARNING up.

    Levels on named loggers (``NOISY``) cannot reach a library that logs
    through the root logger itself: scipy's ``boschloo_exact`` logs every
    optimiser bound with ``logging.info``, dozens of lines per comparison.
    """
    return record.levelno >= logging.WARNING or record.name == "textclf" or record.name.startswith("textclf.")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == PROGRESS:
            return record.getMessage()
        return f"{record.levelname} {record.getMessage()}"


def setup_logging(quiet: bool = False) -> None:
    """INFO (WARNING with ``quiet``) to stderr, progress lines unprefixed; third parties at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    handler.addFilter(ours_or_warning)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], force=True)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.ERROR if quiet else logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import warnings

    # MLflow's hints about integer columns and type hints concern its own inference, not the user.
    for pattern in (
        r".*Add type hints to the .predict. method",
        r"Hint: Inferred schema contains integer",
        r".*noload.*",
        r"Operation with range is deprecated",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    # Quiet the datasets library without importing it (half a second a run that reads only the cache never needs):
    # it reads these at import; once imported, its own switches.
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
        sys.modules["datasets"].logging.set_verbosity_error()
    else:
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("DATASETS_VERBOSITY", "error")


class ProgressLog:
    """What a training reports: ``log(line)`` per epoch (INFO) and ``step(...)`` within an epoch (DEBUG, structured).

    Lines print as they are; step records carry ``record.textclf_step =
    (label, epoch, epochs, step, steps)`` and are below INFO, so they only show
    where a handler renders them (the CLI's progress bars on a terminal).
    """

    def __init__(self, label: str | None = None):
        self.label = label or "training"
        self._prefix = f"  [{label}] " if label else "  "
        self._logger = logging.getLogger(PROGRESS)

    def __call__(self, line: str) -> None:
        self._logger.info(self._prefix + line, extra={"textclf_label": self.label})

    def step(self, epoch: int, epochs: int, step: int, steps: int) -> None:
        self._logger.debug(
            "%s epoch %d/%d step %d/%d",
            self.label,
            epoch,
            epochs,
            step,
            steps,
            extra={"textclf_step": (self.label, epoch, epochs, step, steps)},
        )


def progress_logger(label: str | None = None) -> ProgressLog:
    """The ``log_fn`` of a training: lines go to ``textclf.progress``, prefixed with ``[label]``."""
    return ProgressLog(label)
