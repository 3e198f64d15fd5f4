"""Trains the iris example's classifiers on scikit-learn's bundled iris data
(no download) and saves them where the example server looks for them:

    models/iris/<run_id>/<model_id>/model.joblib

run 1 / model 1 is a logistic regression, run 1 / model 2 a random forest.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).parent / "models" / "iris"


def main() -> None:
    X, y = load_iris(return_X_y=True)
    models = {
        ("1", "1"): make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        ("1", "2"): RandomForestClassifier(n_estimators=50, random_state=0),
    }
    for (run_id, model_id), model in models.items():
        model.fit(X, y)
        path = ROOT / run_id / model_id / "model.joblib"
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path)
        print(f"trained {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}: "
              f"accuracy {model.score(X, y):.3f}")


if __name__ == "__main__":
    main()
