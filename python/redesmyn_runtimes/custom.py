"""Custom Python models: a class with ``load()`` and ``predict(df)``, the
shape of MLServer's ``MLModel``, named by a model's ``implementation``.

The artifact this runtime is handed is the model's ``model-settings.json``:
the class is imported from ``implementation`` (``module.Class`` or
``module:Class``; the model's folder is on the Python path), built with the
settings as a plain object (``settings.name``, ``settings.parameters.uri``
resolved against the folder, …), then ``load()`` is called (awaited when it
is a coroutine). ``predict(df)`` gets the batch as a ``polars.DataFrame``.
"""
import asyncio
import importlib
import inspect
import json
import os
import sys
from types import SimpleNamespace


def _namespace(value):
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_namespace(v) for v in value]
    return value


def _run(result):
    if inspect.isawaitable(result):
        return asyncio.run(result)
    return result


def load(path: str):
    with open(path) as f:
        settings = json.load(f)
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    target = settings["implementation"]
    module_name, _, class_name = target.replace(":", ".").rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    params = settings.setdefault("parameters", {})
    if isinstance(params.get("uri"), str):
        params["uri"] = os.path.join(folder, params["uri"])
    ns = _namespace(settings)
    try:
        model = cls(ns)
    except TypeError:
        model = cls()
        model.settings = ns
    _run(getattr(model, "load", lambda: None)())
    return model


def predict(model, df):
    return _run(model.predict(df))
