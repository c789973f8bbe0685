"""Text to token ids and vectors: tokenizers, pretrained word vectors, length-bucketed batches."""
