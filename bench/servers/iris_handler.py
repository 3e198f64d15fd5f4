"""redesmyn's Python handler for the iris benchmark: one predict call per batch.

The model is the same joblib file MLServer and FastAPI load (IRIS_MODEL).
"""

import os

import joblib
import polars as pl

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
_model = joblib.load(os.environ.get("IRIS_MODEL", ".models/iris.joblib"))


def predict(*args) -> pl.Series:
    """predict(df) or predict(model, df): the batch is the last argument."""
    df: pl.DataFrame = args[-1]
    X = df.select(FEATURES).to_numpy()
    return pl.Series("predictions", _model.predict(X))
