"""Python handlers used by __test__/workers.test.ts (run in worker processes)."""

import ctypes
import os
import time

import numpy as np
import polars as pl

FEATURES = ["f0", "f1", "f2", "f3"]


def forest(model, df: pl.DataFrame) -> pl.DataFrame:
    """A random forest's class, and the process that predicted it."""
    X = df.select(FEATURES).to_numpy()
    return pl.DataFrame({"label": model.predict(X).astype(np.int64), "pid": [os.getpid()] * df.height})


def region(df: pl.DataFrame, params: dict) -> pl.DataFrame:
    """The path parameter and a column computed from the batch."""
    return pl.DataFrame({"region": [params["region"]] * df.height, "double": df["a"] * 2})


def poison(df: pl.DataFrame) -> pl.Series:
    """Crashes the process on a poison record: 13 segfaults, 3 exits with code 3."""
    values = df["a"].to_list()
    if 13.0 in values:
        ctypes.string_at(0)
    if 3.0 in values:
        os._exit(3)
    if 7.0 in values:
        raise ValueError("seven is not allowed")
    return df["a"] * 2


_hoard = []


def leak(df: pl.DataFrame) -> pl.Series:
    """Keeps 40 MiB per batch, touched so that it is resident."""
    _hoard.append(np.ones(40 * 1024 * 1024 // 8))
    return pl.Series([os.getpid()] * df.height)


def hang(df: pl.DataFrame) -> pl.Series:
    """Never returns for a = -1."""
    if -1.0 in df["a"].to_list():
        time.sleep(3600)
    return pl.Series([os.getpid()] * df.height)


def nap(df: pl.DataFrame) -> pl.DataFrame:
    """Sleeps 300 ms; says which process ran it, and when (wall clock, seconds)."""
    start = time.time()
    time.sleep(0.3)
    end = time.time()
    return pl.DataFrame({"pid": [os.getpid()] * df.height, "start": [start] * df.height, "end": [end] * df.height})
