// redesmyn with a no-op TypeScript handler: the cost of redesmyn's own path
// (HTTP, parsing into columns, batching, the hop to Node and back).
//
//   PORT=8080 WORKERS=1 node redesmyn-noop.js
import { Endpoint, Schema, Server } from 'redesmyn';

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

// POISON=1: a batch holding a record with a negative sepal_length fails
// (the poison scenario sends one such request in a hundred).
const poison = process.env.POISON === '1';

const noop = new Endpoint({
  path: '/predictions/noop',
  schema: Iris,
  batch: {
    maxSize: Number(process.env.BATCH_MAX_SIZE ?? 64),
    maxDelayMs: Number(process.env.BATCH_MAX_DELAY_MS ?? 0),
    isolatePoison: process.env.ISOLATE !== '0',
  },
  handler: (batch) => {
    if (poison && batch.columns.sepal_length.some((x) => x < 0)) throw new Error('poison record');
    return new Float64Array(batch.length); // one 0 per record
  },
});

async function main(): Promise<void> {
  const server = new Server({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8080),
    workers: Number(process.env.WORKERS ?? 1),
    metrics: process.env.METRICS !== '0',
  });
  server.register(noop);
  await server.serve();
  console.log(`redesmyn-noop listening on ${server.port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.stop().then(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
