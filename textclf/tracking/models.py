"""Trained models as MLflow models: a pyfunc logged *from code* (no pickle) with the model folder as its artifact."""

from __future__ import annotations

from pathlib import Path

PIP_REQUIREMENTS = ["textclf", "torch", "tokenizers", "safetensors", "pandas", "numpy", "scikit-learn"]


def log_model(model_dir: Path, example_texts: list[str]) -> str:
    """Log the model folder as an MLflow pyfunc model from code (no pickle); returns the model URI."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from textclf.serving import model_code
    from textclf.serving.classifier import Classifier

    example = pd.DataFrame({"text": example_texts[:3]})
    clf = Classifier.from_folder(model_dir)
    out = clf.predict_table(example["text"].tolist())
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=model_code.__file__,
        artifacts={"model_dir": str(model_dir)},
        signature=infer_signature(example, out),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return info.model_uri
