"""TensorFlow models: a Keras file (``.keras``, ``.h5``) or a SavedModel.

A SavedModel is named by its folder (or the ``saved_model.pb`` in it) and
called through its ``serving_default`` signature, whose one input takes the
batch's features as a matrix; a Keras file is loaded in Keras' safe mode (no
arbitrary Python from the file). A SavedModel's graph is code all the same:
serve only artifacts you trust. Runs on ``tensorflow-cpu``.
"""
import os

import numpy as np

from ._features import matrix, rows


class TensorFlowModel:
    """A loaded model as the runtime calls it: features in, one output out."""

    def __init__(self, call, features, dtype):
        self.call = call
        # What the start-up check reads to try a row of zeros.
        self.n_features_in_ = features
        self.dtype = dtype


def _saved_model(folder: str) -> TensorFlowModel:
    import tensorflow as tf

    loaded = tf.saved_model.load(folder)
    if "serving_default" not in loaded.signatures:
        raise ValueError(f"{folder}: the SavedModel has no 'serving_default' signature (it has: {', '.join(loaded.signatures) or 'none'})")
    signature = loaded.signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    if len(inputs) != 1:
        raise ValueError(f"{folder}: expected a serving signature with one input, got {', '.join(inputs)}")
    (name, spec), = inputs.items()
    output = sorted(signature.structured_outputs)[0]

    def call(x):
        return signature(**{name: tf.constant(x, dtype=spec.dtype)})[output].numpy()

    # The signature keeps the SavedModel alive as long as the model is.
    call.loaded = loaded
    return TensorFlowModel(call, spec.shape[-1], spec.dtype.as_numpy_dtype)


def _keras(path: str) -> TensorFlowModel:
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    if len(model.inputs) != 1:
        raise ValueError(f"{path}: expected a model with one input, got {len(model.inputs)}")
    spec = model.inputs[0]
    return TensorFlowModel(lambda x: np.asarray(model(x, training=False)), spec.shape[-1], np.dtype(spec.dtype))


def load(path: str) -> TensorFlowModel:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.path.basename(path) == "saved_model.pb":
        path = os.path.dirname(path)
    if os.path.isdir(path):
        return _saved_model(path)
    return _keras(path)


def predict(model: TensorFlowModel, df):
    y = np.asarray(model.call(matrix(df).astype(model.dtype, copy=False)))
    # One output per row as a flat column; several as a list per row.
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return rows(y)
