"""textclf: compare RNN, GRU, LSTM, stacked and bidirectional text classifiers (and a CNN) on your data.

The library surface::

    import textclf
    result = textclf.run_pipeline("compare", overrides=["data.source=reviews.csv"])   # as `textclf run`
    result.summary["best_variant"], result.parent_run_id

    clf = textclf.load_model("models:/reviews@champion")   # or a folder, runs:/RUN_ID, ...
    clf.predict(["a lovely film"]), clf.predict_proba(["a lovely film"])
    enc = textclf.load_encoder("runs:/RUN_ID")
    enc.embed(["a lovely film"])                           # (1, encoder output size)

    cfg = textclf.load_config(overrides=["encoder.cell=gru"])   # a resolved, validated config

    textclf.register_encoder("bag", EncoderFamily(...))       # extension points (docs/extending.md)
    textclf.register_metric("balanced_accuracy", Metric(..., compare=True))
    textclf.register_stat_test("sign", StatTest(...))

Imports are lazy so ``import textclf`` (and the CLI's start-up) stays fast.
The package is layered (see docs/architecture.md): ``cli`` → ``pipeline``
→ ``tracking`` / ``analysis`` → ``serving`` → ``training`` → ``models`` →
``text`` → ``data`` → ``core``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textclf._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from textclf.analysis.contrasts import StatTest
    from textclf.core.metrics import Metric
    from textclf.models.registry import EncoderFamily
    from textclf.pipeline.config import Config
    from textclf.pipeline.experiment import PipelineResult
    from textclf.serving.classifier import Classifier, Encoder

__all__ = [
    "__version__",
    "load_config",
    "load_encoder",
    "load_model",
    "register_encoder",
    "register_metric",
    "register_stat_test",
    "run_pipeline",
]


def register_encoder(name: str, family: EncoderFamily) -> None:
    """Add an encoder family (``encoder.cell: NAME``); see :class:`textclf.models.registry.EncoderFamily`."""
    from textclf.models.registry import ENCODERS

    ENCODERS.register(name, family)


def register_metric(name: str, metric: Metric) -> None:
    """Add a metric (``compare=True``: a column of the comparison); see :class:`textclf.core.metrics.Metric`."""
    from textclf.core.metrics import METRICS

    METRICS.register(name, metric)


def register_stat_test(name: str, test: StatTest) -> None:
    """Add a statistical test a metric can choose (``Metric(..., test=NAME)``); see :class:`textclf.analysis.contrasts.StatTest`."""
    from textclf.analysis.contrasts import STAT_TESTS

    STAT_TESTS.register(name, test)


def load_model(
    ref: str,
    *,
    tracking_uri: str | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    allow_failed: bool = False,
    engine: str = "auto",
) -> Classifier:
    """A trained classifier from any model reference.

    ``ref``: a model folder, ``runs:/RUN_ID[/model]``, ``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``models:/m-ID``, ``PARENT_RUN_ID:VARIANT``,
    ``PARENT_RUN_ID:best`` or ``best`` (see :mod:`textclf.tracking.refs`); the
    model of a FAILED or deleted run only with ``allow_failed``. MLflow references use
    ``tracking_uri`` (default: ``MLFLOW_TRACKING_URI``, else the project store).
    Loading reads JSON and safetensors only; it never unpickles or runs code
    from the artifact. Raises :class:`textclf.core.errors.ModelError` when the
    reference or the folder is wrong. A model from MLflow is downloaded once into
    ``<cache_dir>/models/`` (default: ``$TEXTCLF_CACHE_DIR``, else ``.textclf``).
    ``engine`` (auto, torch, onnx): see :class:`textclf.serving.classifier.Classifier`;
    auto runs a folder exported with ``--onnx`` without torch.
    """
    from textclf.serving.classifier import Classifier
    from textclf.tracking.refs import load_folder

    folder, resolved = load_folder(
        ref, tracking_uri=tracking_uri, cache_dir=cache_dir, allow_failed=allow_failed, weights=engine == "torch"
    )
    clf = Classifier(folder, device=device, engine=engine)
    clf.ref = resolved
    return clf


def load_encoder(
    ref: str,
    *,
    tracking_uri: str | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    allow_failed: bool = False,
    engine: str = "auto",
) -> Encoder:
    """The trained embedding + encoder of a neural model, for ``embed(texts)`` (``engine`` as in :func:`load_model`)."""
    from textclf.serving.classifier import Encoder

    return Encoder(
        load_model(
            ref, tracking_uri=tracking_uri, device=device, cache_dir=cache_dir, allow_failed=allow_failed, engine=engine
        )
    )


def load_config(*args: Any, **kwargs: Any) -> Config:
    """Resolve a variant config: defaults ⊕ params.yaml ⊕ a YAML file ⊕ ``overrides`` (see :func:`textclf.pipeline.config.load_config`)."""
    from textclf.pipeline.config import load_config as _load_config

    return _load_config(*args, **kwargs)


def run_pipeline(
    pipeline: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    params_file: str | Path | None = None,
    variants: list[str] | None = None,
    cache_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    force: bool = False,
    register: str | None = None,
    executor: str = "local",
    jobs: int | str = "auto",
    quiet: bool = True,
) -> PipelineResult:
    """Run a pipeline exactly as ``textclf run PIPELINE --set ... --variant ...`` does.

    ``pipeline``: a path or the name of a file in ``pipelines/`` (default:
    ``compare``); ``overrides``: ``["key=value", ...]`` as ``--set``;
    ``variants``: run only these. Returns the :class:`~textclf.pipeline.experiment.PipelineResult`
    (``summary`` as in summary.json, ``parent_run_id``, per-(variant, seed) ``outputs``).
    Bad input raises :class:`textclf.core.errors.TextclfError` naming the key or file.
    """
    from textclf.core.cache import StageCache
    from textclf.pipeline.experiment import run_pipeline as _run
    from textclf.pipeline.spec import load_pipeline

    pipe = load_pipeline(pipeline, overrides=overrides, params_file=params_file, only=variants)
    return _run(
        pipe,
        cache=StageCache(cache_dir),
        tracking_uri=tracking_uri,
        force=force,
        register=register,
        executor=executor,
        jobs=jobs,
        quiet=quiet,
    )
