"""The pipeline test's steps run by hand: millimetres scaled to centimetres
(as float32, what the ONNX step reads), the scikit-learn model the ONNX file
was exported from, and the business rule. Prints JSON.

Usage: python by_hand.py <dir with iris.joblib and iris-expected.json>
"""
import json
import sys
from pathlib import Path

import joblib
import numpy as np

SPECIES = ["setosa", "versicolor", "virginica"]


def main(out: Path) -> None:
    rows = np.array(json.loads((out / "iris-expected.json").read_text())["rows"], dtype=np.float64)
    rows_mm = np.round(rows * 10, 6)
    features = (rows_mm / 10).astype(np.float32)
    model = joblib.load(out / "iris.joblib")
    probabilities = model.predict_proba(features.astype(np.float64))
    labels = probabilities.argmax(axis=1)
    decisions = [
        SPECIES[label] if p.max() >= 0.9 else f"review:{SPECIES[label]}" for label, p in zip(labels, probabilities)
    ]
    print(json.dumps({
        "rows_mm": rows_mm.tolist(),
        "labels": labels.tolist(),
        "probabilities": probabilities.tolist(),
        "decisions": decisions,
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
