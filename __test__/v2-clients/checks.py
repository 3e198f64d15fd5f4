"""Further V2 checks with tritonclient (HTTP and gRPC) against a redesmyn
server: BYTES / BOOL / INT64 tensors, a variant selected by `parameters`,
every bad body over raw HTTP, and a burst of mixed-protocol requests.
Prints one JSON object of results.

Usage: python checks.py <http host:port> <grpc host:port> <types model> <variants model> <echo model> <echo path>
"""
import json
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

IRIS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


def attempt(results, key, fn):
    try:
        results[key] = fn()
    except Exception as e:
        results[key] = {"error": str(e)}


def raw_post(url, body, headers=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return {"status": r.status, "body": json.loads(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}


def typed_inputs(module, binary):
    s = module.InferInput("s", [3], "BYTES")
    s.set_data_from_numpy(np.array([b"a", b"bb", "\u00e9".encode()], dtype=np.object_), **({"binary_data": binary} if binary is not None else {}))
    b = module.InferInput("b", [3], "BOOL")
    b.set_data_from_numpy(np.array([True, False, True]), **({"binary_data": binary} if binary is not None else {}))
    n = module.InferInput("n", [3, 1], "INT64")
    n.set_data_from_numpy(np.array([[1], [-2], [2**40]], dtype=np.int64), **({"binary_data": binary} if binary is not None else {}))
    return [s, b, n]


def outputs_of(r, names):
    out = {}
    for name in names:
        a = r.as_numpy(name)
        out[name] = [v.decode() if isinstance(v, bytes) else v for v in a.tolist()]
    return out


def main():
    http_url, grpc_url, types_model, variants_model, echo_model, echo_path = sys.argv[1:7]
    results = {}
    c = httpclient.InferenceServerClient(http_url, concurrency=64)
    g = grpcclient.InferenceServerClient(grpc_url)
    names = ["label", "flag", "twice"]
    attempt(results, "types_http_binary", lambda: outputs_of(c.infer(types_model, typed_inputs(httpclient, True)), names))
    attempt(results, "types_http_json", lambda: outputs_of(c.infer(types_model, typed_inputs(httpclient, False)), names))
    attempt(results, "types_grpc", lambda: outputs_of(g.infer(types_model, typed_inputs(grpcclient, None)), names))

    def variant(module, client):
        x = module.InferInput("input-0", list(IRIS.shape), "FP32")
        x.set_data_from_numpy(IRIS)
        r = client.infer(variants_model, [x], parameters={"run_id": "1", "model_id": "2"})
        return [v.decode() for v in r.as_numpy("output-0").tolist()]

    attempt(results, "variant_http", lambda: variant(httpclient, c))
    attempt(results, "variant_grpc", lambda: variant(grpcclient, g))

    def missing_params():
        x = grpcclient.InferInput("input-0", list(IRIS.shape), "FP32")
        x.set_data_from_numpy(IRIS)
        g.infer(variants_model, [x])

    attempt(results, "variant_grpc_missing", missing_params)

    def bad_grpc_shape():
        x = grpcclient.InferInput("input-0", [2, 3], "FP32")
        x.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
        g.infer(variants_model, [x], parameters={"run_id": "1", "model_id": "2"})

    attempt(results, "grpc_bad_shape", bad_grpc_shape)
    attempt(results, "grpc_unknown_model", lambda: g.get_model_metadata("no-such-model"))

    url = f"http://{http_url}/v2/models/{variants_model}/infer"
    p = {"run_id": "1", "model_id": "1"}

    def body(inputs):
        return json.dumps({"parameters": p, "inputs": inputs}).encode()

    head = json.dumps({"parameters": p, "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}).encode()
    bad = {
        "short_data": (body([{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]), {}),
        "long_data": (body([{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]), {}),
        "wrong_shape": (body([{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]), {}),
        "unknown_datatype": (body([{"name": "input-0", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]), {}),
        "duplicate_inputs": (body([{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}] * 2), {}),
        "binary_past_body": (head + b"\0" * 16, {"Inference-Header-Content-Length": str(len(head))}),
        "header_longer_than_body": (head, {"Inference-Header-Content-Length": "100000"}),
        "header_absurd": (head, {"Inference-Header-Content-Length": "1" * 40}),
        "malformed": (b"{", {}),
    }
    for key, (b, h) in bad.items():
        results["bad_" + key] = raw_post(url, b, h)
    results["after_bad"] = variant(httpclient, c)

    # A burst mixing REST JSON, REST binary, gRPC and native to one model:
    # each value encodes its protocol (0, 1000, 2000, 3000) and index.
    answers = {}
    barrier = threading.Barrier(200)

    def one(protocol, i):
        x = protocol * 1000 + i
        # tritonclient's HTTP client (geventhttpclient) must not be shared
        # between threads: each REST sender gets its own.
        own = httpclient.InferenceServerClient(http_url) if protocol in (0, 1) else None
        barrier.wait()
        try:
            if protocol == 3:
                r = raw_post(f"http://{http_url}{echo_path}", json.dumps([{"x": x}]).encode(), {"content-type": "application/json"})
                answers[x] = r["body"]["predictions"][0]
                return
            module, client = (grpcclient, g) if protocol == 2 else (httpclient, own)
            t = module.InferInput("x", [1], "FP64")
            if protocol == 2:
                t.set_data_from_numpy(np.array([x], dtype=np.float64))
            else:
                t.set_data_from_numpy(np.array([x], dtype=np.float64), binary_data=protocol == 1)
            r = client.infer(echo_model, [t])
            answers[x] = r.as_numpy("output-0").tolist()[0]
        except Exception as e:
            answers[x] = str(e)

    threads = [threading.Thread(target=one, args=(p, i)) for p in range(4) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["burst"] = {str(k): v for k, v in answers.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
