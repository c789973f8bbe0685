"""Trained models as MLflow models: a pyfunc logged *from code* (no pickle) with the model folder as its artifact.

The logged model is portable: it carries a copy of the ``textclf`` package
(``code_paths``; MLflow puts it on ``sys.path`` before it runs
``model_code.py``), so ``mlflow.pyfunc.load_model`` and ``mlflow models
serve`` work where textclf is not installed, with the very code that trained
it. Its requirements are the libraries that code imports to serve, pinned to
the versions installed when it was logged (``==``), and never ``textclf``
itself, which is not on PyPI and travels as code instead.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path

# Distributions serving imports: model_code.py (mlflow, pandas) and what
# textclf.serving.classifier reaches (torch, tokenizers, safetensors, numpy;
# the TF-IDF baseline: scikit-learn, scipy; the model folder's config: pydantic, pyyaml).
SERVING_DISTRIBUTIONS = (
    "mlflow",
    "torch",
    "tokenizers",
    "safetensors",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pydantic",
    "pyyaml",
)


def pinned_requirements() -> list[str]:
    """``name==version`` for each serving distribution, at the installed version.

    A local version label (torch's ``+cpu``) is dropped, as MLflow itself does:
    no public index serves ``2.13.0+cpu``, and ``==2.13.0`` matches that build
    (PEP 440); pick the CPU wheels with ``PIP_EXTRA_INDEX_URL`` where it matters.
    """
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in SERVING_DISTRIBUTIONS]


def package_copy(dest: Path) -> Path:
    """A copy of the installed textclf package under ``dest`` (without bytecode caches), for ``code_paths``."""
    target = dest / "textclf"
    package = Path(__file__).resolve().parents[1]  # textclf/ (this is textclf/tracking/models.py)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def log_model(model_dir: Path, example_texts: list[str], *, step: int = 0):
    """Log the model folder as an MLflow pyfunc model from code (no pickle); returns MLflow's ModelInfo.

    ``info.model_uri`` is ``models:/m-…`` and ``info.model_id`` the LoggedModel's id.
    """
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from textclf.serving import model_code
    from textclf.serving.classifier import Classifier

    example = pd.DataFrame({"text": example_texts[:3]})
    clf = Classifier.from_folder(model_dir)
    out = clf.predict_table(example["text"].tolist())
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=model_code.__file__,
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(package_copy(Path(tmp)))],
            signature=infer_signature(example, out),
            input_example=example,
            pip_requirements=pinned_requirements(),
            step=step,
        )
