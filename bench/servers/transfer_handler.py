"""A handler that does almost nothing, to measure what a batch costs to cross
to a Python worker process and back (bench/worker-transfer.ts)."""

import polars as pl


def first(df: pl.DataFrame) -> pl.Series:
    """The first column, doubled: one prediction per row, next to no work."""
    return df.get_column(df.columns[0]) * 2
