// redesmyn serving the iris ONNX model from a batched TypeScript handler:
// each batch is one onnxruntime-node call.
//
//   PORT=8080 WORKERS=1 MODEL=.models/iris.onnx node redesmyn-onnx.js
import { Endpoint, Schema, Server } from 'redesmyn';
import * as ort from 'onnxruntime-node';

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

async function main(): Promise<void> {
  const session = await ort.InferenceSession.create(process.env.MODEL ?? '.models/iris.onnx', {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });

  const iris = new Endpoint({
    path: '/predictions/iris',
    schema: Iris,
    batch: { maxSize: Number(process.env.BATCH_MAX_SIZE ?? 64), maxDelayMs: Number(process.env.BATCH_MAX_DELAY_MS ?? 0) },
    handler: async (batch) => {
      const { sepal_length, sepal_width, petal_length, petal_width } = batch.columns;
      const n = batch.length;
      const x = new Float32Array(n * 4);
      for (let i = 0; i < n; i++) {
        x[i * 4] = sepal_length[i];
        x[i * 4 + 1] = sepal_width[i];
        x[i * 4 + 2] = petal_length[i];
        x[i * 4 + 3] = petal_width[i];
      }
      const out = await session.run({ input: new ort.Tensor('float32', x, [n, 4]) }, ['label']);
      const labels = out.label.data as BigInt64Array;
      return Int32Array.from(labels, Number); // one class per record
    },
  });

  const server = new Server({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8080),
    workers: Number(process.env.WORKERS ?? 1),
  });
  server.register(iris);
  await server.serve();
  console.log(`redesmyn-onnx listening on ${server.port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.stop().then(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
