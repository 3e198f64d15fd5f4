// redesmyn serving the iris scikit-learn model from an in-process Python
// handler (iris_handler.py), batched: each batch is one predict call.
//
//   PORT=8080 WORKERS=1 VENV=bench/.venv-peers HANDLER_DIR=bench/servers \
//     IRIS_MODEL=bench/.models/iris.joblib [PY_WORKERS=2] node redesmyn-iris.js
//
// PREDICTION_CACHE_MAX_ENTRIES=N turns the prediction cache on (scenario 15).
//
// Exits with code 3 when this build of redesmyn has no Python handlers yet,
// which the harness reports as "not available".
import { join } from 'node:path';
import * as redesmyn from 'redesmyn';
import { Endpoint, Schema, Server } from 'redesmyn';

const NOT_AVAILABLE = 3;

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

async function main(): Promise<void> {
  // Looked up at run time so this file compiles against builds without `py`.
  const py = (redesmyn as Record<string, unknown>).py as { handler?: (spec: string, options?: object) => unknown } | undefined;
  if (typeof py?.handler !== 'function') {
    console.error('REDESMYN_NOT_AVAILABLE: this build of redesmyn exports no py.handler');
    process.exit(NOT_AVAILABLE);
  }

  const cacheEntries = Number(process.env.PREDICTION_CACHE_MAX_ENTRIES ?? 0);
  const iris = new Endpoint({
    path: '/predictions/iris',
    schema: Iris,
    batch: {
      maxSize: Number(process.env.BATCH_MAX_SIZE ?? 64),
      maxDelayMs: Number(process.env.BATCH_MAX_DELAY_MS ?? 0),
      // BATCH_SPREAD=0|1: whether to split the queue over free batch slots (scenario 15).
      ...(process.env.BATCH_SPREAD ? { spread: process.env.BATCH_SPREAD === '1' } : {}),
    },
    // PY_WORKERS=N: the handler in N Python worker processes (scenarios 15 and 16).
    handler: py.handler('iris_handler:predict', process.env.PY_WORKERS ? { workers: Number(process.env.PY_WORKERS) } : undefined) as never,
    // Spread in only when asked, so this file compiles against builds without the option.
    ...((cacheEntries > 0 ? { predictionCache: { maxEntries: cacheEntries } } : {}) as object),
  });

  const options = {
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8080),
    workers: Number(process.env.WORKERS ?? 1),
    // V2 gRPC beside HTTP when GRPC_PORT is set (scenario 7).
    ...(process.env.GRPC_PORT ? { grpcPort: Number(process.env.GRPC_PORT) } : {}),
    python: { venv: process.env.VENV ?? '.venv', path: [process.env.HANDLER_DIR ?? join(__dirname, '..', '..', '..', 'servers')] },
  };
  let server: Server;
  try {
    server = new Server(options as ConstructorParameters<typeof Server>[0]);
    server.register(iris);
    await server.serve();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/python/i.test(message) && /(unknown|not supported|unsupported|not available|unexpected)/i.test(message)) {
      console.error(`REDESMYN_NOT_AVAILABLE: ${message}`);
      process.exit(NOT_AVAILABLE);
    }
    throw error;
  }
  console.log(`redesmyn-iris listening on ${server.port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.stop().then(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
