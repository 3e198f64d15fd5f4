"""Makes the MLServer compatibility suite's model repositories with the real
libraries (MLServer's custom runtime pattern, MLflow's own save functions).

Usage: python make_models.py <dir>
Writes <dir>/same (folders both MLServer and redesmyn serve, for the
differential test), <dir>/bad (models that must fail alone, at load or at
predict) and <dir>/expected.json (what the libraries themselves answer).
"""
import json
import shutil
import sys
import textwrap
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

root = Path(sys.argv[1])
X, y = load_iris(return_X_y=True)
ROWS = X[[0, 60, 120, 77]]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
clf = LogisticRegression(max_iter=1000).fit(X, y)
expected = {"rows": ROWS.tolist(), "classes": clf.predict(ROWS).tolist(), "proba": clf.predict_proba(ROWS).tolist()}


def folder(repo, name, settings, files=None):
    d = root / repo / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "model-settings.json").write_text(json.dumps(settings, indent=2))
    for file, text in (files or {}).items():
        (d / file).write_text(textwrap.dedent(text))
    return d


for repo in ("same", "bad"):
    (root / repo).mkdir(parents=True, exist_ok=True)
    # In-process models on both servers (MLServer's parallel_workers: 0; redesmyn reads the same key).
    (root / repo / "settings.json").write_text(json.dumps({"debug": False, "metrics_endpoint": None, "parallel_workers": 0}))

# MLServer's built-in scikit-learn runtime, no declared inputs (the usual folder).
d = folder("same", "iris-sklearn", {"name": "iris-sklearn", "implementation": "mlserver_sklearn.SKLearnModel",
                                    "parameters": {"uri": "./model.joblib", "version": "v1"}})
joblib.dump(clf, d / "model.joblib")

# A custom runtime with NumpyCodec: one [-1, 4] input, two outputs of different shapes.
folder("same", "numpy-model", {
    "name": "numpy-model", "implementation": "models.NumpyModel", "max_batch_size": 16, "max_batch_time": 0.005,
    "parameters": {"uri": "./weights.json", "version": "2"},
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}],
}, {"weights.json": json.dumps({"w": [0.5, -1.0, 2.0, 0.25], "bias": 1.5}), "models.py": '''
    import json

    import numpy as np
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse
    from mlserver.utils import get_model_uri


    class NumpyModel(MLModel):
        async def load(self) -> bool:
            with open(await get_model_uri(self.settings)) as f:
                spec = json.load(f)
            self.w = np.asarray(spec["w"])
            self.bias = spec["bias"]
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            x = NumpyCodec.decode_input(payload.inputs[0])
            score = x @ self.w + self.bias
            doubled = x * 2
            return InferenceResponse(
                model_name=self.name,
                model_version=self.version,
                outputs=[NumpyCodec.encode_output("score", score), NumpyCodec.encode_output("doubled", doubled)],
            )
'''})

# PandasCodec: the request decoded as a DataFrame (content type from the settings), a DataFrame answered.
folder("same", "pandas-model", {
    "name": "pandas-model", "implementation": "models.PandasModel", "max_batch_size": 16, "max_batch_time": 0.005,
    "parameters": {"content_type": "pd"},
    "inputs": [{"name": "a", "datatype": "FP64", "shape": [-1, 1]},
               {"name": "n", "datatype": "INT64", "shape": [-1, 1]},
               {"name": "city", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"content_type": "str"}}],
}, {"models.py": '''
    import pandas as pd
    from mlserver import MLModel
    from mlserver.codecs import PandasCodec
    from mlserver.types import InferenceRequest, InferenceResponse


    class PandasModel(MLModel):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            df = self.decode_request(payload)
            assert isinstance(df, pd.DataFrame), type(df)
            # object dtype: MLServer 1.7's PandasCodec predates pandas 3's string dtype.
            out = pd.DataFrame({"total": df["a"] * df["n"], "label": (df["city"].str.upper() + "-" + df["n"].astype(str)).astype(object)})
            return PandasCodec.encode_response(self.name, out, self.version)
'''})

# StringCodec with decode_args: text in, text out. (No max_batch_size: MLServer 1.7's adaptive
# batching rejects a decode_args predict, "method is not bound"; redesmyn batches it.)
folder("same", "string-model", {
    "name": "string-model", "implementation": "models.Shout",
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "str"}}],
}, {"models.py": '''
    from typing import List

    from mlserver import MLModel
    from mlserver.codecs import StringCodec, decode_args


    class Shout(MLModel):
        async def load(self) -> bool:
            self.suffix = "!" if self.settings.parameters is None or self.settings.parameters.extra is None else self.settings.parameters.extra.get("suffix", "!")
            return True

        @decode_args
        async def predict(self, text: List[str]) -> List[str]:
            return [t.upper() + self.suffix for t in text]
'''})

# A streaming runtime: predict_stream yields one InferenceResponse per word (MLServer's text-streaming example).
folder("same", "stream-model", {
    "name": "stream-model", "implementation": "models.Words",
    "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "str"}}],
}, {"models.py": '''
    from typing import AsyncIterator

    from mlserver import MLModel
    from mlserver.codecs import StringCodec
    from mlserver.types import InferenceRequest, InferenceResponse


    class Words(MLModel):
        async def predict_stream(self, payloads: AsyncIterator[InferenceRequest]) -> AsyncIterator[InferenceResponse]:
            async for payload in payloads:
                text = StringCodec.decode_input(payload.inputs[0])[0]
                for i, word in enumerate(text.split(" ")):
                    yield InferenceResponse(
                        model_name=self.name,
                        outputs=[StringCodec.encode_output("output", [word if i == 0 else " " + word])],
                    )
'''})

# MLflow: a scikit-learn model saved with its signature (column names), served through pyfunc.
frame = pd.DataFrame(X, columns=COLUMNS)
d = root / "same" / "mlflow-sklearn"
mlflow.sklearn.save_model(clf, d / "model", signature=infer_signature(frame, clf.predict(frame)))
(d / "model-settings.json").write_text(json.dumps({"name": "mlflow-sklearn", "implementation": "mlserver_mlflow.MLflowRuntime",
                                                   "parameters": {"uri": "./model", "version": "1"}}, indent=2))

# MLflow pyfunc: a python_model class (its code saved with the model).
d = root / "same" / "mlflow-pyfunc"
d.mkdir(parents=True)
(d / "affine.py").write_text(textwrap.dedent('''
    import mlflow
    import pandas as pd


    class Affine(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return pd.DataFrame({"y": model_input["a"] * 3 + model_input["b"], "z": model_input["a"] - model_input["b"]})
'''))
sys.path.insert(0, str(d))
from affine import Affine  # noqa: E402

sample = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, -1.0]})
mlflow.pyfunc.save_model(d / "model", python_model=Affine(), code_paths=[str(d / "affine.py")],
                         signature=infer_signature(sample, Affine().predict(None, sample)))
(d / "model-settings.json").write_text(json.dumps({"name": "mlflow-pyfunc", "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "./model"}}, indent=2))
(d / "affine.py").unlink()  # the model carries its own copy (code_paths)

# Models that must fail alone.
BAD = '''
    import numpy as np
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceResponse


    class NotReady(MLModel):
        async def load(self):
            return False


    class Raises(MLModel):
        async def load(self):
            raise RuntimeError("weights are corrupt")


    class PredictRaises(MLModel):
        async def predict(self, payload):
            raise ValueError("cannot score this")


    class WrongRows(MLModel):
        async def predict(self, payload):
            x = NumpyCodec.decode_input(payload.inputs[0])
            return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", np.concatenate([x, x]))])


    class NotAResponse(MLModel):
        async def predict(self, payload):
            return {"outputs": []}


    class Fine(MLModel):
        async def predict(self, payload):
            x = NumpyCodec.decode_input(payload.inputs[0])
            return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", x + 1)])
'''
X1 = [{"name": "x", "datatype": "FP64", "shape": [-1]}]
for name, cls in [("not-ready", "NotReady"), ("load-raises", "Raises"), ("predict-raises", "PredictRaises"),
                  ("wrong-rows", "WrongRows"), ("not-a-response", "NotAResponse"), ("fine", "Fine")]:
    folder("bad", name, {"name": name, "implementation": f"bad_models.{cls}", "inputs": X1}, {"bad_models.py": BAD})
# The same MLflow model by redesmyn's runtime name (MLServer knows only the class), beside the failing ones.
d = folder("bad", "mlflow-by-name", {"name": "mlflow-by-name", "runtime": "mlflow", "parameters": {"uri": "./model"}})
shutil.copytree(root / "same" / "mlflow-pyfunc" / "model", d / "model")
# An MLServer-shaped class that does not import mlserver: predict(df) gets the polars batch.
folder("bad", "duck", {"name": "duck", "implementation": "duck.Tenfold", "inputs": X1}, {"duck.py": '''
    class Tenfold:
        def __init__(self, settings):
            self.settings = settings

        def load(self):
            return True

        def predict(self, df):
            return df["x"] * 10
'''})
# One of MLServer's own runtimes whose package is not installed.
folder("bad", "catboost", {"name": "catboost", "implementation": "mlserver_catboost.CatboostModel", "inputs": X1})
# MLServer lets a custom runtime omit its inputs; redesmyn needs them for its schema.
folder("bad", "no-inputs", {"name": "no-inputs", "implementation": "bad_models.Fine"}, {"bad_models.py": BAD})
d = folder("bad", "mlflow-malformed", {"name": "mlflow-malformed", "runtime": "mlflow", "parameters": {"uri": "./model"}})
(d / "model").mkdir()
(d / "model" / "MLmodel").write_text("flavors: [python_function\n  loader_module: :\n")
d = folder("bad", "mlflow-missing-flavour", {"name": "mlflow-missing-flavour", "runtime": "mlflow", "parameters": {"uri": "./model"}})
(d / "model").mkdir()
(d / "model" / "MLmodel").write_text(textwrap.dedent('''
    flavors:
      python_function:
        loader_module: mlflow.catboost
        model_path: model.cbm
      catboost:
        code: null
        model_type: CatBoostClassifier
'''))

(root / "expected.json").write_text(json.dumps(expected))
