"""Encoder families, the classifier and the TF-IDF baseline."""
