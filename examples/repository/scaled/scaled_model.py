"""A custom model in MLServer's MLModel shape: load() once, predict(df) per batch."""
import polars as pl


class ScaledModel:
    def __init__(self, settings):
        self.settings = settings

    async def load(self) -> bool:
        with open(self.settings.parameters.uri) as f:
            self.factor = float(f.read())
        return True

    async def predict(self, df: pl.DataFrame) -> pl.Series:
        return df["x"] * self.factor
