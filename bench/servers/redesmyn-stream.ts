// redesmyn with a no-op streaming TypeScript handler: CHUNKS steps per
// stream, no delay, so the cost measured is redesmyn's streaming path (SSE
// framing, per-row channels, flow control, the hop to Node per step).
//
//   PORT=8080 WORKERS=1 CHUNKS=50 node redesmyn-stream.js
import { Endpoint, Schema, Server } from 'redesmyn';

const chunks = Number(process.env.CHUNKS ?? 50);

const stream = new Endpoint({
  path: '/predictions/stream',
  schema: new Schema({ prompt: Schema.str() }),
  stream: true,
  batch: { maxSize: Number(process.env.BATCH_MAX_SIZE ?? 64), maxDelayMs: Number(process.env.BATCH_MAX_DELAY_MS ?? 0) },
  async *handler(batch) {
    for (let i = 0; i < chunks; i++) yield new Array<string>(batch.length).fill(`tok${i}`);
  },
});

async function main(): Promise<void> {
  const server = new Server({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8080),
    workers: Number(process.env.WORKERS ?? 1),
    metrics: process.env.METRICS !== '0',
  });
  server.register(stream);
  await server.serve();
  console.log(`redesmyn-stream listening on ${server.port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.stop().then(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
