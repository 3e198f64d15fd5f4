// redesmyn with a pipeline of STEPS no-op TypeScript steps, one after the
// other: against redesmyn-noop (one no-op endpoint), what each step of a
// pipeline costs per batch (scenario 19).
//
//   PORT=8080 WORKERS=1 STEPS=8 node redesmyn-pipeline.js
import { Endpoint, Pipeline, Schema, Server, type ModelStep } from 'redesmyn';

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

const count = Math.max(1, Number(process.env.STEPS ?? 1));
// One endpoint, run by every step: each answers a 0 per record, which the next reads as its sepal_length.
const noop = new Endpoint({ path: '/predictions/noop', name: 'noop', schema: Iris, handler: (batch) => new Float64Array(batch.length) });
const steps: ModelStep<typeof Iris extends Schema<infer F> ? F : never>[] = Array.from({ length: count }, (_, i) =>
  Pipeline.step(`step${i}`, noop, i === 0 ? {} : { inputs: { sepal_length: `step${i - 1}` } }),
);
const pipeline = new Pipeline({
  name: 'pipeline',
  path: '/predictions/pipeline',
  batch: { maxSize: Number(process.env.BATCH_MAX_SIZE ?? 64), maxDelayMs: Number(process.env.BATCH_MAX_DELAY_MS ?? 0) },
  steps,
});

async function main(): Promise<void> {
  const server = new Server({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8080),
    workers: Number(process.env.WORKERS ?? 1),
  });
  server.register(noop).register(pipeline);
  await server.serve();
  console.log(`redesmyn-pipeline (${count} steps) listening on ${server.port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.stop().then(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
