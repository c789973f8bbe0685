"""Trained models in use: a classifier and an encoder on raw text, and the MLflow pyfunc that serves them (logged from code, no pickle)."""
