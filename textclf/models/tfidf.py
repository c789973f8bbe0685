"""TF-IDF + logistic-regression baseline.

The neural models are only interesting if they beat a strong linear model on
the same split; this module provides that reference point. Artifacts are
written as JSON and ``.npy`` files only (no pickle), so loading a model cannot
execute code and the files stay readable across library versions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textclf.core.errors import DataError, ModelError

__all__ = ["C_GRID", "TfidfBaseline"]

#: Regularisation strengths tried when ``C=None`` and validation data is given.
C_GRID: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

_FORMAT_VERSION = 1
_CONFIG_FILE = "config.json"
_VOCAB_FILE = "vocabulary.json"
_IDF_FILE = "idf.npy"
_COEF_FILE = "coef.npy"
_INTERCEPT_FILE = "intercept.npy"
_CLASSES_FILE = "classes.npy"
_ARTIFACT_FILES = (_CONFIG_FILE, _VOCAB_FILE, _IDF_FILE, _COEF_FILE, _INTERCEPT_FILE, _CLASSES_FILE)

# Constructor arguments; saved to config.json and passed back on load.
_PARAM_NAMES = (
    "ngram_max",
    "C",
    "max_features",
    "min_df",
    "sublinear_tf",
    "lowercase",
    "class_weight",
    "seed",
)


class TfidfBaseline:
    """Word n-gram TF-IDF features followed by multinomial logistic regression.

    Parameters
    ----------
    ngram_max:
        Largest word n-gram (features use ``ngram_range=(1, ngram_max)``).
    C:
        Inverse regularisation strength. ``None`` picks it from :data:`C_GRID`
        by validation accuracy when validation data is passed to :meth:`fit`,
        else uses 1.0.
    max_features, min_df, sublinear_tf, lowercase:
        Passed to :class:`sklearn.feature_extraction.text.TfidfVectorizer`.
    class_weight:
        ``None`` or ``"balanced"``, passed to
        :class:`sklearn.linear_model.LogisticRegression`.
    seed:
        ``random_state`` of the logistic regression.

    Attributes set by :meth:`fit` (and :meth:`load`): ``vectorizer_``,
    ``model_``, ``classes_``, ``C_`` (the strength actually used) and
    ``val_scores_`` (``{C: validation accuracy}``, empty without a search).
    """

    def __init__(
        self,
        ngram_max: int = 2,
        C: float | None = None,
        max_features: int | None = 200_000,
        min_df: int | float = 1,
        sublinear_tf: bool = True,
        lowercase: bool = True,
        class_weight: str | dict | None = None,
        seed: int = 0,
    ) -> None:
        self.ngram_max = ngram_max
        self.C = C
        self.max_features = max_features
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.class_weight = class_weight
        self.seed = seed

    # ------------------------------------------------------------------ build

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as saved in ``config.json``."""
        return {name: getattr(self, name) for name in _PARAM_NAMES}

    def _vectorizer_kwargs(self) -> dict[str, Any]:
        return {
            "ngram_range": (1, int(self.ngram_max)),
            "sublinear_tf": bool(self.sublinear_tf),
            "lowercase": bool(self.lowercase),
            # Pinned explicitly so a saved model reloads with the same features
            # even if sklearn's defaults change.
            "analyzer": "word",
            "token_pattern": r"(?u)\b\w\w+\b",
            "norm": "l2",
            "use_idf": True,
            "smooth_idf": True,
            "dtype": np.float64,
        }

    def _new_vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(max_features=self.max_features, min_df=self.min_df, **self._vectorizer_kwargs())

    def _new_model(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=2000, class_weight=self.class_weight, random_state=self.seed)

    # -------------------------------------------------------------------- fit

    def fit(
        self,
        train_texts: Sequence[str],
        train_y: Any,
        val_texts: Sequence[str] | None = None,
        val_y: Any = None,
    ) -> TfidfBaseline:
        """Fit the vectoriser on ``train_texts`` and the classifier on its features.

        With ``C=None`` and validation data, one model per value of
        :data:`C_GRID` is trained on the training set only and the one with
        the best validation accuracy is kept (ties go to the lower validation
        log-loss, then to the smaller ``C``). Validation data never enters the
        vocabulary, the IDF weights or the final model's training set.
        """
        train_texts = list(train_texts)
        y = np.asarray(train_y)
        if len(train_texts) != len(y):
            raise ValueError(f"{len(train_texts)} training texts but {len(y)} labels")
        if len(train_texts) == 0:
            raise DataError("the baseline needs at least one training text")
        if len(np.unique(y)) < 2:
            raise DataError("training labels contain a single class; need at least two")
        has_val = val_texts is not None and val_y is not None
        if (val_texts is None) != (val_y is None):
            raise ValueError("pass both val_texts and val_y, or neither")

        vectorizer = self._new_vectorizer()
        try:
            X = vectorizer.fit_transform(train_texts)
        except ValueError as exc:  # e.g. "empty vocabulary"
            raise DataError(f"cannot build TF-IDF features from the training texts: {exc}") from exc
        # stop_words_ lists every pruned n-gram: large, and unused by transform.
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_

        val_scores: dict[float, float] = {}
        if self.C is not None:
            chosen_C = float(self.C)
            model = self._new_model(chosen_C).fit(X, y)
        elif not has_val:
            chosen_C = 1.0
            model = self._new_model(chosen_C).fit(X, y)
        else:
            from sklearn.metrics import log_loss

            val_texts = list(val_texts)
            vy = np.asarray(val_y)
            if len(val_texts) != len(vy) or len(vy) == 0:
                raise ValueError(f"{len(val_texts)} validation texts but {len(vy)} labels")
            X_val = vectorizer.transform(val_texts)
            best_key: tuple[float, float, float] | None = None
            model = None
            chosen_C = C_GRID[0]
            for C in C_GRID:
                candidate = self._new_model(C).fit(X, y)
                acc = float(np.mean(candidate.predict(X_val) == vy))
                proba = candidate.predict_proba(X_val)
                # Validation labels unseen in training make log-loss undefined;
                # fall back to accuracy-only ranking then.
                if np.isin(vy, candidate.classes_).all():
                    loss = float(log_loss(vy, proba, labels=candidate.classes_))
                else:
                    loss = math.inf
                val_scores[C] = acc
                key = (-acc, loss, C)
                if best_key is None or key < best_key:
                    best_key, model, chosen_C = key, candidate, C

        self.vectorizer_ = vectorizer
        self.model_ = model
        self.classes_ = np.asarray(model.classes_)
        self.C_ = float(chosen_C)
        self.val_scores_ = val_scores
        return self

    # ---------------------------------------------------------------- predict

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_") or not hasattr(self, "vectorizer_"):
            raise RuntimeError("TfidfBaseline is not fitted yet; call fit() or TfidfBaseline.load() first")

    def _features(self, texts: Sequence[str]):
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, got a single string")
        return self.vectorizer_.transform(list(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape ``(N, n_classes)``, columns in ``classes_`` order."""
        self._check_fitted()
        return self.model_.predict_proba(self._features(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class labels (integers from ``classes_``)."""
        proba = self.predict_proba(texts)
        return self.classes_[proba.argmax(axis=1)]

    def num_parameters(self) -> int:
        """Number of learned weights: ``coef_`` plus ``intercept_``."""
        self._check_fitted()
        return int(self.model_.coef_.size + self.model_.intercept_.size)

    # ------------------------------------------------------------ persistence

    def save(self, directory: str | Path) -> Path:
        """Write the model as JSON + ``.npy`` files into ``directory``; returns it."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)

        config = {
            "format_version": _FORMAT_VERSION,
            "params": self.get_params(),
            "C_": self.C_,
            "val_scores_": [[c, acc] for c, acc in self.val_scores_.items()],
        }
        (directory / _CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        vocabulary = {term: int(index) for term, index in self.vectorizer_.vocabulary_.items()}
        (directory / _VOCAB_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        np.save(directory / _IDF_FILE, np.asarray(self.vectorizer_.idf_, dtype=np.float64), allow_pickle=False)
        np.save(directory / _COEF_FILE, np.asarray(self.model_.coef_, dtype=np.float64), allow_pickle=False)
        np.save(directory / _INTERCEPT_FILE, np.asarray(self.model_.intercept_, dtype=np.float64), allow_pickle=False)
        np.save(directory / _CLASSES_FILE, np.asarray(self.classes_, dtype=np.int64), allow_pickle=False)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TfidfBaseline:
        """Rebuild a model written by :meth:`save`.

        Raises :class:`~textclf.errors.ModelError` naming the offending file
        when one is missing, unreadable or inconsistent with the others.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelError(f"baseline model directory not found: {directory}")

        config = _read_json(directory / _CONFIG_FILE)
        if not isinstance(config, dict) or not isinstance(config.get("params"), dict):
            raise ModelError(f"{directory / _CONFIG_FILE}: expected an object with a 'params' mapping")
        if config.get("format_version") != _FORMAT_VERSION:
            raise ModelError(
                f"{directory / _CONFIG_FILE}: unsupported format_version {config.get('format_version')!r}"
                f" (expected {_FORMAT_VERSION})"
            )
        params = {name: config["params"][name] for name in _PARAM_NAMES if name in config["params"]}
        if isinstance(params.get("class_weight"), dict):
            # JSON object keys are strings; sklearn needs the integer labels back.
            try:
                params["class_weight"] = {int(k): float(v) for k, v in params["class_weight"].items()}
            except (TypeError, ValueError) as exc:
                raise ModelError(f"{directory / _CONFIG_FILE}: malformed class_weight ({exc})") from exc
        try:
            model = cls(**params)
            chosen_C = float(config["C_"])
            val_scores = {float(c): float(acc) for c, acc in config.get("val_scores_", [])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{directory / _CONFIG_FILE}: malformed config ({exc})") from exc

        vocabulary = _read_json(directory / _VOCAB_FILE)
        if (
            not isinstance(vocabulary, dict)
            or not all(isinstance(t, str) and type(i) is int for t, i in vocabulary.items())
            or sorted(vocabulary.values()) != list(range(len(vocabulary)))
        ):
            raise ModelError(f"{directory / _VOCAB_FILE}: expected a mapping term -> index 0..n-1")
        n_features = len(vocabulary)

        idf = _read_npy(directory / _IDF_FILE, ndim=1)
        coef = _read_npy(directory / _COEF_FILE, ndim=2)
        intercept = _read_npy(directory / _INTERCEPT_FILE, ndim=1)
        classes = _read_npy(directory / _CLASSES_FILE, ndim=1)
        if idf.shape[0] != n_features:
            raise ModelError(f"{directory / _IDF_FILE}: {idf.shape[0]} weights for {n_features} vocabulary terms")
        if coef.shape[1] != n_features:
            raise ModelError(f"{directory / _COEF_FILE}: {coef.shape[1]} columns for {n_features} vocabulary terms")
        # Binary logistic regression stores one row of weights, multi-class one per class.
        expected_rows = 1 if classes.shape[0] == 2 else classes.shape[0]
        if classes.shape[0] < 2 or coef.shape[0] != expected_rows:
            raise ModelError(f"{directory / _COEF_FILE}: {coef.shape[0]} rows for {classes.shape[0]} classes")
        if intercept.shape[0] != coef.shape[0]:
            raise ModelError(f"{directory / _INTERCEPT_FILE}: {intercept.shape[0]} values for {coef.shape[0]} rows")
        if not np.issubdtype(classes.dtype, np.integer):
            raise ModelError(f"{directory / _CLASSES_FILE}: expected integer class labels, got {classes.dtype}")

        # sklearn's supported way to restore a TfidfVectorizer without
        # refitting: fixed vocabulary in the constructor, then set idf_.
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(vocabulary=vocabulary, **model._vectorizer_kwargs())
        vectorizer.idf_ = idf

        lr = model._new_model(chosen_C)
        lr.classes_ = classes
        lr.coef_ = coef
        lr.intercept_ = intercept
        lr.n_features_in_ = n_features

        model.vectorizer_ = vectorizer
        model.model_ = lr
        model.classes_ = classes
        model.C_ = chosen_C
        model.val_scores_ = val_scores
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"TfidfBaseline({args})"


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"baseline model file missing: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc


def _read_npy(path: Path, ndim: int) -> np.ndarray:
    if not path.is_file():
        raise ModelError(f"baseline model file missing: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ModelError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray) or array.ndim != ndim:
        raise ModelError(f"{path}: expected a {ndim}-D array, got shape {getattr(array, 'shape', None)}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ModelError(f"{path}: contains NaN or infinite values")
    return array
