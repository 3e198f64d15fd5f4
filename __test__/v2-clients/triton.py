"""tritonclient against a redesmyn server: prints one JSON object of results.

Usage: python triton.py <http host:port> <grpc host:port or -> <model>
Each check is recorded as its value or {"error": "..."}, so the caller
asserts on what a tritonclient user would see.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient

IRIS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


def attempt(results, key, fn):
    try:
        results[key] = fn()
    except Exception as e:  # the message is what the test asserts on
        results[key] = {"error": str(e)}


def iris_http(client, model, binary, parameters=None):
    x = httpclient.InferInput("input-0", list(IRIS.shape), "FP32")
    x.set_data_from_numpy(IRIS, binary_data=binary)
    out = httpclient.InferRequestedOutput("output-0", binary_data=binary)
    r = client.infer(model, [x], outputs=[out], request_id="t-1", parameters=parameters)
    return {"id": r.get_response()["id"], "output": r.as_numpy("output-0").tolist()}


def main():
    http_url, grpc_url, model = sys.argv[1], sys.argv[2], sys.argv[3]
    results = {}
    c = httpclient.InferenceServerClient(http_url)
    attempt(results, "http_live", c.is_server_live)
    attempt(results, "http_ready", c.is_server_ready)
    attempt(results, "http_model_ready", lambda: c.is_model_ready(model))
    attempt(results, "http_unknown_model_ready", lambda: c.is_model_ready("no-such-model"))
    attempt(results, "http_server_metadata", c.get_server_metadata)
    attempt(results, "http_model_metadata", lambda: c.get_model_metadata(model))
    attempt(results, "http_infer_binary", lambda: iris_http(c, model, True))
    attempt(results, "http_infer_json", lambda: iris_http(c, model, False))
    if grpc_url != "-":
        import tritonclient.grpc as grpcclient

        g = grpcclient.InferenceServerClient(grpc_url)
        attempt(results, "grpc_live", g.is_server_live)
        attempt(results, "grpc_ready", g.is_server_ready)
        attempt(results, "grpc_model_ready", lambda: g.is_model_ready(model))
        attempt(results, "grpc_server_metadata", lambda: g.get_server_metadata(as_json=True))
        attempt(results, "grpc_model_metadata", lambda: g.get_model_metadata(model, as_json=True))

        def infer():
            x = grpcclient.InferInput("input-0", list(IRIS.shape), "FP32")
            x.set_data_from_numpy(IRIS)
            r = g.infer(model, [x], outputs=[grpcclient.InferRequestedOutput("output-0")], request_id="g-1")
            return {"id": r.get_response().id, "output": r.as_numpy("output-0").tolist()}

        attempt(results, "grpc_infer", infer)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
