"""The ``tokenizer`` and ``embedding`` sections (read by the tokenize and embed stages)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from textclf.core.schema import Section


class TokenizerConfig(Section):
    kind: Literal["word", "bpe", "wordpiece", "unigram", "char"] = "word"
    vocab_size: int = Field(20000, ge=10, lt=2**31, description="Token ids are stored as int32.")
    min_frequency: int = Field(2, ge=1)
    lowercase: bool = True
    max_length: int = Field(256, ge=1, description="Longer texts are truncated (reported per split).")


class EmbeddingConfig(Section):
    dim: int | None = Field(
        None, ge=1, le=2**20, description="null: the pretrained vectors' dimension, or 100 without them."
    )
    pretrained: str | None = Field(None, description="glove-6b-50d, or a GloVe/word2vec text file.")
    trainable: bool = True
    dropout: float = Field(0.25, ge=0.0, lt=1.0)
    extend_vocab: int = Field(
        100000,
        ge=0,
        lt=2**31,
        description="Word tokenizer + pretrained vectors: add up to this many of the most frequent pretrained "
        "words missing from the trained vocabulary, with their vectors kept frozen. 0 turns it off.",
    )

    @model_validator(mode="after")
    def _resolve_dim(self) -> EmbeddingConfig:
        # The vectors' size is known at config time (named sets: by name; files: from
        # their first line): fill it in, or report a disagreement before anything runs.
        known = None
        if self.pretrained:
            from textclf.text.embedding import vectors_dim

            known = vectors_dim(self.pretrained)
        if self.dim is None:
            object.__setattr__(self, "dim", known or 100)  # not an assignment: no re-validation
        elif known is not None and self.dim != known:
            raise ValueError(
                f"embedding.dim is {self.dim} but {self.pretrained} vectors have {known} dimensions; "
                f"set --set embedding.dim={known} (or leave embedding.dim null to take the vectors' size)"
            )
        return self
