"""Real ``mlserver.MLModel`` runtimes, served unchanged.

A model folder whose ``implementation`` names a subclass of
``mlserver.MLModel`` (a custom runtime, or one of MLServer's own such as
``mlserver_mlflow.MLflowRuntime``) is built the way MLServer builds it: a
real ``mlserver.settings.ModelSettings`` read from the folder's
``model-settings.json`` (``_source`` set, the name defaulting to the folder's,
``parameters.uri`` defaulting to the folder and resolved against it by
``mlserver.utils.get_model_uri``), then ``await load()`` once; a falsy
result leaves the model failed, as MLServer leaves it not ready.

A batch (the rows of several requests, concatenated by redesmyn's batcher)
becomes one ``InferenceRequest`` whose inputs hold every row along the first
dimension, which is what MLServer's adaptive batching hands ``predict``.
Each output of the ``InferenceResponse`` must have one entry per row along
its first dimension; it is returned as one column per output (named by the
output), which the core splits back by row offsets.

Coroutines run on one event loop per process, on a thread of its own, as
MLServer runs them on its server's loop: state a model keeps between calls
(locks, clients, tasks) stays on one loop.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import weakref
from typing import Any

import numpy as np

_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP32": np.float32,
    "FP64": np.float64,
}

_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_THREAD: threading.Thread | None = None
_LOOP_LOCK = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    global _LOOP, _LOOP_THREAD
    with _LOOP_LOCK:
        if _LOOP is None:
            loop = asyncio.new_event_loop()
            _LOOP_THREAD = threading.Thread(target=loop.run_forever, name="redesmyn-mlserver-loop", daemon=True)
            _LOOP_THREAD.start()
            _LOOP = loop
        return _LOOP


def run(coroutine, timeout: float | None = None):
    """Runs a coroutine on the process's model loop and waits for its result."""
    if not asyncio.iscoroutine(coroutine):
        return coroutine
    return asyncio.run_coroutine_threadsafe(coroutine, _loop()).result(timeout)


def is_mlmodel(cls) -> bool:
    """Whether `cls` derives from ``mlserver.MLModel`` (False when mlserver is not imported)."""
    import sys

    mlserver = sys.modules.get("mlserver")
    return mlserver is not None and isinstance(cls, type) and issubclass(cls, mlserver.MLModel)


def model_settings(path: str, implementation: str | None = None):
    """``ModelSettings`` as MLServer's repository reads ``path`` (mlserver.repository.load)."""
    from mlserver.settings import ModelParameters, ModelSettings

    with open(path) as f:
        obj = json.load(f)
    if implementation is not None:
        obj["implementation"] = implementation
    obj["_source"] = path
    settings = ModelSettings.model_validate(obj)
    folder = os.path.dirname(path)
    if not settings.name:
        settings.name = os.path.basename(folder)
    if not settings.parameters:
        settings.parameters = ModelParameters()
    if not settings.parameters.uri:
        settings.parameters.uri = folder
    return settings


class MLModelRuntime:
    """A loaded ``mlserver.MLModel`` and how its batches become requests."""

    def __init__(self, cls, settings):
        self.model = cls(settings)
        self.name = settings.name
        self._unloaded = False
        ready = run(self.model.load())
        # MLServer: `model.ready = await model.load()`; a falsy result is a model that never becomes ready.
        self.model.ready = ready
        if not ready:
            raise RuntimeError(f"model '{self.name}': load() returned {ready!r}, so the model is not ready (MLServer would not serve it either)")
        # At exit, if the model is still served then; a model dropped before (a removed version) unloads when collected.
        this = weakref.ref(self)
        atexit.register(lambda: (model := this()) is not None and model.unload())

    @property
    def streams(self) -> bool:
        """Whether the class has its own ``predict_stream`` (MLModel's raises NotImplementedError)."""
        import mlserver

        return type(self.model).predict_stream is not mlserver.MLModel.predict_stream

    @property
    def inputs(self):
        """The model's input metadata after load (a runtime may set it, as MLflow's does from the signature)."""
        return [_tensor(t) for t in (self.model.inputs or [])]

    @property
    def outputs(self):
        return [_tensor(t) for t in (self.model.outputs or [])]

    def request(self, df):
        """The batch as one InferenceRequest, every row along the first dimension."""
        from mlserver.types import InferenceRequest, RequestInput

        rows = df.height
        declared = list(self.model.inputs or [])
        inputs = []
        if len(declared) == 1 and len(declared[0].shape) == 2 and declared[0].shape[-1] not in (1, -1) and df.width == declared[0].shape[-1]:
            # One [-1, F] tensor: the schema has its F columns, in order.
            t = declared[0]
            matrix = np.column_stack([_values(df.to_series(i), t.datatype) for i in range(df.width)]) if df.width else np.empty((rows, 0))
            inputs.append(RequestInput(name=t.name, datatype=t.datatype, shape=[rows, df.width], data=_flat(matrix, t.datatype)))
        else:
            by_name = {t.name: t for t in declared}
            for column in df.get_columns():
                t = by_name.get(column.name)
                values = _values(column, t.datatype if t is not None else None)
                datatype = t.datatype if t is not None else _datatype(values)
                shape = [rows, *values.shape[1:]]
                if t is not None and len(t.shape) == 2 and values.ndim == 1:
                    shape = [rows, 1]
                inputs.append(RequestInput(name=column.name, datatype=datatype, shape=shape, data=_flat(values, datatype)))
        return InferenceRequest(inputs=inputs)

    def frame(self, response, rows: int, step: bool = False):
        """The response's outputs as one column each, checked to hold one entry per row."""
        import polars as pl
        from mlserver.types import InferenceResponse

        if not isinstance(response, InferenceResponse):
            raise TypeError(f"model '{self.name}': predict() returned a {type(response).__name__}; expected an mlserver.types.InferenceResponse")
        columns = []
        for output in response.outputs:
            shape = list(output.shape)
            if step and rows == 1 and (not shape or shape[0] != 1):
                # A streamed chunk of a one-row request: the whole output is that row's chunk.
                shape = [1, *shape]
            if not shape or shape[0] != rows:
                raise ValueError(
                    f"model '{self.name}': output '{output.name}' has shape {shape} for a batch of {rows} rows; "
                    f"its first dimension must be the number of rows (the batch's requests are merged along it)"
                )
            data = getattr(output.data, "root", output.data)
            if output.datatype == "BYTES":
                values = [_text(v) for v in np.asarray(data, dtype=object).reshape(-1)]
                if len(shape) == 1:
                    columns.append(pl.Series(output.name, values, dtype=pl.String))
                    continue
                width = int(np.prod(shape[1:]))
                columns.append(pl.Series(output.name, [values[i * width : (i + 1) * width] for i in range(rows)], dtype=pl.Array(pl.String, width)))
                continue
            dtype = _NUMPY.get(output.datatype)
            if dtype is None:
                raise TypeError(f"model '{self.name}': output '{output.name}' is {output.datatype}, which redesmyn cannot answer (expected one of {', '.join(_NUMPY)} or BYTES)")
            array = np.asarray(data, dtype=dtype)
            if array.size != int(np.prod(shape)):
                raise ValueError(f"model '{self.name}': output '{output.name}' has {array.size} values for its shape {shape}")
            array = array.reshape(rows, -1) if len(shape) > 1 else array.reshape(rows)
            columns.append(pl.Series(output.name, array))
        if not columns:
            raise ValueError(f"model '{self.name}': predict() returned no outputs")
        return pl.DataFrame(columns)

    def predict(self, df):
        request = self.request(df)
        try:
            response = run(self.model.predict(request))
        except Exception as e:
            raise RuntimeError(f"model '{self.name}': predict() raised {type(e).__name__}: {e}") from e
        return self.frame(response, df.height)

    def stream(self, df):
        """``predict_stream`` over the batch's request: one step (a value per row) per InferenceResponse it yields."""
        request = self.request(df)

        async def requests():
            yield request

        try:
            responses = self.model.predict_stream(requests())
        except Exception as e:
            raise RuntimeError(f"model '{self.name}': predict_stream() raised {type(e).__name__}: {e}") from e
        if not hasattr(responses, "__anext__"):
            raise TypeError(f"model '{self.name}': predict_stream() returned a {type(responses).__name__}; expected an async generator of InferenceResponse")
        try:
            while True:
                try:
                    response = run(responses.__anext__())
                except StopAsyncIteration:
                    return
                except Exception as e:
                    raise RuntimeError(f"model '{self.name}': predict_stream() raised {type(e).__name__}: {e}") from e
                yield self.frame(response, df.height, step=True)
        finally:
            try:
                run(responses.aclose(), timeout=30)
            except Exception:
                pass

    def unload(self):
        if self._unloaded:
            return
        self._unloaded = True
        try:
            if threading.current_thread() is _LOOP_THREAD:
                # Collected on the loop's own thread: it cannot wait for itself.
                _LOOP.create_task(self.model.unload())
                return
            self.model.ready = not run(self.model.unload(), timeout=30)
        except Exception:  # unloading at exit must not fail the exit
            pass

    def __del__(self):
        self.unload()


def _tensor(t) -> dict[str, Any]:
    return {"name": t.name, "datatype": str(getattr(t.datatype, "value", t.datatype)), "shape": list(t.shape)}


def _values(column, datatype: str | None) -> np.ndarray:
    import polars as pl

    if isinstance(column.dtype, (pl.Array, pl.List)):
        return np.asarray(column.to_list())
    if column.dtype == pl.String or datatype == "BYTES":
        return np.asarray(column.to_list(), dtype=object)
    values = column.to_numpy()
    dtype = _NUMPY.get(datatype or "")
    return values.astype(dtype, copy=False) if dtype is not None else values


def _flat(values: np.ndarray, datatype: str) -> list:
    return values.reshape(-1).tolist()


def _datatype(values: np.ndarray) -> str:
    if values.dtype == object:
        return "BYTES"
    for name, dtype in _NUMPY.items():
        if values.dtype == np.dtype(dtype):
            return name
    return "BYTES"


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return str(value)
