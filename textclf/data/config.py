"""The ``data`` section: where the data comes from and how it is split (read by the prepare stage)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from textclf.core.schema import Section, Seed

# A data.slice_columns column shows at most this many rows in a report (the largest values, the rest
# pooled as "other"): a column of ids once gave 893 one-row slices per variant.
MAX_SLICE_VALUES = 20


class DataConfig(Section):
    source: str | None = Field(
        None, description="One file / hf:NAME[:CONFIG] / builtin:NAME, split by the fractions below."
    )
    train: str | None = Field(None, description="Training file (instead of source).")
    validation: str | None = None
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: Seed = Field(
        0, description="Seed of the train/validation/test split; fixed across training seeds so comparisons are paired."
    )
    max_examples: int | None = Field(None, ge=1, description="Keep at most this many rows per split (quick runs).")
    on_invalid: Literal["error", "drop"] = "error"
    options: dict[str, Any] = Field(
        default_factory=dict, description="Options of a builtin: corpus (size, noise, ...)."
    )
    slice_columns: list[str] = Field(
        default_factory=list,
        description="Extra columns (e.g. a domain or source) whose values become slices of the comparison: accuracy per value beside the baseline's.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.source and self.train:
            raise ValueError(
                "set either data.source (one input, split automatically) or data.train (+ data.validation / data.test), not both; "
                f"got data.source={self.source!r} and data.train={self.train!r}. Remove one (in a pipeline file or params.yaml: "
                "delete its line; on the command line: --set data.source=null)"
            )
        ignored = [f"data.{k}={getattr(self, k)!r}" for k in ("validation", "test") if self.source and getattr(self, k)]
        if ignored:  # prepare splits data.source itself: these files would be ignored without a word
            raise ValueError(
                f"{' and '.join(ignored)} go with data.train (separate files), but data.source={self.source!r} is set and is "
                "split by data.val_fraction / data.test_fraction. Give the training file too (--set data.train=FILE replaces "
                "data.source), or drop them"
            )
        clash = [c for c in self.slice_columns if c in (self.text_column, self.label_column, "text", "label")]
        if clash:
            raise ValueError(
                f"data.slice_columns may not name the text or label column ({clash}); name other columns of the data"
            )
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"data.val_fraction + data.test_fraction must be < 1 (got {self.val_fraction} + {self.test_fraction})"
            )
        return self
