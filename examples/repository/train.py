"""Makes the example repository's model files with the libraries installed:
scikit-learn (iris/1 and iris/2), XGBoost and LightGBM when present
(pip install xgboost-cpu lightgbm).

Usage: python examples/repository/train.py
"""
import importlib.util
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

here = Path(__file__).parent
X, y = load_iris(return_X_y=True)
for version, model in [(1, DecisionTreeClassifier(max_depth=2)), (2, LogisticRegression(max_iter=1000))]:
    (here / "iris" / str(version)).mkdir(parents=True, exist_ok=True)
    joblib.dump(model.fit(X, y), here / "iris" / str(version) / "model.joblib")
if importlib.util.find_spec("xgboost"):
    import xgboost as xgb

    booster = xgb.train({"objective": "multi:softmax", "num_class": 3}, xgb.DMatrix(X, label=y), num_boost_round=10)
    booster.save_model(here / "iris-xgboost" / "model.json")
else:
    print("xgboost is not installed (pip install xgboost-cpu): iris-xgboost has no model file")
if importlib.util.find_spec("lightgbm"):
    import lightgbm as lgb

    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, label=y), num_boost_round=10)
    booster.save_model(str(here / "iris-lightgbm" / "model.txt"))
else:
    print("lightgbm is not installed (pip install lightgbm): iris-lightgbm has no model file")
