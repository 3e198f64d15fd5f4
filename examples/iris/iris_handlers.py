"""Prediction handlers of the iris example. redesmyn calls them with each
batch as a polars DataFrame (one row per record, columns as in the schema)."""

from pathlib import Path

import joblib
import numpy as np
import polars as pl

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])

# The default model of POST /predictions/iris, loaded once at import.
MODEL = joblib.load(Path(__file__).parent / "models" / "iris" / "1" / "1" / "model.joblib")


def predict(df: pl.DataFrame) -> pl.Series:
    """The species of each record."""
    classes = MODEL.predict(df.select(FEATURES).to_numpy())
    return pl.Series("species", SPECIES[classes])


def predict_with(model, df: pl.DataFrame) -> pl.Series:
    """The species by the model the URL selects (from the model cache)."""
    classes = model.predict(df.select(FEATURES).to_numpy())
    return pl.Series("species", SPECIES[classes])


def predict_class(df: pl.DataFrame) -> pl.Series:
    """The class index of each record (0 setosa, 1 versicolor, 2 virginica):
    what V2 clients of an sklearn model expect (KServe's and MLServer's
    sklearn servers answer class indices too)."""
    return pl.Series("predict", MODEL.predict(df.select(FEATURES).to_numpy()).astype(np.int64))
