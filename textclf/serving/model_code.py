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
        from textclf.inference import Classifier

        self.clf = Classifier.from_folder(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, pd.DataFrame):
            if "text" in model_input.columns:
                texts = model_input["text"].astype(str).tolist()
            elif model_input.shape[1] == 1:
                texts = model_input.iloc[:, 0].astype(str).tolist()
            else:
                raise ValueError(f"expected a 'text' column; got columns {list(model_input.columns)}")
        elif isinstance(model_input, str):
            texts = [model_input]
        else:
            texts = [str(t) for t in model_input]
        proba = self.clf.predict_proba(texts)
        out = pd.DataFrame({"label": [self.clf.labels[i] for i in proba.argmax(axis=1)]})
        for j, name in enumerate(self.clf.labels):
            out[f"proba_{name}"] = proba[:, j].astype(float)
        return out


mlflow.models.set_model(TextclfModel())
