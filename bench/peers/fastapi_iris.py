"""FastAPI + uvicorn peer: the iris model, one predict call per request.

    PORT=8000 MODEL=.models/iris.joblib python fastapi_iris.py

POST /predictions/iris with a JSON array of iris records (the same body every
contender gets) answers {"predictions": [...]}. GET /health/ready answers 200
once the model is loaded. The route is `async def` so the predict call runs on
the event loop: on one core that is FastAPI's fastest arrangement (a plain
`def` would hop to a thread pool for every request).
"""

import os

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

model = joblib.load(os.environ.get("MODEL", ".models/iris.joblib"))
app = FastAPI()


class Iris(BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


@app.post("/predictions/iris")
async def predict(records: list[Iris]) -> dict:
    X = np.array(
        [[r.sepal_length, r.sepal_width, r.petal_length, r.petal_width] for r in records],
        dtype=np.float64,
    )
    return {"predictions": model.predict(X).tolist()}


@app.get("/health/ready")
async def ready() -> dict:
    return {"status": "ready"}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        workers=1,
        access_log=False,
        log_level="warning",
    )
