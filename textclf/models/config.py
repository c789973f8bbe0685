"""The ``encoder`` and ``tfidf`` sections: which model is built (read by the train and tfidf stages)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from textclf.core.schema import Section
from textclf.models.registry import ENCODERS


class EncoderConfig(Section):
    cell: str = Field(
        "lstm", description="The encoder family: one of textclf.models.registry.ENCODERS (rnn, gru, lstm, ...)."
    )
    layers: int = Field(1, ge=1, le=16)
    bidirectional: bool = False
    # 2**20: wider than any recurrent layer that fits in memory, and it keeps the size arithmetic exact.
    hidden_size: int = Field(128, ge=1, le=2**20)
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Between stacked layers.")
    pooling: Literal["last", "mean", "max", "attention"] = "max"
    init: Literal["standard", "chrono"] = Field(
        "standard",
        description="standard: LSTM forget-gate bias 1; chrono: gate biases log U(1, T_max - 1) (Tallec & Ollivier 2018), "
        "for long-range memory (lstm, gru).",
    )
    chrono_max_length: int | None = Field(
        None, ge=3, description="T_max of chrono initialisation (null: tokenizer.max_length)."
    )
    output_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Before the linear head.")
    match_params: str | None = Field(
        None,
        description="Name of another variant of the pipeline: hidden_size is chosen so that this encoder's parameters "
        "come within 5% of that variant's (the embedding and head are the same for both), separating 'a better "
        "architecture' from 'a bigger model'.",
    )
    init_from: str | None = Field(None, description="Model reference to start from (folder, runs:/, models:/).")
    freeze: bool = False

    @field_validator("cell")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in ENCODERS:
            raise ValueError(f"must be one of {', '.join(repr(k) for k in ENCODERS)}")
        return value

    @model_validator(mode="after")
    def _fits_family(self) -> EncoderConfig:
        problems = ENCODERS[self.cell].problems(self)
        if self.init == "chrono" and self.cell == "rnn":
            problems.append(
                f"encoder.init=chrono sets gate biases; encoder.cell={self.cell!r} has no such gates. Use lstm or gru"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TfidfConfig(Section):
    ngram_max: int = Field(2, ge=1, le=5)
    C: float | None = Field(None, gt=0.0, description="Inverse regularisation; null = chosen on validation.")
    max_features: int | None = Field(200000, ge=1)
    min_df: int = Field(1, ge=1)
