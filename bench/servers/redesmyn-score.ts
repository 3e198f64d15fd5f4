// redesmyn scoring a Parquet file through an endpoint (scenario 13): the
// iris model's Python handler (iris_handler.py) or a no-op TypeScript
// handler, `endpoint.score()` with chunks of BATCH rows. Prints one JSON
// line: rows, scored, the run's own seconds and rows/s, and peak RSS.
//
//   INPUT=in.parquet OUTPUT=out.parquet MODEL=iris|noop BATCH=50000 \
//     VENV=bench/.venv-peers HANDLER_DIR=bench/servers IRIS_MODEL=bench/.models/iris.joblib \
//     node redesmyn-score.js
import { join } from 'node:path';
import { Endpoint, Schema, Server, py } from 'redesmyn';

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

async function main(): Promise<void> {
  const batch = Number(process.env.BATCH ?? 50_000);
  const noop = process.env.MODEL === 'noop';
  const endpoint = new Endpoint({
    path: '/score',
    schema: Iris,
    batch: { maxSize: batch },
    handler: noop ? (b) => b.columns.sepal_length : (py.handler('iris_handler:predict') as never),
  });
  const server = new Server({
    host: '127.0.0.1',
    port: 0,
    workers: 1,
    metrics: false,
    python: { venv: process.env.VENV ?? '.venv', path: [process.env.HANDLER_DIR ?? join(__dirname, '..', '..', '..', 'servers')] },
  });
  server.register(endpoint);
  await server.serve();
  try {
    const s = await endpoint.score({ input: process.env.INPUT as string, output: process.env.OUTPUT as string, batchSize: batch });
    const line = { rows: s.rows, scored: s.scored, seconds: s.elapsedMs / 1000, rowsPerSecond: s.rowsPerSecond, maxRssKiB: process.resourceUsage().maxRSS };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
