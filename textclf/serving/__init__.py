"""MLflow pyfunc wrapper of a textclf model folder (logged from code, no pickle)."""
