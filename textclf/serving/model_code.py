"""MLflow "model from code" entry point for a textclf model.

MLflow logs this file (not a pickled object) together with the model folder
as the artifact ``model_dir``. At load / serve time MLflow executes this
file, which is textclf's own code, and :meth:`TextclfModel.load_context`
reads the folder with safetensors + JSON only.

Input: a DataFrame with a ``text`` column (or a list of strings).
Output: a DataFrame with ``label`` and one ``proba_<class>`` column per class.

The signature says ``text: string (required)``, and MLflow's schema check
lets numbers, booleans, objects and nulls through a DataFrame's object column
(``dataframe_records``, ``dataframe_split``, a DataFrame passed to
``predict``): they are refused here, as a client error naming the row,
instead of being scored as ``"5"`` or ``""``. (The ``inputs`` / ``instances``
request forms are cast to the signature's types by MLflow's server before the
model runs, so ``5`` arrives as ``"5"`` there; the model cannot tell.)
No error carries a traceback to the client: MLflow's
scoring server puts the traceback of any other exception into the 400 body
(with the server's file paths); an unexpected failure is logged on the server
and the client gets a short message.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

log = logging.getLogger(__name__)


def _texts(model_input) -> list[str]:
    """The texts of a request; MlflowException (400, INVALID_PARAMETER_VALUE) naming the first bad value."""
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            values = model_input["text"].tolist()
        elif model_input.shape[1] == 1:
            values = model_input.iloc[:, 0].tolist()
        else:
            raise MlflowException.invalid_parameter_value(
                f"expected a 'text' column; got columns {[str(c) for c in model_input.columns][:20]}"
            )
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, (list, tuple, pd.Series)):
        values = list(model_input)
    else:
        raise MlflowException.invalid_parameter_value(
            f"expected a DataFrame with a 'text' column or a list of strings; got {type(model_input).__name__}"
        )
    for i, value in enumerate(values):
        if not isinstance(value, str):  # numpy.str_ is a str
            got = "null" if value is None or (isinstance(value, float) and value != value) else type(value).__name__
            raise MlflowException.invalid_parameter_value(
                f"text of row {i} is {got}, not a string ({len(values)} rows); every text must be a string "
                '(send an empty text as "")'
            )
    return values


class TextclfModel(PythonModel):
    def load_context(self, context) -> None:
        from textclf.serving.classifier import Classifier

        self.clf = Classifier.from_folder(context.artifacts["model_dir"])

    # The pd.DataFrame hint tells MLflow not to infer a schema from the hint (the
    # signature is logged with the model); lists and str are still accepted.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts = _texts(model_input)
        try:
            return self.clf.predict_table(texts)
        except Exception:
            log.exception("textclf model failed on a request of %d texts", len(texts))
            raise MlflowException("the model failed on this request; the server's log has the details") from None  # 500


mlflow.models.set_model(TextclfModel())
