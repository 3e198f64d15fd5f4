"""Custom Python models named by a model's ``implementation``.

A class deriving ``mlserver.MLModel`` (mlserver installed in the serving
environment) is served as MLServer serves it: see ``_mlmodel.py``. Any other
class has MLServer's shape without its types: ``load()`` and ``predict(df)``.

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

from . import _mlmodel


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


def _from_folder(module_name: str, folder: str):
    """Imports `module_name` with `folder` first on the path.

    Model folders often hold a module of the same name (``models.py``): a
    module already imported from another folder is imported again from this
    one, as MLServer reloads it for each model.
    """
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    top = module_name.split(".")[0]
    loaded = sys.modules.get(top)
    origin = getattr(loaded, "__file__", None) or ""
    if loaded is not None and origin and os.path.dirname(os.path.abspath(origin)) != folder and not origin.startswith(folder + os.sep):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(os.path.dirname(os.path.abspath(origin))):
                del sys.modules[name]
    importlib.invalidate_caches()
    return importlib.import_module(module_name)


def import_class(target: str, folder: str):
    """The class `target` names (``module.Class`` or ``module:Class``), its module from `folder`.

    A module that imports MLServer's packages where they are not installed
    is an error naming what to install.
    """
    module_name, _, class_name = target.replace(":", ".").rpartition(".")
    try:
        module = _from_folder(module_name, folder)
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing.startswith("mlserver") or missing == "mlflow":
            raise ModuleNotFoundError(
                f"'{target}' needs the Python package '{missing}', which is not installed in {sys.prefix}; "
                f"install it with: pip install {missing.replace('_', '-')}",
                name=e.name,
            ) from e
        raise
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise AttributeError(f"module '{module_name}' has no class '{class_name}' (implementation '{target}')") from None


def load(path: str):
    path = os.path.abspath(path)
    with open(path) as f:
        settings = json.load(f)
    folder = os.path.dirname(path)
    target = settings["implementation"]
    cls = import_class(target, folder)
    if _mlmodel.is_mlmodel(cls):
        return _mlmodel.MLModelRuntime(cls, _mlmodel.model_settings(path))
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
    if isinstance(model, _mlmodel.MLModelRuntime):
        return model.predict(df)
    return _run(model.predict(df))


def predict_stream(model, df):
    """A streaming ``mlserver.MLModel``: its ``predict_stream``, one step per InferenceResponse."""
    return model.stream(df)


def describe(model) -> dict:
    """What an ``mlserver.MLModel`` says it takes and answers after load (its settings' inputs and outputs, or
    what load set), and whether it streams."""
    if isinstance(model, _mlmodel.MLModelRuntime):
        return {"inputs": model.inputs, "outputs": model.outputs, "stream": model.streams}
    return {}
