// Every server the benchmark starts, and the scenarios that compare them.
import { join } from 'node:path';
import { BATCH, BENCH, BODIES, MLSERVER_PARALLEL_WORKERS, MODELS, PY, VENV } from './config.mjs';
import { freshReloadRepository } from './reload.mjs';

const IRIS_BODY = { file: join(BODIES, 'iris.json'), contentType: 'application/json' };
// 1% of requests carry a poison record (a negative sepal_length), 99% a
// fresh iris record (see wrk/post.lua's pool).
const IRIS_POISON_BODY = { file: join(BODIES, 'iris-poison.txt'), contentType: 'application/json', repeat: 0.01, probe: IRIS_BODY.file };
const IRIS_V2_BODY = { file: join(BODIES, 'iris-v2.json'), contentType: 'application/json' };
// 80% of requests repeat one of 1000 iris records seen before, 20% carry a
// record never sent before (see wrk/post.lua).
const IRIS_REPEAT_BODY = { file: join(BODIES, 'iris-repeat.txt'), contentType: 'application/json', repeat: 0.8, probe: IRIS_BODY.file };
const PROMPT_BODY = { file: join(BODIES, 'prompt.json'), contentType: 'application/json' };
const PROMPT_V2_BODY = { file: join(BODIES, 'prompt-v2.json'), contentType: 'application/json' };

/** Chunks per stream in the streaming scenario. */
export const STREAM_CHUNKS = 50;

const redesmynEnv = (ctx) => ({
  WORKERS: '1',
  BATCH_MAX_SIZE: String(BATCH.maxSize),
  BATCH_MAX_DELAY_MS: String(BATCH.maxDelayMs),
  ...(ctx.redesmynLog ? { RUST_LOG: ctx.redesmynLog } : {}),
});

/**
 * A contender: how to start it on `port` (ctx carries build outputs), where
 * its readiness probe and its prediction route are, and what body it takes.
 */
export const CONTENDERS = {
  'actix-echo': {
    name: 'actix-web JSON echo (ceiling)',
    start: (ctx, port) => ({ cmd: ctx.echoBin, args: [], env: { PORT: String(port), WORKERS: '1' } }),
    ready: '/health/ready',
    route: '/echo',
    body: IRIS_BODY,
  },
  'redesmyn-noop': {
    name: 'redesmyn, no-op TS handler',
    redesmyn: true,
    start: (ctx, port) => ({
      cmd: process.execPath,
      args: [join(ctx.serversDir, 'redesmyn-noop.js')],
      env: { PORT: String(port), ...redesmynEnv(ctx) },
    }),
    ready: '/health/ready',
    route: '/predictions/noop',
    body: IRIS_BODY,
  },
  'node-http': {
    name: 'node:http, nothing else (floor)',
    start: (ctx, port) => ({ cmd: process.execPath, args: [join(BENCH, 'peers', 'node-http.mjs')], env: { PORT: String(port) } }),
    ready: '/health/ready',
  },
  'fastify-noop': {
    name: 'Fastify, no-op handler',
    start: (ctx, port) => ({
      cmd: process.execPath,
      args: [join(BENCH, 'peers', 'fastify.mjs')],
      env: { PORT: String(port), ROUTES: 'noop' },
    }),
    ready: '/health/ready',
    route: '/predictions/noop',
    body: IRIS_BODY,
  },
  'redesmyn-iris': {
    name: 'redesmyn, Python handler (batched)',
    redesmyn: true,
    python: true,
    start: (ctx, port) => ({
      cmd: process.execPath,
      args: [join(ctx.serversDir, 'redesmyn-iris.js')],
      env: {
        PORT: String(port),
        VENV: process.env.BENCH_REDESMYN_VENV ?? VENV,
        HANDLER_DIR: join(BENCH, 'servers'),
        IRIS_MODEL: join(MODELS, 'iris.joblib'),
        ...redesmynEnv(ctx),
      },
    }),
    ready: '/health/ready',
    route: '/predictions/iris',
    body: IRIS_BODY,
    startTimeoutMs: 60_000,
  },
  mlserver: {
    name: 'MLServer, sklearn runtime (adaptive batching)',
    start: (ctx, port) => ({
      cmd: join(VENV, 'bin', 'mlserver'),
      args: ['start', join(MODELS, 'mlserver')],
      // MLServer writes .metrics/.envs folders into its working directory.
      cwd: ctx.scratch,
      env: {
        MLSERVER_HTTP_PORT: String(port),
        MLSERVER_GRPC_PORT: String(ctx.extraPorts[0]),
        MLSERVER_METRICS_PORT: String(ctx.extraPorts[1]),
        MLSERVER_PARALLEL_WORKERS: String(MLSERVER_PARALLEL_WORKERS),
      },
    }),
    extraPorts: 2,
    ready: '/v2/models/iris/ready',
    route: '/v2/models/iris/infer',
    body: IRIS_V2_BODY,
    startTimeoutMs: 120_000,
  },
  fastapi: {
    name: 'FastAPI + uvicorn, predict per request',
    start: (ctx, port) => ({
      cmd: PY,
      args: [join(BENCH, 'peers', 'fastapi_iris.py')],
      env: { PORT: String(port), MODEL: join(MODELS, 'iris.joblib') },
    }),
    ready: '/health/ready',
    route: '/predictions/iris',
    body: IRIS_BODY,
    startTimeoutMs: 60_000,
  },
  'redesmyn-onnx': {
    name: 'redesmyn, onnxruntime-node TS handler (batched)',
    redesmyn: true,
    start: (ctx, port) => ({
      cmd: process.execPath,
      args: [join(ctx.serversDir, 'redesmyn-onnx.js')],
      env: { PORT: String(port), MODEL: join(MODELS, 'iris.onnx'), ...redesmynEnv(ctx) },
    }),
    ready: '/health/ready',
    route: '/predictions/iris',
    body: IRIS_BODY,
  },
  'fastify-onnx': {
    name: 'Fastify, onnxruntime-node per request',
    start: (ctx, port) => ({
      cmd: process.execPath,
      args: [join(BENCH, 'peers', 'fastify.mjs')],
      env: { PORT: String(port), ROUTES: 'onnx', MODEL: join(MODELS, 'iris.onnx') },
    }),
    ready: '/health/ready',
    route: '/predictions/iris',
    body: IRIS_BODY,
  },
};

// The same Python iris server, called over the Open Inference Protocol (V2
// REST) with MLServer's own request body: one FP64 [1, 4] input, read as the
// schema's four fields in order. The model is named after the endpoint's path.
CONTENDERS['redesmyn-iris-v2'] = {
  ...CONTENDERS['redesmyn-iris'],
  name: 'redesmyn, Python handler, V2 REST',
  route: '/v2/models/predictions-iris/infer',
  body: IRIS_V2_BODY,
};

// The same Python iris server called over gRPC (ModelInfer, typed FP64
// contents) on its gRPC port, and MLServer on its own: both driven by ghz.
CONTENDERS['redesmyn-iris-grpc'] = {
  ...CONTENDERS['redesmyn-iris'],
  name: 'redesmyn, Python handler, V2 gRPC',
  start: (ctx, port) => {
    const spec = CONTENDERS['redesmyn-iris'].start(ctx, port);
    return { ...spec, env: { ...spec.env, GRPC_PORT: String(ctx.extraPorts[0]) } };
  },
  extraPorts: 1,
  grpc: { port: (ctx) => ctx.extraPorts[0], model: 'predictions-iris' },
};
CONTENDERS['mlserver-grpc'] = {
  ...CONTENDERS.mlserver,
  name: 'MLServer, sklearn runtime, gRPC',
  grpc: { port: (ctx) => ctx.extraPorts[0], model: 'iris' },
};

// Streaming (scenario 8): a no-op generator of STREAM_CHUNKS chunks, over SSE.
CONTENDERS['redesmyn-stream'] = {
  name: 'redesmyn, no-op TS generator, SSE',
  redesmyn: true,
  start: (ctx, port) => ({
    cmd: process.execPath,
    args: [join(ctx.serversDir, 'redesmyn-stream.js')],
    env: { PORT: String(port), CHUNKS: String(STREAM_CHUNKS), ...redesmynEnv(ctx) },
  }),
  ready: '/health/ready',
  route: '/predictions/stream',
  body: PROMPT_BODY,
  // Each stream ends with one {"row":0,"done":true} frame after its chunks.
  chunkFrames: (frames) => Math.max(0, frames - 1),
};
CONTENDERS['mlserver-stream'] = {
  name: 'MLServer, predict_stream, SSE (infer_stream)',
  start: (ctx, port) => ({
    cmd: join(VENV, 'bin', 'mlserver'),
    args: ['start', join(MODELS, 'mlserver-stream')],
    cwd: ctx.scratch,
    env: {
      MLSERVER_HTTP_PORT: String(port),
      MLSERVER_GRPC_PORT: String(ctx.extraPorts[0]),
      MLSERVER_METRICS_PORT: String(ctx.extraPorts[1]),
      // MLServer streams only in-process, without gzip or metrics.
      MLSERVER_PARALLEL_WORKERS: '0',
      CHUNKS: String(STREAM_CHUNKS),
    },
  }),
  extraPorts: 2,
  ready: '/v2/models/stream/ready',
  route: '/v2/models/stream/infer_stream',
  body: PROMPT_V2_BODY,
  chunkFrames: (frames) => frames,
  startTimeoutMs: 120_000,
};

// The same no-op server with metrics off, to show what recording costs.
CONTENDERS['redesmyn-noop-nometrics'] = {
  ...CONTENDERS['redesmyn-noop'],
  name: 'redesmyn, no-op TS handler, metrics off',
  start: (ctx, port) => {
    const spec = CONTENDERS['redesmyn-noop'].start(ctx, port);
    return { ...spec, env: { ...spec.env, METRICS: '0' } };
  },
};

// Poison isolation's cost: the no-op server with isolation off, and both
// with one request in a hundred failing its batch.
const noopWith = (name, env, body) => ({
  ...CONTENDERS['redesmyn-noop'],
  name,
  ...(body ? { body } : {}),
  start: (ctx, port) => {
    const spec = CONTENDERS['redesmyn-noop'].start(ctx, port);
    return { ...spec, env: { ...spec.env, ...env } };
  },
});
CONTENDERS['redesmyn-noop-noisolate'] = noopWith('redesmyn, no-op TS handler, poison isolation off', { ISOLATE: '0' });
CONTENDERS['redesmyn-noop-poison'] = noopWith('redesmyn, 1% poison requests, isolation on', { POISON: '1' }, IRIS_POISON_BODY);
CONTENDERS['redesmyn-noop-poison-noisolate'] = noopWith(
  'redesmyn, 1% poison requests, isolation off',
  { POISON: '1', ISOLATE: '0' },
  IRIS_POISON_BODY,
);

// `redesmyn serve DIR` from the build under test (its bin, dist/cli.js).
const serveCli = (ctx) => join(ctx.serversDir, '..', 'node_modules', 'redesmyn', 'dist', 'cli.js');
const serve = (ctx, port, dir) => ({
  cmd: process.execPath,
  args: [serveCli(ctx), 'serve', dir, '--port', String(port), '--workers', '1', '--venv', process.env.BENCH_REDESMYN_VENV ?? VENV],
  // onnxruntime's library comes from the onnxruntime-node package bench/ installs.
  cwd: BENCH,
});
CONTENDERS['redesmyn-serve-onnx'] = {
  name: 'redesmyn serve, onnx runtime (a model folder)',
  redesmyn: true,
  start: (ctx, port) => serve(ctx, port, join(MODELS, 'redesmyn-onnx')),
  ready: '/health/ready',
  route: '/predictions/iris',
  body: IRIS_BODY,
};
// A version switch under load (scenario 17): `serve --watch` on a fresh copy
// of a repository holding iris version 1; the scenario drops version 2 in.
CONTENDERS['redesmyn-serve-reload'] = {
  name: 'redesmyn serve --watch, sklearn iris, version 1 -> 2 under load',
  redesmyn: true,
  start: (ctx, port) => {
    ctx.reloadRepo = freshReloadRepository();
    const spec = serve(ctx, port, ctx.reloadRepo);
    return { ...spec, args: [...spec.args, '--watch', '--watch-interval', '200'] };
  },
  ready: '/health/ready',
  route: '/predictions/iris',
  body: IRIS_BODY,
};
// Memory per loaded model (scenario 14): ctx.models copies of the iris model.
CONTENDERS['redesmyn-serve-sklearn-copies'] = {
  name: 'redesmyn serve, sklearn runtime',
  redesmyn: true,
  start: (ctx, port) => serve(ctx, port, join(MODELS, 'memory', `redesmyn-sklearn-${ctx.models}`)),
  ready: '/health/ready',
  startTimeoutMs: 300_000,
};
CONTENDERS['redesmyn-serve-onnx-copies'] = {
  name: 'redesmyn serve, onnx runtime',
  redesmyn: true,
  start: (ctx, port) => serve(ctx, port, join(MODELS, 'memory', `redesmyn-onnx-${ctx.models}`)),
  ready: '/health/ready',
  startTimeoutMs: 300_000,
};
CONTENDERS['mlserver-copies'] = {
  name: 'MLServer, sklearn runtime',
  start: (ctx, port) => ({
    ...CONTENDERS.mlserver.start(ctx, port),
    args: ['start', join(MODELS, 'memory', `mlserver-${ctx.models}`)],
  }),
  extraPorts: 2,
  // Ready once every model has loaded.
  ready: '/v2/health/ready',
  startTimeoutMs: 600_000,
};

// Scoring a file (scenario 13): commands, not servers. Each scores INPUT
// into OUTPUT in chunks of BATCH rows and prints one JSON line (rows,
// seconds of the scoring itself, rows/s, peak RSS in KiB).
const scoreEnv = { VENV: process.env.BENCH_REDESMYN_VENV ?? VENV, HANDLER_DIR: join(BENCH, 'servers'), IRIS_MODEL: join(MODELS, 'iris.joblib') };
CONTENDERS['redesmyn-score-iris'] = {
  name: 'redesmyn `endpoint.score()`, iris Python handler',
  redesmyn: true,
  score: (ctx) => ({ cmd: process.execPath, args: [join(ctx.serversDir, 'redesmyn-score.js')], env: { ...scoreEnv, MODEL: 'iris' } }),
};
CONTENDERS['python-score-iris'] = {
  name: 'plain Python: Polars read, sklearn predict per chunk, Polars write',
  score: () => ({ cmd: PY, args: [join(BENCH, 'peers', 'score_iris.py')], env: scoreEnv }),
};
CONTENDERS['redesmyn-score-noop'] = {
  name: 'redesmyn `endpoint.score()`, no-op TS handler',
  redesmyn: true,
  score: (ctx) => ({ cmd: process.execPath, args: [join(ctx.serversDir, 'redesmyn-score.js')], env: { ...scoreEnv, MODEL: 'noop' } }),
};
// The iris server with a realistic repeat rate, without and with the
// prediction cache (scenario 11).
CONTENDERS['redesmyn-iris-repeat'] = {
  ...CONTENDERS['redesmyn-iris'],
  name: 'redesmyn, Python handler, 80% repeated records, no prediction cache',
  body: IRIS_REPEAT_BODY,
};
CONTENDERS['redesmyn-iris-predcache'] = {
  ...CONTENDERS['redesmyn-iris-repeat'],
  name: 'redesmyn, Python handler, 80% repeated records, prediction cache',
  start: (ctx, port) => {
    const spec = CONTENDERS['redesmyn-iris'].start(ctx, port);
    return { ...spec, env: { ...spec.env, PREDICTION_CACHE_MAX_ENTRIES: '100000' } };
  },
};
// Scenario 15: a CPU-heavy model (300-tree random forest), in-process vs
// two Python worker processes vs MLServer with two parallel workers; and
// scenario 16: the cheap iris model in-process vs two workers (what the
// shared-memory crossing costs when the model costs nothing).
const withEnv = (base, name, env) => ({
  ...CONTENDERS[base],
  name,
  start: (ctx, port) => {
    const spec = CONTENDERS[base].start(ctx, port);
    return { ...spec, env: { ...spec.env, ...env } };
  },
});
const FOREST = join(MODELS, 'forest.joblib');
CONTENDERS['redesmyn-forest'] = withEnv('redesmyn-iris', 'redesmyn, random forest, in-process Python', { IRIS_MODEL: FOREST });
CONTENDERS['redesmyn-forest-workers'] = withEnv('redesmyn-iris', 'redesmyn, random forest, python workers: 2', {
  IRIS_MODEL: FOREST,
  PY_WORKERS: '2',
});
CONTENDERS['redesmyn-forest-workers-spread'] = withEnv('redesmyn-iris', 'redesmyn, random forest, python workers: 2, spread on', {
  IRIS_MODEL: FOREST,
  PY_WORKERS: '2',
  BATCH_SPREAD: '1',
});
CONTENDERS['mlserver-forest'] = {
  ...withEnv('mlserver', 'MLServer, random forest, parallel_workers: 2', { MLSERVER_PARALLEL_WORKERS: '2' }),
  start: (ctx, port) => {
    const spec = CONTENDERS.mlserver.start(ctx, port);
    return { ...spec, args: ['start', join(MODELS, 'mlserver-forest')], env: { ...spec.env, MLSERVER_PARALLEL_WORKERS: '2' } };
  },
  ready: '/v2/models/forest/ready',
  route: '/v2/models/forest/infer',
};
CONTENDERS['redesmyn-iris-workers'] = withEnv('redesmyn-iris', 'redesmyn, Python handler, python workers: 2', { PY_WORKERS: '2' });

for (const steps of [1, 8]) {
  CONTENDERS[`redesmyn-pipeline-${steps}`] = {
    name: `redesmyn, pipeline of ${steps} no-op TS step${steps === 1 ? '' : 's'}`,
    redesmyn: true,
    start: (ctx, port) => ({
      cmd: process.execPath,
      args: [join(ctx.serversDir, 'redesmyn-pipeline.js')],
      env: { PORT: String(port), STEPS: String(steps), ...redesmynEnv(ctx) },
    }),
    ready: '/health/ready',
    route: '/predictions/pipeline',
    body: IRIS_BODY,
  };
}

/** The scenarios, in the numbering. */
export const SCENARIOS = {
  1: {
    kind: 'load',
    title: 'Ceiling: HTTP + JSON with a no-op handler',
    contenders: ['actix-echo', 'redesmyn-noop', 'redesmyn-noop-nometrics', 'fastify-noop'],
    reference: 'redesmyn-noop',
    concurrency: [1, 64],
  },
  2: {
    kind: 'load',
    title: 'scikit-learn iris from Python',
    contenders: ['redesmyn-iris', 'mlserver', 'fastapi'],
    reference: 'redesmyn-iris',
    concurrency: [1, 16, 64],
  },
  3: {
    kind: 'load',
    title: 'ONNX iris: redesmyn with onnxruntime-node from TypeScript, redesmyn serve with its onnx runtime, Fastify + onnxruntime-node, MLServer (sklearn)',
    contenders: ['redesmyn-onnx', 'redesmyn-serve-onnx', 'fastify-onnx', 'mlserver'],
    reference: 'redesmyn-onnx',
    concurrency: [1, 16, 64],
  },
  4: {
    kind: 'cold',
    title: 'Cold start: process start to the first 200 from the readiness probe',
    contenders: ['node-http', 'redesmyn-noop', 'redesmyn-iris', 'mlserver', 'fastify-noop', 'fastapi'],
    labels: {
      'node-http': 'node:http alone (the floor for any Node server)',
      'redesmyn-noop': 'redesmyn, TypeScript only',
      'redesmyn-iris': 'redesmyn, with Python + scikit-learn model',
      mlserver: 'MLServer + sklearn model',
      'fastify-noop': 'Fastify',
      fastapi: 'FastAPI + uvicorn + sklearn model',
    },
  },
  6: {
    kind: 'load',
    title: 'scikit-learn iris from Python over the Open Inference Protocol (V2 REST)',
    contenders: ['redesmyn-iris-v2', 'mlserver', 'redesmyn-iris'],
    reference: 'redesmyn-iris-v2',
    concurrency: [1, 16, 64],
  },
  7: {
    kind: 'load',
    title: 'scikit-learn iris from Python over the Open Inference Protocol (V2 gRPC)',
    contenders: ['redesmyn-iris-grpc', 'mlserver-grpc'],
    reference: 'redesmyn-iris-grpc',
    concurrency: [1, 16, 64],
  },
  8: {
    kind: 'stream',
    title: `Streaming: 64 concurrent SSE streams of ${STREAM_CHUNKS} chunks from a no-op generator`,
    contenders: ['redesmyn-stream', 'mlserver-stream'],
    reference: 'redesmyn-stream',
    concurrency: 64,
  },
  9: {
    kind: 'open',
    title: "Open loop: latency at 50% and 90% of each contender's own peak (vegeta, fixed arrival rate)",
    contenders: ['redesmyn-noop', 'fastify-noop', 'redesmyn-iris', 'mlserver'],
    peakConnections: 64,
    shares: [0.5, 0.9],
  },
  10: {
    kind: 'lone',
    title: 'A lone request: one client, one request at a time, and where its time goes',
    contenders: ['actix-echo', 'fastify-noop', 'redesmyn-noop', 'redesmyn-iris'],
  },
  13: {
    kind: 'score',
    title: 'Scoring a 5,000,000-row Parquet file (iris features and an id), chunks of 50,000 rows',
    contenders: ['redesmyn-score-iris', 'python-score-iris', 'redesmyn-score-noop'],
    reference: 'python-score-iris',
    rows: 5_000_000,
    batch: 50_000,
  },
  14: {
    kind: 'memory',
    title: 'Memory per loaded model: RSS with 50 copies of the iris model loaded, less RSS with one, per model',
    contenders: ['redesmyn-serve-sklearn-copies', 'redesmyn-serve-onnx-copies', 'mlserver-copies'],
  },
  11: {
    kind: 'load',
    title: 'Prediction cache: scikit-learn iris from Python, 80% of records seen before',
    contenders: ['redesmyn-iris-predcache', 'redesmyn-iris-repeat'],
    reference: 'redesmyn-iris-predcache',
    concurrency: [1, 16, 64],
  },
  15: {
    kind: 'load',
    title: 'A CPU-heavy model: a 300-tree random forest, one record per request, in-process vs Python worker processes',
    contenders: ['redesmyn-forest-workers', 'redesmyn-forest-workers-spread', 'redesmyn-forest', 'mlserver-forest'],
    reference: 'redesmyn-forest-workers',
    // At 64 connections (one full 64-row batch in flight) a second worker
    // has nothing to take; 128 connections keep both workers busy.
    concurrency: [64, 128],
    // Worker processes are about using more cores: the servers get both
    // CPUs; wrk (one thread) stays on CPU 0 and shares it with them.
    allCpus: true,
  },
  16: {
    kind: 'load',
    title: 'scikit-learn iris from Python: in-process vs two Python worker processes (the shared-memory crossing)',
    contenders: ['redesmyn-iris', 'redesmyn-iris-workers'],
    reference: 'redesmyn-iris',
    concurrency: [64],
    allCpus: true,
  },
  17: {
    kind: 'reload',
    title: 'A new model version under load: latency over the switch against steady state (`redesmyn serve --watch`, vegeta at 50% of peak)',
    contenders: ['redesmyn-serve-reload'],
    reference: 'redesmyn-serve-reload',
    peakConnections: 64,
    share: 0.5,
  },
  18: {
    kind: 'load',
    title: 'Poison isolation: a no-op TS handler with isolation on and off, nothing failing, then with 1% of requests failing their batch (errors are the poison requests, and, without isolation, the innocent requests of their batches)',
    contenders: ['redesmyn-noop', 'redesmyn-noop-noisolate', 'redesmyn-noop-poison', 'redesmyn-noop-poison-noisolate'],
    reference: 'redesmyn-noop',
    concurrency: [1, 64],
  },
  19: {
    kind: 'load',
    title: 'Pipeline overhead: one no-op endpoint against pipelines of 1 and 8 no-op TypeScript steps in a chain (per step per batch: the latency difference of 8 and 1 steps over 7)',
    contenders: ['redesmyn-noop', 'redesmyn-pipeline-1', 'redesmyn-pipeline-8'],
    reference: 'redesmyn-noop',
    concurrency: [1, 64],
  },
  5: {
    kind: 'soak',
    title: 'Soak: scikit-learn iris from Python, 64 connections',
    contenders: ['redesmyn-iris', 'mlserver', 'fastapi'],
    concurrency: 64,
  },
};
