"""Python handlers used by __test__/pythons.test.ts, in every CPython it runs."""

import hashlib
import json
import sqlite3
import ssl
import sys

import numpy as np
import polars as pl
import sklearn


def facts(df: pl.DataFrame) -> pl.Series:
    """What the embedded interpreter is and what it can import, under Node."""
    import _hashlib  # OpenSSL's hashes: fails if libcrypto's symbols clash

    context = ssl.create_default_context()  # an SSL_CTX with the CA store loaded
    db = sqlite3.connect(":memory:")
    result = {
        "version": "%d.%d" % sys.version_info[:2],
        "executable": sys.executable,
        "prefix": sys.prefix,
        "sha256": hashlib.sha256(b"redesmyn").hexdigest(),
        "openssl_sha256": _hashlib.openssl_sha256(b"redesmyn").hexdigest(),
        "openssl": ssl.OPENSSL_VERSION,
        "verify_mode": context.verify_mode.name,
        "sqlite": db.execute("select 6 * 7").fetchone()[0],
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "polars": pl.__version__,
    }
    return pl.Series([json.dumps(result)] * df.height)


def address(df: pl.DataFrame) -> pl.Series:
    """The address of column x's values as numpy sees them (numpy reads a
    single-chunk float64 column without copying), on the first row."""
    x = df["x"].to_numpy()
    assert not x.flags.owndata, "to_numpy copied the column"
    return pl.Series([x.__array_interface__["data"][0]] + [None] * (df.height - 1), dtype=pl.UInt64)


def same(df: pl.DataFrame) -> pl.Series:
    """Column x, unchanged, back to the host."""
    return df["x"]


def add_one(df: pl.DataFrame) -> pl.Series:
    return df["a"] + 1
