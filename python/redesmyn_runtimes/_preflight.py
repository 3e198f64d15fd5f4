"""Start-up check of a repository's Python models, run by the repository
loader in a child process of the serving environment's Python.

stdin: a JSON list of {"id", "module", "artifact", "requires": [{"import", "pip"}]}.
stdout: a JSON list of {"id", "error"} or {"id", "features", "feature_names", "output",
"inputs", "outputs"}: the number of features the model takes (when it says), the
datatype and width of its output on one row of zeros, and the V2 tensors a
runtime with a ``describe(model)`` reports after load. A failing model never stops the others.
"""
import importlib
import importlib.util
import json
import sys
import traceback

V2 = {"f": {4: "FP32", 8: "FP64"}, "i": {1: "INT8", 2: "INT16", 4: "INT32", 8: "INT64"}, "u": {1: "UINT8", 2: "UINT16", 4: "UINT32", 8: "UINT64"}, "b": {1: "BOOL"}}


def features(model):
    for attr in ("n_features_in_",):
        if hasattr(model, attr):
            return int(getattr(model, attr))
    for method in ("num_features", "num_feature"):
        if hasattr(model, method):
            return int(getattr(model, method)())
    return None


def check(spec):
    for req in spec["requires"]:
        if importlib.util.find_spec(req["import"]) is None:
            return {"error": f"the Python package '{req['import']}' is missing; install it with: pip install {req['pip']}"}
    module = importlib.import_module(spec["module"])
    try:
        model = module.load(spec["artifact"])
    except Exception as e:  # the model's own failure, reported as its state
        return {"error": f"load failed: {type(e).__name__}: {e}", "trace": traceback.format_exc()}
    out = {"features": features(model)}
    describe = getattr(module, "describe", None)
    if describe is not None:
        # Runtimes that know their tensors after load (mlserver.MLModel, MLflow signatures).
        out.update({k: v for k, v in describe(model).items() if v})
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        out["feature_names"] = [str(n) for n in names]
    if out["features"] and spec.get("handler"):
        import numpy as np
        import polars as pl

        df = pl.DataFrame(np.zeros((1, out["features"])), schema=[f"x{i}" for i in range(out["features"])], orient="row")
        try:
            result = np.asarray(getattr(module, spec["handler"])(model, df))
            out["output"] = {"datatype": V2.get(result.dtype.kind, {}).get(result.dtype.itemsize, "BYTES"), "width": int(result.shape[1]) if result.ndim == 2 else None}
        except Exception as e:
            return {"error": f"predict failed on a row of zeros: {type(e).__name__}: {e}"}
    return out


def main():
    results = []
    for spec in json.load(sys.stdin):
        try:
            results.append({"id": spec["id"], **check(spec)})
        except Exception as e:
            results.append({"id": spec["id"], "error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
