// Fastify peer.
//
//   PORT=3000 ROUTES=noop node peers/fastify.mjs
//   PORT=3000 ROUTES=onnx MODEL=.models/iris.onnx node peers/fastify.mjs
//
// ROUTES=noop: POST /predictions/noop answers {"predictions": [0, ...]}, one 0
//   per record: the same no-op as redesmyn's no-op handler.
// ROUTES=onnx: POST /predictions/iris runs the iris ONNX model through
//   onnxruntime-node once per request (no batching).
// GET /health/ready answers 200 {"status":"ready"} once everything is loaded.
// Both routes take the same body as every contender: a JSON array of records.
import Fastify from 'fastify';

const routes = new Set((process.env.ROUTES ?? 'noop').split(','));
const app = Fastify({ logger: false });

if (routes.has('noop')) {
  app.post('/predictions/noop', async (request) => {
    const records = request.body;
    return { predictions: records.map(() => 0) };
  });
}

if (routes.has('onnx')) {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(process.env.MODEL ?? '.models/iris.onnx', {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  app.post('/predictions/iris', async (request) => {
    const records = request.body;
    const x = new Float32Array(records.length * 4);
    records.forEach((r, i) => {
      x[i * 4] = r.sepal_length;
      x[i * 4 + 1] = r.sepal_width;
      x[i * 4 + 2] = r.petal_length;
      x[i * 4 + 3] = r.petal_width;
    });
    const out = await session.run({ input: new ort.Tensor('float32', x, [records.length, 4]) }, ['label']);
    return { predictions: Array.from(out.label.data, Number) };
  });
}

app.get('/health/ready', async () => ({ status: 'ready' }));

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) });

for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close().then(() => process.exit(0)));
