"""Loads the model a pointer file names: ``{"module": "redesmyn_runtimes.sklearn", "artifact": "/models/iris/3/model.joblib"}``.

The repository serves a versioned model's unversioned routes through a
pointer, so a hot reload moves them to a new version by rewriting the
pointer and refreshing the cache: the old model serves until the new one
has loaded, and stays if it fails.
"""
import importlib
import json


def load(path: str):
    with open(path) as f:
        pointer = json.load(f)
    return importlib.import_module(pointer["module"]).load(pointer["artifact"])
