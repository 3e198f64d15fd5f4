"""Trains the benchmark's iris classifier and exports it twice.

    python train_iris.py <out-dir>

Writes <out-dir>/forest.joblib (a 300-tree random forest on the same data,
the CPU-heavy model of scenario 15), <out-dir>/iris.joblib (scikit-learn, for redesmyn's Python handler,
MLServer and FastAPI), <out-dir>/iris.onnx (the same model converted with
skl2onnx, for onnxruntime-node and redesmyn's ONNX runtime) and
<out-dir>/iris-expected.json (scikit-learn's own predict and predict_proba on
every row, which the ONNX runtime's tests compare against), and
<out-dir>/iris-zipmap.onnx (skl2onnx's default export, whose probabilities are
a sequence of maps, which the ONNX runtime refuses with a clear message). The data is scikit-learn's bundled copy of
the iris set, so nothing is downloaded. The model is deliberately cheap (a
logistic regression): the benchmark measures the serving stack around it.
"""

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    joblib.dump(model, out / "iris.joblib")

    onx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    (out / "iris.onnx").write_bytes(onx.SerializeToString())

    # The two exports must agree, or the scenarios would not compare like with like.
    import onnx

    onnx.checker.check_model(onx)
    try:
        import onnxruntime as ort  # optional: only checked when present
    except ImportError:
        ort = None
    if ort is not None:
        sess = ort.InferenceSession(onx.SerializeToString())
        labels = sess.run(None, {"input": X.astype(np.float32)})[0]
        assert (labels == model.predict(X)).mean() > 0.99

    meta = {
        "model": "LogisticRegression(max_iter=1000) on the iris set (150 rows, 4 features, 3 classes)",
        "train_accuracy": float(model.score(X, y)),
        "scikit_learn": sklearn.__version__,
        "onnx_inputs": ["input: float32[N, 4]"],
        "onnx_outputs": [o.name for o in onx.graph.output],
    }
    (out / "iris.json").write_text(json.dumps(meta, indent=2) + "\n")

    # The rows as float32 (what the ONNX model computes in), so both sides see
    # the same inputs.
    rows = X.astype(np.float32).astype(np.float64)
    expected = {
        "rows": rows.tolist(),
        "labels": model.predict(rows).tolist(),
        "probabilities": model.predict_proba(rows).tolist(),
    }
    (out / "iris-expected.json").write_text(json.dumps(expected) + "\n")
    zipmap = to_onnx(model, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=17)
    (out / "iris-zipmap.onnx").write_bytes(zipmap.SerializeToString())

    # The CPU-heavy model of scenario 15: predict dominates, so the serving
    # stack's cost hides behind it and only more cores help.
    forest = RandomForestClassifier(n_estimators=300, random_state=0).fit(X, y)
    joblib.dump(forest, out / "forest.joblib")
    print(json.dumps(meta))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".models"))
