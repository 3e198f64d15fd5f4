"""Writes bare model artifacts as KServe's storage initializer leaves them
(one file in a folder, no model-settings.json) and what each library's own
predict answers on the test rows.

Usage: python make_artifacts.py <dir>   (writes <dir>/<name>/<file> and <dir>/expected.json)
"""
import json
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

d = root / "xgboost"
d.mkdir(parents=True, exist_ok=True)
booster = xgb.train({"objective": "multi:softmax", "num_class": 3, "max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=5)
booster.save_model(d / "model.json")
expected["xgboost"] = booster.predict(xgb.DMatrix(rows)).tolist()

(root / "expected.json").write_text(json.dumps(expected))
