"""Writes bare model artifacts as KServe's storage initializer leaves them
(one file in a folder, no model-settings.json) and what each library's own
predict answers on the test rows.

Usage: python make_artifacts.py <dir>   (writes <dir>/<name>/<file> and <dir>/expected.json)
"""
import json
import pickle
import sys
from pathlib import Path

import joblib
import xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

root = Path(sys.argv[1])
X, y = load_iris(return_X_y=True)
rows = X[[0, 60, 120, 77]]
expected = {"rows": rows.tolist()}

d = root / "sklearn"
d.mkdir(parents=True, exist_ok=True)
clf = LogisticRegression(max_iter=1000).fit(X, y)
joblib.dump(clf, d / "model.joblib")
expected["sklearn"] = clf.predict(rows).tolist()
# The rows __test__/v2-clients/kserve_client.py sends.
expected["sklearn_kserve_client"] = clf.predict([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]).tolist()

# An MLflow model folder as mlflow.sklearn.save_model lays it out: MLmodel and a pickle.
d = root / "mlflow"
d.mkdir(parents=True, exist_ok=True)
with open(d / "model.pkl", "wb") as f:
    pickle.dump(clf, f)
(d / "MLmodel").write_text(
    "artifact_path: model\n"
    "flavors:\n"
    "  python_function:\n"
    "    loader_module: mlflow.sklearn\n"
    "    model_path: model.pkl\n"
    "    python_version: 3.11.7\n"
    "  sklearn:\n"
    "    code: null\n"
    "    pickled_model: model.pkl\n"
    "    serialization_format: cloudpickle\n"
    "    sklearn_version: 1.9.1\n"
    "mlflow_version: 2.22.0\n"
)

d = root / "xgboost"
d.mkdir(parents=True, exist_ok=True)
booster = xgb.train({"objective": "multi:softmax", "num_class": 3, "max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=5)
booster.save_model(d / "model.json")
expected["xgboost"] = booster.predict(xgb.DMatrix(rows)).tolist()

(root / "expected.json").write_text(json.dumps(expected))
