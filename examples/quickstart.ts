// The smallest redesmyn server: POST /predictions/sum answers a + b for
// each record, computed in a batched TypeScript handler.
//
//   npm start                      # or: PORT=9000 npm start
//   curl -s localhost:8080/predictions/sum -H 'content-type: application/json' \
//        -d '[{"a": 1, "b": 2}, {"a": 0.5, "b": 0.25}]'
import { Endpoint, Schema, Server } from 'redesmyn';

const Pair = new Schema({ a: Schema.f64(), b: Schema.f64() });

const sum = new Endpoint({
  path: '/predictions/sum',
  schema: Pair,
  batch: { maxSize: 64 },
  handler: (batch) => {
    const { a, b } = batch.columns; // Float64Array views over the batch
    const out = new Float64Array(batch.length);
    for (let i = 0; i < batch.length; i++) out[i] = a[i] + b[i];
    return out; // one prediction per row
  },
});

const server = new Server({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 8080) });
server.register(sum);
server.serve().then(() => {
  console.log(`redesmyn listening on http://${process.env.HOST ?? '127.0.0.1'}:${server.port}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.stop());
}
