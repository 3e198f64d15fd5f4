"""Writes one gRPC-framed ModelInferRequest (the iris row as an FP64 [1, 4]
tensor in typed contents) for h2load to POST: a 5-byte gRPC message prefix
(uncompressed flag, big-endian length) followed by the protobuf, encoded by
MLServer's own generated KServe V2 classes.

    python grpc_body.py MODEL_NAME OUT_FILE
"""

import struct
import sys

from mlserver.grpc import dataplane_pb2 as pb


def main() -> None:
    model, out = sys.argv[1], sys.argv[2]
    request = pb.ModelInferRequest(
        model_name=model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="predict",
                datatype="FP64",
                shape=[1, 4],
                contents=pb.InferTensorContents(fp64_contents=[5.9, 3.0, 5.1, 1.8]),
            )
        ],
    )
    message = request.SerializeToString()
    with open(out, "wb") as f:
        f.write(struct.pack(">BI", 0, len(message)) + message)


if __name__ == "__main__":
    main()
