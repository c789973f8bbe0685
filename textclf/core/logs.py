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
_NOISY = ("datasets", "mlflow", "alembic", "urllib3", "filelock", "httpx", "matplotlib")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == PROGRESS:
            return record.getMessage()
        return f"{record.levelname} {record.getMessage()}"


def setup_logging(quiet: bool = False) -> None:
    """INFO (WARNING with ``quiet``) to stderr, progress lines unprefixed; third parties at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], force=True)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.ERROR if quiet else logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import warnings

    # MLflow's hints about integer columns and type hints concern its own inference, not the user.
    for pattern in (r".*Add type hints to the .predict. method", r"Hint: Inferred schema contains integer", r".*noload.*", r"Operation with range is deprecated"):
        warnings.filterwarnings("ignore", message=pattern)
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def progress_logger(label: str | None = None):
    """A ``log_fn(line)`` for a training: lines go to ``textclf.progress``, prefixed with ``[label]``."""
    logger = logging.getLogger(PROGRESS)
    prefix = f"  [{label}] " if label else "  "
    return lambda line: logger.info(prefix + line)
