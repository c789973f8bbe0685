"""MLflow: the store, runs and what they record, logged models, model references, past runs."""
