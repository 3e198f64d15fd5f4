"""tritonclient gRPC against `redesmyn serve`: model metadata and one infer.

Usage: python grpc_infer.py <host:port> <model> <input name> <datatype> <rows JSON>
Prints {"metadata": ..., "outputs": {name: values}}.
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient

url, model, name, datatype, rows = sys.argv[1:6]
client = grpcclient.InferenceServerClient(url)
data = np.array(json.loads(rows), dtype={"FP32": np.float32, "FP64": np.float64}[datatype])
x = grpcclient.InferInput(name, list(data.shape), datatype)
x.set_data_from_numpy(data)
result = client.infer(model, [x])
outputs = {o.name: result.as_numpy(o.name).tolist() for o in result.get_response().outputs}
print(json.dumps({"metadata": client.get_model_metadata(model, as_json=True), "ready": client.is_model_ready(model), "outputs": outputs}))
