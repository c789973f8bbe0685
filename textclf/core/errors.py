"""Errors a user can fix.

Everything raised as a :class:`TextclfError` is an *expected* failure: bad
config, bad data, a missing model. The CLI prints its message (no traceback
unless ``--debug``) and exits with :attr:`TextclfError.exit_code`. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TextclfError(Exception):
    """Base class for errors whose message tells the user what to fix."""

    exit_code = 2


class ConfigError(TextclfError):
    """A config key, value or override is invalid."""


class DataError(TextclfError):
    """Input data is missing, unreadable or invalid."""


class ModelError(TextclfError):
    """A model reference or model artifact cannot be loaded."""


class TrainingError(TextclfError):
    """Training diverged (NaN/inf loss) or cannot continue."""

    exit_code = 1


class DiskFullError(TextclfError):
    """A write failed for lack of space: a full disk, a quota, a file-size limit."""

    exit_code = 1


class StoreLockedError(TextclfError):
    """The MLflow SQLite store stayed locked by another process for longer than textclf waits."""

    exit_code = 1
