"""Model files for the management suite, made by the real libraries.

root/artifacts/iris1.joblib  LogisticRegression on iris
root/artifacts/iris2.joblib  DecisionTreeClassifier on iris
outside/evil.joblib          a pickle that, when loaded, creates outside/PWNED
                             (pickles are code: it must never be opened)
Prints the expected predictions of both models for the first rows.
"""

import json
import os
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


root, outside = sys.argv[1], sys.argv[2]
X, y = load_iris(return_X_y=True)
os.makedirs(os.path.join(root, "artifacts"), exist_ok=True)
os.makedirs(outside, exist_ok=True)
m1 = LogisticRegression(max_iter=1000).fit(X, y)
m2 = DecisionTreeClassifier(random_state=0, max_depth=1).fit(X, y)
joblib.dump(m1, os.path.join(root, "artifacts", "iris1.joblib"))
joblib.dump(m2, os.path.join(root, "artifacts", "iris2.joblib"))
joblib.dump(Evil(os.path.join(outside, "PWNED")), os.path.join(outside, "evil.joblib"))
rows = X[[0, 60, 120]]
print(json.dumps({"rows": rows.tolist(), "1": m1.predict(rows).tolist(), "2": m2.predict(rows).tolist()}))
