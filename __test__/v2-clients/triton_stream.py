"""tritonclient's gRPC stream (start_stream / async_stream_infer) against a
redesmyn streaming model: several requests on one stream, correlated by id.

usage: triton_stream.py <grpc host:port> <model> <failing model> PROMPT...
Sends one request per prompt (ids p0, p1, ...) and, between them, one to the
failing model; prints {"responses": {id: {"chunks": [...], "final": bool}},
"errors": [...], "order": [id, ...]} once every request got its final response.
"""
import json
import queue
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main():
    url, model, failing, prompts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    events = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: events.put((result, error)))

    def send(model_name, request_id, prompt):
        x = grpcclient.InferInput("prompt", [1], "BYTES")
        x.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))
        client.async_stream_infer(model_name, [x], request_id=request_id)

    for i, prompt in enumerate(prompts):
        send(model, f"p{i}", prompt)
        if i == 0:
            send(failing, "f", "x")
    responses = {f"p{i}": {"chunks": [], "final": False} for i in range(len(prompts))}
    errors, order = [], []
    failing_done = False
    while not (failing_done and all(r["final"] for r in responses.values())):
        result, error = events.get(timeout=30)
        if error is not None:
            # In-band: the request failed, the stream stays open (no id on an error).
            errors.append(str(error))
            failing_done = True
            continue
        response = result.get_response()
        final = response.parameters.get("triton_final_response")
        is_final = bool(final and final.bool_param)
        if response.id == "f":
            failing_done = failing_done or is_final
            if response.outputs:
                order.append("f")
            continue
        order.append(response.id)
        entry = responses[response.id]
        output = result.as_numpy("output-0")
        if output is not None and len(output):
            entry["chunks"].extend(v.decode() if isinstance(v, bytes) else str(v) for v in output.tolist())
        entry["final"] = entry["final"] or is_final
    client.stop_stream()
    print(json.dumps({"responses": responses, "errors": errors, "order": order}))


if __name__ == "__main__":
    main()
