"""A Python handler for the prediction cache test: each answer says which
handler call computed it, so a test can tell cached rows from fresh ones."""

import polars as pl

_calls = 0


def counted(df: pl.DataFrame) -> pl.DataFrame:
    global _calls
    _calls += 1
    return pl.DataFrame({"double": df["x"] * 2, "call": pl.Series([_calls] * df.height, dtype=pl.Int64)})
