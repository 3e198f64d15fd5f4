"""The plain-Python way to score a Parquet file with the iris model (scenario 13).

What a Python user would write: read the file with Polars, call the model's
predict on chunks of BATCH rows, write the predictions beside the ids with
Polars. Prints one JSON line: rows, seconds (the scoring itself, after the
imports and the model load), rows/s and peak RSS.

    INPUT=in.parquet OUTPUT=out.parquet BATCH=50000 IRIS_MODEL=.models/iris.joblib python score_iris.py
"""

import json
import os
import resource
import time

import joblib
import numpy as np
import polars as pl

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main() -> None:
    model = joblib.load(os.environ["IRIS_MODEL"])
    batch = int(os.environ.get("BATCH", "50000"))
    t0 = time.perf_counter()
    df = pl.read_parquet(os.environ["INPUT"])
    predictions = [model.predict(chunk.select(FEATURES).to_numpy()) for chunk in df.iter_slices(batch)]
    out = df.select("id").with_columns(pl.Series("prediction", np.concatenate(predictions)))
    out.write_parquet(os.environ["OUTPUT"])
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": df.height, "scored": out.height, "seconds": seconds, "rowsPerSecond": df.height / seconds, "maxRssKiB": rss}))


if __name__ == "__main__":
    main()
