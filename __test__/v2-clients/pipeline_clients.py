"""tritonclient against a served pipeline: V2 gRPC metadata and inference,
then a burst of 200 requests at once mixing V2 REST JSON, V2 REST binary,
V2 gRPC and native JSON. Prints one JSON object.

Usage: python pipeline_clients.py <http host:port> <grpc host:port> <model> <native path> <rows json>
"""
import json
import sys
import threading
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

FIELDS = ["sepal_length_mm", "sepal_width_mm", "petal_length_mm", "petal_width_mm"]


def inputs(module, row, binary):
    tensors = []
    for j, name in enumerate(FIELDS):
        t = module.InferInput(name, [1], "FP64")
        value = np.array([row[j]], dtype=np.float64)
        if module is httpclient:
            t.set_data_from_numpy(value, binary_data=binary)
        else:
            t.set_data_from_numpy(value)
        tensors.append(t)
    return tensors


def decision(r):
    value = r.as_numpy("decision").tolist()[0]
    return value.decode() if isinstance(value, bytes) else value


def main():
    http_url, grpc_url, model, path, rows_file = sys.argv[1:6]
    rows = json.load(open(rows_file))
    results = {}
    g = grpcclient.InferenceServerClient(grpc_url)
    results["grpc_metadata"] = g.get_model_metadata(model, as_json=True)
    r = g.infer(model, inputs(grpcclient, rows[0], False), request_id="p-1")
    results["grpc_infer"] = {"id": r.get_response().id, "decision": decision(r)}

    answers = {}
    barrier = threading.Barrier(200)

    def one(protocol, i):
        row = rows[i % len(rows)]
        own = httpclient.InferenceServerClient(http_url) if protocol in (0, 1) else None
        barrier.wait()
        try:
            if protocol == 3:
                body = json.dumps([dict(zip(FIELDS, row))]).encode()
                req = urllib.request.Request(f"http://{http_url}{path}", body, {"content-type": "application/json"})
                answers[f"{protocol}:{i}"] = json.load(urllib.request.urlopen(req))["predictions"][0]
                return
            module, client = (grpcclient, g) if protocol == 2 else (httpclient, own)
            answers[f"{protocol}:{i}"] = decision(client.infer(model, inputs(module, row, protocol == 1)))
        except Exception as e:
            answers[f"{protocol}:{i}"] = {"error": str(e)}

    threads = [threading.Thread(target=one, args=(p, i)) for p in range(4) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["burst"] = answers
    print(json.dumps(results))


if __name__ == "__main__":
    main()
