"""textclf: compare RNN, GRU, LSTM, stacked and bidirectional text classifiers.

The library surface for using trained models::

    import textclf
    clf = textclf.load_model("models:/reviews@champion")   # or a folder, runs:/RUN_ID, ...
    clf.predict(["a lovely film"]), clf.predict_proba(["a lovely film"])
    enc = textclf.load_encoder("runs:/RUN_ID")
    enc.embed(["a lovely film"])                           # (1, hidden * directions)

Imports are lazy so ``import textclf`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from textclf.config import Config
    from textclf.inference import Classifier, Encoder

__all__ = ["__version__", "load_model", "load_encoder", "load_config"]


def load_model(ref: str, *, tracking_uri: str | None = None, device: str | None = None) -> "Classifier":
    """A trained classifier from any model reference.

    ``ref``: a model folder, ``runs:/RUN_ID[/model]``, ``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION`` or ``models:/m-ID``. MLflow references use
    ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI``, else the project store).
    Loading reads JSON and safetensors only; it never unpickles or runs code
    from the artifact. Raises :class:`textclf.errors.ModelError` when the
    reference or the folder is wrong.
    """
    from textclf.inference import Classifier
    from textclf.refs import load_folder

    folder, resolved = load_folder(ref, tracking_uri=tracking_uri)
    clf = Classifier(folder, device=device)
    clf.ref = resolved
    return clf


def load_encoder(ref: str, *, tracking_uri: str | None = None, device: str | None = None) -> "Encoder":
    """The trained embedding + recurrent encoder of a neural model, for ``embed(texts)``."""
    from textclf.inference import Encoder

    return Encoder(load_model(ref, tracking_uri=tracking_uri, device=device))


def load_config(*args: Any, **kwargs: Any) -> "Config":
    """Resolve a variant config: defaults ⊕ params.yaml ⊕ a YAML file ⊕ ``overrides`` (see :func:`textclf.config.load_config`)."""
    from textclf.config import load_config as _load_config

    return _load_config(*args, **kwargs)
