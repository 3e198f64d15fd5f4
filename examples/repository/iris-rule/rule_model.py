"""The example pipeline's business rule (Python): the classifier's label as a
species name, sent for review when it contradicts the rule of thumb that
only setosa has petals shorter than 2.5 cm."""
import polars as pl

SPECIES = {0: "setosa", 1: "versicolor", 2: "virginica"}


class BusinessRule:
    def __init__(self, settings):
        self.settings = settings

    def load(self) -> bool:
        return True

    def predict(self, df: pl.DataFrame) -> pl.Series:
        species = pl.col("label").replace_strict(SPECIES, return_dtype=pl.String)
        short = pl.col("petal_length") < 2.5
        agrees = short == (pl.col("label") == 0)
        decision = pl.when(agrees).then(species).otherwise(pl.concat_str([pl.lit("review:"), species]))
        return df.select(decision.alias("decision")).to_series()
