"""MLServer's streaming runtime for the benchmark: `predict_stream` yields
CHUNKS responses per request, no delay (the no-op generator of scenario 8).

Served with parallel_workers 0, gzip off and metrics off: MLServer streams
only that way. Clients call POST /v2/models/stream/infer_stream (SSE).
"""

import os

from mlserver import MLModel
from mlserver.types import InferenceResponse, ResponseOutput

CHUNKS = int(os.environ.get("CHUNKS", "50"))


class NoopStream(MLModel):
    async def load(self) -> bool:
        return True

    async def predict_stream(self, payloads):
        async for _payload in payloads:
            for i in range(CHUNKS):
                yield InferenceResponse(
                    model_name=self.name,
                    outputs=[ResponseOutput(name="output", shape=[1], datatype="BYTES", data=[f"tok{i}"])],
                )
