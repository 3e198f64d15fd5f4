"""Makes the example repository's model files with the libraries installed:
scikit-learn (iris/1 and iris/2), and when present XGBoost, LightGBM, an ONNX
export of a scikit-learn model (skl2onnx) and a Keras model (TensorFlow):
pip install xgboost-cpu lightgbm skl2onnx tensorflow-cpu.

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
if importlib.util.find_spec("skl2onnx"):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    classifier = LogisticRegression(max_iter=1000).fit(X, y)
    exported = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(classifier): {"zipmap": False}},  # plain tensors, not a sequence of maps
        target_opset=17,
    )
    (here / "iris-onnx" / "model.onnx").write_bytes(exported.SerializeToString())
else:
    print("skl2onnx is not installed (pip install skl2onnx): iris-onnx has no model file")
if importlib.util.find_spec("tensorflow"):
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    net.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    net.fit(X.astype("float32"), y, epochs=60, verbose=0)
    net.save(here / "iris-keras" / "model.keras")
else:
    print("tensorflow is not installed (pip install tensorflow-cpu): iris-keras has no model file")
