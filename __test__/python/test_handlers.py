"""Python handlers used by __test__/python.test.ts."""

import time

import numpy as np
import polars as pl


def echo(df: pl.DataFrame) -> pl.DataFrame:
    """Every column back, one object per row."""
    return df


def dtypes(df: pl.DataFrame) -> pl.Series:
    """The polars dtype of each column, as the handler saw it."""
    text = ",".join(f"{name}={dtype}" for name, dtype in zip(df.columns, df.dtypes))
    return pl.Series([text] * df.height)


def null_counts(df: pl.DataFrame) -> pl.Series:
    counts = ",".join(f"{name}={df[name].null_count()}" for name in df.columns)
    return pl.Series([counts] * df.height)


def fail(df: pl.DataFrame) -> pl.Series:
    raise ValueError(f"cannot score {df.height} rows")


def short(df: pl.DataFrame) -> pl.Series:
    return pl.Series([1.0])


def slow(df: pl.DataFrame) -> pl.Series:
    time.sleep(0.2)
    return df["a"]


def with_params(df: pl.DataFrame, params: dict) -> pl.Series:
    return pl.Series([params["name"]] * df.height)


def as_numpy(df: pl.DataFrame) -> np.ndarray:
    return df["a"].to_numpy() * 2


def as_list(df: pl.DataFrame) -> list:
    return [f"row {i}" for i in range(df.height)]


def not_a_column(df: pl.DataFrame) -> object:
    return object()


NOT_CALLABLE = 3


# --- model cache -----------------------------------------------------------

import gc
import weakref

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def predict_species(model, df: pl.DataFrame) -> pl.Series:
    """The species by the cached model (the model comes first)."""
    return pl.Series(SPECIES[model.predict(df.select(FEATURES).to_numpy())])


class Tracked:
    """A model that is the artifact's text; every instance is tracked weakly."""

    def __init__(self, text: str):
        self.text = text


_tracked: list = []


def load_tracked(path: str) -> Tracked:
    text = open(path).read()
    if text == "broken":
        raise ValueError("broken artifact")
    model = Tracked(text)
    _tracked.append(weakref.ref(model))
    return model


def tracked_alive(model: Tracked, df: pl.DataFrame) -> pl.Series:
    """The model's text and how many tracked models are still alive."""
    gc.collect()
    alive = sum(1 for r in _tracked if r() is not None)
    return pl.Series([f"{model.text}:{alive}"] * df.height)
