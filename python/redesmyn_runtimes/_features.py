"""Turns a batch into the 2-D feature matrix the tree and linear libraries take."""
import numpy as np
import polars as pl


def matrix(df: pl.DataFrame) -> np.ndarray:
    """The batch's columns in schema order as one 2-D array (rows x features).

    A single column of fixed-size arrays (a ``[-1, F]`` tensor input) is
    unpacked into its F features.
    """
    if df.width == 1 and isinstance(df.dtypes[0], (pl.Array, pl.List)):
        return np.asarray(df.to_series(0).to_list())
    return df.to_numpy()


def rows(values) -> object:
    """One prediction per row: 1-D arrays as they are, 2-D arrays as lists of rows."""
    array = np.asarray(values)
    if array.ndim == 1:
        return array
    return array.tolist()
