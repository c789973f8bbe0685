"""MLflow "model from code" entry point for a textclf model.

MLflow logs this file (not a pickled object) together with the model folder
as the artifact ``model_dir``. At load / serve time MLflow executes this
file, which is textclf's own code, and :meth:`TextclfModel.load_context`
reads the folder with safetensors + JSON only.

Input: a DataFrame with a ``text`` column (or a list of strings).
Output: a DataFrame with ``label`` and one ``proba_<class>`` column per class.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class TextclfModel(PythonModel):
    def load_context(self, context) -> None:
        from textclf.serving.classifier import Classifier

        self.clf = Classifier.from_folder(context.artifacts["model_dir"])

    # The pd.DataFrame hint tells MLflow not to infer a schema from the hint (the
    # signature is logged with the model); lists and str are still accepted.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            if "text" in model_input.columns:
                col = model_input["text"]
            elif model_input.shape[1] == 1:
                col = model_input.iloc[:, 0]
            else:
                raise ValueError(f"expected a 'text' column; got columns {list(model_input.columns)}")
            texts = ["" if pd.isna(t) else str(t) for t in col.tolist()]  # a missing text is empty, not "nan"
        elif isinstance(model_input, str):
            texts = [model_input]
        else:
            texts = ["" if t is None else str(t) for t in model_input]
        return self.clf.predict_table(texts)


mlflow.models.set_model(TextclfModel())
