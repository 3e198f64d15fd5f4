"""Python steps of the pipeline tests (__test__/pipeline.test.ts)."""
import polars as pl

SPECIES = {0: "setosa", 1: "versicolor", 2: "virginica"}


def decide(df: pl.DataFrame) -> pl.Series:
    """The business rule: the species when the classifier is sure (p >= 0.9), else 'review:<species>'."""
    species = pl.col("label").replace_strict(SPECIES, return_dtype=pl.String)
    sure = pl.col("probabilities").arr.max() >= 0.9
    rule = pl.when(sure).then(species).otherwise(pl.concat_str([pl.lit("review:"), species]))
    return df.select(rule.alias("decision")).to_series()


def checked(df: pl.DataFrame) -> pl.Series:
    """x, refusing negative values (a step that raises for some rows)."""
    if (df["x"] < 0).any():
        raise ValueError("negative x")
    return df["x"]


def address(df: pl.DataFrame) -> pl.Series:
    """The address of column x's values as numpy sees them (no copy for a
    single-chunk float64 column), on the first row."""
    x = df["x"].to_numpy()
    assert not x.flags.owndata, "to_numpy copied the column"
    return pl.Series([x.__array_interface__["data"][0]] + [None] * (df.height - 1), dtype=pl.UInt64)
