"""kserve's V2 REST and gRPC clients against a redesmyn server: prints one
JSON object of results. Usage: python kserve_client.py <http base url> <grpc host:port or -> <model>
"""
import asyncio
import json
import sys

import numpy as np
from kserve import InferInput, InferRequest, InferenceRESTClient, RESTConfig

IRIS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


async def attempt(results, key, coro):
    try:
        results[key] = await coro
    except Exception as e:
        results[key] = {"error": str(e)}


def iris_request(model):
    x = InferInput(name="input-0", shape=list(IRIS.shape), datatype="FP32")
    x.set_data_from_numpy(IRIS, binary_data=False)
    return InferRequest(model_name=model, infer_inputs=[x], request_id="k-1")


async def main():
    base, grpc_url, model = sys.argv[1], sys.argv[2], sys.argv[3]
    results = {}
    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))

    async def infer_rest():
        r = await rest.infer(base, iris_request(model), model_name=model)
        return {"id": r.id, "output": r.outputs[0].as_numpy().tolist()}

    await attempt(results, "rest_live", rest.is_server_live(base))
    await attempt(results, "rest_ready", rest.is_server_ready(base))
    await attempt(results, "rest_model_ready", rest.is_model_ready(base, model))
    await attempt(results, "rest_infer", infer_rest())
    await rest.close()
    if grpc_url != "-":
        from kserve import InferenceGRPCClient

        g = InferenceGRPCClient(grpc_url, timeout=10)

        async def infer_grpc():
            r = await g.infer(iris_request(model))
            return {"id": r.id, "output": r.outputs[0].as_numpy().tolist()}

        await attempt(results, "grpc_live", g.is_server_live())
        await attempt(results, "grpc_ready", g.is_server_ready())
        await attempt(results, "grpc_model_ready", g.is_model_ready(model))
        await attempt(results, "grpc_infer", infer_grpc())
        await g.close()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
