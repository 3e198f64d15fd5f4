"""MLflow models (a folder with an ``MLmodel`` file), as MLServer's
``mlserver_mlflow.MLflowRuntime`` serves them.

The artifact is the model's ``model-settings.json``; ``parameters.uri``
(default: the settings' folder) names the MLflow model folder. Before
anything is imported from the model, its ``MLmodel`` file is read: malformed
YAML, no ``python_function`` flavour, or a flavour whose library is not
installed fails the model with the reason and the pip command.

The model is then served by MLServer's own runtime class
(``mlserver_mlflow.MLflowRuntime``, which loads it with
``mlflow.pyfunc.load_model`` and takes its inputs, outputs and request
content type from the signature) through the ``mlserver.MLModel`` adapter, so
the answers are MLServer's. Loading a model whose flavour pickles (sklearn's
default) runs code from its files: serve only models you trust.
"""
import importlib.util
import json
import os
import sys

from . import _mlmodel

RUNTIME = "mlserver_mlflow.MLflowRuntime"

# The library each pyfunc loader module needs, and its pip name.
FLAVOUR_LIBRARIES = {
    "mlflow.sklearn": ("sklearn", "scikit-learn"),
    "mlflow.xgboost": ("xgboost", "xgboost"),
    "mlflow.lightgbm": ("lightgbm", "lightgbm"),
    "mlflow.catboost": ("catboost", "catboost"),
    "mlflow.statsmodels": ("statsmodels", "statsmodels"),
    "mlflow.pytorch": ("torch", "torch"),
    "mlflow.tensorflow": ("tensorflow", "tensorflow"),
    "mlflow.keras": ("keras", "keras"),
    "mlflow.onnx": ("onnxruntime", "onnxruntime"),
    "mlflow.prophet": ("prophet", "prophet"),
}


def _require(name: str, pip: str, why: str):
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"{why} needs the Python package '{name}', which is not installed in {sys.prefix}; install it with: pip install {pip}", name=name)


def model_folder(settings_path: str) -> str:
    with open(settings_path) as f:
        settings = json.load(f)
    folder = os.path.dirname(os.path.abspath(settings_path))
    uri = (settings.get("parameters") or {}).get("uri")
    if uri is None:
        return folder
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.normpath(os.path.join(folder, uri))


def check_mlmodel(folder: str) -> dict:
    """The MLmodel file's contents, checked: a pyfunc flavour whose library is installed."""
    _require("mlflow", "mlflow", "an MLflow model")
    import yaml  # mlflow's own dependency

    path = os.path.join(folder, "MLmodel")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"'{folder}' holds no MLmodel file; parameters.uri must name an MLflow model folder")
    try:
        with open(path) as f:
            spec = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is malformed YAML: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise ValueError(f"{path} has no 'flavors' mapping; expected an MLmodel file written by mlflow")
    pyfunc = spec["flavors"].get("python_function")
    if not isinstance(pyfunc, dict):
        raise ValueError(
            f"{path} has no python_function flavour (it has: {', '.join(spec['flavors']) or 'none'}); "
            "redesmyn and MLServer serve MLflow models through pyfunc"
        )
    loader = pyfunc.get("loader_module")
    if loader in FLAVOUR_LIBRARIES:
        name, pip = FLAVOUR_LIBRARIES[loader]
        _require(name, pip, f"the MLflow model's flavour '{loader}'")
    elif isinstance(loader, str) and importlib.util.find_spec(loader.split(".")[0]) is None:
        raise ModuleNotFoundError(f"the MLflow model's loader module '{loader}' is not installed in {sys.prefix}", name=loader)
    return spec


def load(path: str):
    path = os.path.abspath(path)
    check_mlmodel(model_folder(path))
    _require("mlserver_mlflow", "mlserver-mlflow", "MLServer's MLflow runtime")
    from mlserver_mlflow import MLflowRuntime

    return _mlmodel.MLModelRuntime(MLflowRuntime, _mlmodel.model_settings(path, implementation=RUNTIME))


def predict(model, df):
    return model.predict(df)


def describe(model) -> dict:
    return {"inputs": model.inputs, "outputs": model.outputs}
