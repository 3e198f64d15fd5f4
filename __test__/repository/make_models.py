"""Makes the test model repository with the real libraries, and what each
library's own predict answers on the test rows.

Usage: python make_models.py <dir>   (prints nothing; writes <dir>/expected.json)
"""
import json
import pickle
import sys
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

root = Path(sys.argv[1])
X, y = load_iris(return_X_y=True)
ROWS = X[[0, 60, 120, 77]]
IRIS_INPUTS = [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
expected = {"rows": ROWS.tolist()}


def folder(name, settings, sub=None):
    d = root / name if sub is None else root / name / sub
    d.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        text = settings if isinstance(settings, str) else json.dumps(settings, indent=2)
        (d / "model-settings.json").write_text(text)
    return d


# scikit-learn with declared inputs and predict_proba.
clf = LogisticRegression(max_iter=1000).fit(X, y)
d = folder("iris-sklearn", {"name": "iris-sklearn", "runtime": "sklearn", "parameters": {"uri": "./model.joblib", "version": "1"},
                            "inputs": IRIS_INPUTS, "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
                            "columns": COLUMNS, "max_batch_size": 32, "max_batch_time": 0.002, "timeoutMs": 10000})
joblib.dump(clf, d / "model.joblib")
expected["iris-sklearn"] = clf.predict(ROWS).tolist()
d = folder("iris-proba", {"runtime": "sklearn", "method": "predict_proba", "parameters": {"uri": "model.pkl"}, "inputs": IRIS_INPUTS, "columns": COLUMNS})
with open(d / "model.pkl", "wb") as f:
    pickle.dump(clf, f)
expected["iris-proba"] = clf.predict_proba(ROWS).tolist()

# MLServer's sklearn example, unchanged in shape: an SVC on the digits, no declared inputs.
dx, dy = load_digits(return_X_y=True)
svc = SVC(gamma=0.001).fit(dx[: len(dx) // 2], dy[: len(dy) // 2])
d = folder("mnist-svm", {"name": "mnist-svm", "implementation": "mlserver_sklearn.SKLearnModel",
                         "parameters": {"uri": "./mnist-svm.joblib", "version": "v0.1.0"}})
joblib.dump(svc, d / "mnist-svm.joblib")
expected["digits"] = dx[-3:].tolist()
expected["mnist-svm"] = svc.predict(dx[-3:]).tolist()

# XGBoost (JSON booster) through MLServer's runtime name.
booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=10)
d = folder("iris-xgboost", {"name": "iris-xgboost", "implementation": "mlserver_xgboost.XGBoostModel", "parameters": {"uri": "./model.json"},
                            "inputs": [{"name": "predict", "datatype": "FP32", "shape": [-1, 4]}], "columns": COLUMNS})
booster.save_model(d / "model.json")
expected["iris-xgboost"] = booster.predict(xgb.DMatrix(ROWS.astype(np.float32))).tolist()

# LightGBM (text model).
lgbm = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7}, lgb.Dataset(X, label=y.astype(float)), num_boost_round=10)
d = folder("iris-lightgbm", {"runtime": "lightgbm", "parameters": {"uri": "model.txt"}, "inputs": IRIS_INPUTS, "columns": COLUMNS})
lgbm.save_model(str(d / "model.txt"))
expected["iris-lightgbm"] = lgbm.predict(ROWS).tolist()

# TensorFlow: one Keras model (a softmax over the iris classes), as a .keras file and as a SavedModel.
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras

keras.utils.set_random_seed(3)
net = keras.Sequential([keras.Input(shape=(4,), name="features"), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])
net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
net.fit(X.astype(np.float32), y, epochs=5, verbose=0)
d = folder("iris-keras", {"runtime": "tensorflow", "parameters": {"uri": "model.keras"}, "inputs": IRIS_INPUTS, "columns": COLUMNS})
net.save(d / "model.keras")
expected["iris-keras"] = net.predict(ROWS.astype(np.float32), verbose=0).tolist()
d = folder("iris-savedmodel", {"runtime": "tensorflow", "parameters": {"uri": "./saved"}, "inputs": IRIS_INPUTS, "columns": COLUMNS})
net.export(str(d / "saved"), verbose=False)
expected["iris-savedmodel"] = expected["iris-keras"]

# A custom Python class, MLServer's MLModel shape.
d = folder("custom-python", {"implementation": "my_model.Scaled", "parameters": {"uri": "./factor.txt"},
                             "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}]})
(d / "factor.txt").write_text("3")
(d / "my_model.py").write_text('''
import polars as pl


class Scaled:
    def __init__(self, settings):
        self.settings = settings

    async def load(self):
        with open(self.settings.parameters.uri) as f:
            self.factor = float(f.read())
        return True

    async def predict(self, df: pl.DataFrame) -> pl.Series:
        return df["x"] * self.factor
''')

# A TypeScript (JavaScript) module exporting load/predict.
d = folder("custom-ts", {"runtime": "typescript", "parameters": {"uri": "./model.mjs"},
                         "inputs": [{"name": "a", "datatype": "FP64", "shape": [-1]}, {"name": "b", "datatype": "FP64", "shape": [-1]}]})
(d / "model.mjs").write_text('''
export async function load(settings) {
  return { offset: 100 };
}
export function predict(batch, model) {
  const out = new Float64Array(batch.length);
  for (let i = 0; i < batch.length; i++) out[i] = batch.columns.a[i] * batch.columns.b[i] + model.offset;
  return out;
}
''')

# Versions: numbered folders under one model-settings.json, each answering its own constant.
from sklearn.dummy import DummyClassifier

versioned = {"runtime": "sklearn", "parameters": {"uri": "model.joblib"}, "inputs": IRIS_INPUTS, "columns": COLUMNS}
folder("iris-versions", {**versioned, "versionPolicy": {"latest": {"num_versions": 2}}})
for version, constant in [(1, 1), (2, 2), (3, 0)]:
    d = folder("iris-versions", None, str(version))
    joblib.dump(DummyClassifier(strategy="constant", constant=constant).fit(X, y), d / "model.joblib")
folder("iris-pinned", {**versioned, "versionPolicy": {"all": {}}, "defaultVersion": "1"})
for version in (1, 2):
    d = folder("iris-pinned", None, str(version))
    joblib.dump(DummyClassifier(strategy="constant", constant=version).fit(X, y), d / "model.joblib")
folder("iris-pinned", None, "3")  # a version whose artifact is missing fails alone

# Bad models: each must fail alone, with a message naming the file and key.
folder("bad-runtime", {"runtime": "tensorflow-magic", "parameters": {"uri": "x"}})
folder("bad-artifact", {"runtime": "sklearn", "parameters": {"uri": "./missing.joblib"}, "inputs": IRIS_INPUTS})
folder("bad-json", '{"runtime": "sklearn", ')
folder("bad-key", {"runtime": "sklearn", "parameters": {"uri": "m.joblib"}, "max_batch_sise": 4})
folder("bad-policy", {**versioned, "versionPolicy": {"newest": 2}})
folder("bad-policy", None, "1")
folder("bad-type", {"runtime": "sklearn", "parameters": {"uri": "m.joblib"}, "max_batch_size": "four"})
d = folder("bad-load", {"implementation": "broken.Model", "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}]})
(d / "broken.py").write_text('''
class Model:
    def __init__(self, settings):
        pass

    def load(self):
        raise RuntimeError("weights are corrupt")

    def predict(self, df):
        return df["x"]
''')

# Pipelines over custom-ts (a * b + 100): one that serves, three refused at load naming the step and the column.
folder("ts-twice", {"runtime": "pipeline", "steps": [
    {"name": "first", "model": "custom-ts"},
    {"name": "again", "model": "custom-ts", "inputs": {"a": "first"}},
]})
folder("bad-pipeline-unknown", {"runtime": "pipeline", "steps": [
    {"name": "first", "model": "custom-ts"},
    {"name": "missing", "model": "no-such-model"},
]})
folder("bad-pipeline-cycle", {"runtime": "pipeline", "steps": [
    {"name": "first", "model": "custom-ts"},
    {"name": "a", "model": "custom-ts", "inputs": {"a": "b"}},
    {"name": "b", "model": "custom-ts", "inputs": {"a": "a"}},
]})
folder("bad-pipeline-mismatch", {"runtime": "pipeline", "steps": [
    {"name": "first", "model": "custom-ts"},
    {"name": "second", "model": "custom-ts", "inputs": {"b": "c"}},
]})

(root / "expected.json").write_text(json.dumps(expected))
