// The Open Inference Protocol (KServe V2) over REST and gRPC, as real
// clients from PyPI use it: tritonclient (HTTP binary and JSON, gRPC) and
// kserve (REST and gRPC), each family in its own Python process
// (scripts/v2-clients.mjs makes their venvs), against a server with the
// iris Python endpoints and TypeScript endpoints; and grpcurl's reflection
// listing (scripts/go-tools.mjs installs it).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, FsClient, Schema, Server, py } from '../src';
import { ensureClients } from '../scripts/v2-clients.mjs';
import { ensureGoTools } from '../scripts/go-tools.mjs';
import { post } from './helpers';

const run = promisify(execFile);
const root = join(__dirname, '..');
const clients = join(__dirname, 'v2-clients');

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});
const KSERVE_IRIS = [
  [6.8, 2.8, 4.8, 1.4],
  [6.0, 3.4, 4.5, 1.6],
];

/** Values each batch of the echo endpoint held, in arrival order. */
const echoBatches: number[][] = [];

let server: Server;
let http: string;
let grpc: string;
let pythons: Record<string, string>;
let grpcurl: string;

async function driver(family: string, script: string, args: string[]) {
  const { stdout } = await run(pythons[family], [join(clients, script), ...args], { cwd: root, timeout: 120_000 });
  return JSON.parse(stdout);
}

beforeAll(async () => {
  pythons = ensureClients();
  ({ grpcurl } = ensureGoTools(['grpcurl']));
  server = new Server({
    host: '127.0.0.1',
    port: 0,
    grpcPort: 0,
    workers: 2,
    python: { venv: join(root, '.venv'), path: [join(root, 'examples/iris')] },
  });
  server
    .register(new Endpoint({ path: '/iris/classes', name: 'iris', schema: Iris, handler: py.handler('iris_handlers:predict_class') }))
    .register(
      new Endpoint({
        path: '/iris/{run_id}/{model_id}',
        name: 'iris-variants',
        schema: Iris,
        cache: new CacheConfig({
          client: new FsClient({ basePath: join(root, 'examples/iris/models'), pathTemplate: 'iris/{run_id}/{model_id}/model.joblib' }),
          loadModel: py.loader('joblib:load'),
        }),
        handler: py.handler('iris_handlers:predict_with'),
      }),
    )
    .register(
      new Endpoint({
        path: '/types',
        schema: new Schema({ s: Schema.str(), b: Schema.bool(), n: Schema.i64() }),
        handler: (batch) => ({
          label: batch.columns.s.map((s) => s.toUpperCase()),
          flag: Array.from(batch.columns.b, (b) => !b),
          twice: BigInt64Array.from(batch.columns.n, (n) => n * 2n),
        }),
      }),
    )
    .register(
      new Endpoint({
        path: '/echo',
        name: 'echo',
        version: '3',
        outputs: [{ name: 'output-0', datatype: 'FP64', shape: [-1] }],
        schema: new Schema({ x: Schema.f64() }),
        batch: { maxSize: 64, maxDelayMs: 25 },
        handler: (batch) => {
          echoBatches.push(Array.from(batch.columns.x));
          return Float64Array.from(batch.columns.x, (x) => x * 2);
        },
      }),
    );
  await server.serve();
  http = `127.0.0.1:${server.port}`;
  grpc = `127.0.0.1:${server.grpcPort}`;
}, 600_000);

afterAll(() => server?.stop());

describe('V2 over REST and gRPC', () => {
  it('tells its gRPC port and serves V2 REST next to the native path', async () => {
    expect(server.grpcPort).toBeGreaterThan(0);
    expect(server.grpcPort).not.toBe(server.port);
    const meta = await (await fetch(`http://${http}/v2/models/echo`)).json();
    expect(meta).toEqual({
      name: 'echo',
      versions: ['3'],
      platform: 'redesmyn',
      inputs: [{ name: 'x', datatype: 'FP64', shape: [-1] }],
      outputs: [{ name: 'output-0', datatype: 'FP64', shape: [-1] }],
      parameters: { state: 'idle' },
    });
    const types = await (await fetch(`http://${http}/v2/models/types`)).json();
    expect(types.inputs.map((i: { datatype: string }) => i.datatype)).toEqual(['BYTES', 'BOOL', 'INT64']);
  });

  it('tritonclient HTTP (binary and JSON) and gRPC: health, metadata and iris classes [1, 1]', async () => {
    const r = await driver('triton', 'triton.py', [http, grpc, 'iris']);
    for (const key of ['http_live', 'http_ready', 'http_model_ready', 'grpc_live', 'grpc_ready', 'grpc_model_ready']) {
      expect(r[key], key).toBe(true);
    }
    expect(r.http_unknown_model_ready).toBe(false);
    expect(r.http_server_metadata.name).toBe('redesmyn');
    expect(r.http_server_metadata.extensions).toContain('binary_tensor_data');
    expect(r.grpc_server_metadata.name).toBe('redesmyn');
    expect(r.http_model_metadata.inputs).toHaveLength(4);
    expect(r.grpc_model_metadata.name).toBe('iris');
    expect(r.http_infer_binary).toEqual({ id: 't-1', output: [1, 1] });
    expect(r.http_infer_json).toEqual({ id: 't-1', output: [1, 1] });
    expect(r.grpc_infer).toEqual({ id: 'g-1', output: [1, 1] });
  }, 120_000);

  it('kserve REST and gRPC: health, model ready and iris classes [1, 1]', async () => {
    const r = await driver('kserve', 'kserve_client.py', [`http://${http}`, grpc, 'iris']);
    for (const key of ['rest_live', 'rest_ready', 'rest_model_ready', 'grpc_live', 'grpc_ready', 'grpc_model_ready']) {
      expect(r[key], key).toBe(true);
    }
    expect(r.rest_infer).toEqual({ id: 'k-1', output: [1, 1] });
    expect(r.grpc_infer).toEqual({ id: 'k-1', output: [1, 1] });
  }, 120_000);

  it('BYTES, BOOL and INT64 through a TypeScript handler; a variant by parameters; every bad body; a mixed burst', async () => {
    echoBatches.length = 0;
    const r = await driver('triton', 'checks.py', [http, grpc, 'types', 'iris-variants', 'echo', '/echo']);
    const typed = { label: ['A', 'BB', 'É'], flag: [false, true, false], twice: [2, -4, 2 ** 41] };
    expect(r.types_http_binary).toEqual(typed);
    expect(r.types_http_json).toEqual(typed);
    expect(r.types_grpc).toEqual(typed);

    const native = await post(`http://${http}/iris/1/2`, KSERVE_IRIS.map(([a, b, c, d]) => ({ sepal_length: a, sepal_width: b, petal_length: c, petal_width: d })));
    expect(native.status).toBe(200);
    expect(r.variant_http).toEqual(native.body.predictions);
    expect(r.variant_grpc).toEqual(native.body.predictions);
    expect(r.after_bad).toEqual(native.body.predictions);
    expect(r.variant_grpc_missing.error).toMatch(/INVALID_ARGUMENT.*'run_id' and 'model_id'/s);
    expect(r.grpc_bad_shape.error).toMatch(/INVALID_ARGUMENT.*input-0.*needs F = 4 columns/s);
    expect(r.grpc_unknown_model.error).toMatch(/NOT_FOUND.*unknown model 'no-such-model'/s);

    const bad: Record<string, RegExp> = {
      short_data: /input 'input-0'.*holds 8 elements but the data has 3/,
      long_data: /input 'input-0'.*holds 4 elements but the data has 5/,
      wrong_shape: /input 'input-0' is not one of the model's inputs.*needs F = 4 columns.*\[1, 3\]/,
      unknown_datatype: /unknown datatype 'FP99'/,
      duplicate_inputs: /input 'input-0' appears twice/,
      binary_past_body: /binary_data_size 64 runs past the end of the body/,
      header_longer_than_body: /Inference-Header-Content-Length 100000 is larger than the body/,
      header_absurd: /is not a byte count/,
      malformed: /malformed inference request/,
    };
    for (const [key, message] of Object.entries(bad)) {
      expect(r[`bad_${key}`].status, key).toBe(400);
      expect(r[`bad_${key}`].body.error, key).toMatch(message);
    }

    // 200 requests, 50 per protocol: each answer is its own value doubled.
    const burst = r.burst as Record<string, unknown>;
    expect(Object.keys(burst)).toHaveLength(200);
    for (const [x, y] of Object.entries(burst)) expect(y, `x=${x}`).toBe(Number(x) * 2);
    const protocolsIn = (batch: number[]) => new Set(batch.map((x) => Math.floor(x / 1000)));
    expect(echoBatches.flat().sort((a, b) => a - b)).toEqual(Object.keys(burst).map(Number).sort((a, b) => a - b));
    expect(Math.max(...echoBatches.map((b) => protocolsIn(b).size))).toBeGreaterThan(1);

    const metrics = await (await fetch(`http://${http}/metrics`)).text();
    for (const protocol of ['native', 'v2-rest', 'v2-grpc']) {
      const m = metrics.match(new RegExp(`redesmyn_protocol_requests_total\\{endpoint="/echo",protocol="${protocol}"\\} (\\d+)`));
      expect(Number(m?.[1]), protocol).toBeGreaterThanOrEqual(50);
    }
  }, 180_000);

  it('answers the V1 shape over plain HTTP: instances as rows or records, predictions in order', async () => {
    const r = await post(`http://${http}/v1/models/iris:predict`, {
      instances: [KSERVE_IRIS[0], { sepal_length: 6.0, sepal_width: 3.4, petal_length: 4.5, petal_width: 1.6 }],
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ predictions: [1, 1] });
    const status = await fetch(`http://${http}/v1/models/iris`);
    expect(await status.json()).toEqual({ name: 'iris', ready: true });
    const bad = await post(`http://${http}/v1/models/iris:predict`, { instances: [[1, 2, 3]] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/instance 0 has 3 values; the model takes 4/);
    const missing = await post(`http://${http}/v1/models/iris-variants:predict`, { instances: [KSERVE_IRIS[0]] });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatch(/'run_id' and 'model_id'/);
  });

  it('lists its gRPC services by reflection (grpcurl) and answers the standard health check', async () => {
    const { stdout } = await run(grpcurl, ['-plaintext', grpc, 'list']);
    expect(stdout.split('\n')).toEqual(expect.arrayContaining(['inference.GRPCInferenceService', 'grpc.health.v1.Health']));
    const health = await run(grpcurl, ['-plaintext', grpc, 'grpc.health.v1.Health/Check']);
    expect(JSON.parse(health.stdout)).toEqual({ status: 'SERVING' });
    const live = await run(grpcurl, ['-plaintext', grpc, 'inference.GRPCInferenceService/ServerLive']);
    expect(JSON.parse(live.stdout)).toEqual({ live: true });
  }, 60_000);

  it('stops gRPC with the server', async () => {
    const other = new Server({ host: '127.0.0.1', port: 0, grpcPort: 0 });
    other.register(new Endpoint({ path: '/one', schema: new Schema({ x: Schema.f64() }), handler: (b) => b.columns.x }));
    await other.serve();
    const port = other.grpcPort;
    await run(grpcurl, ['-plaintext', `127.0.0.1:${port}`, 'inference.GRPCInferenceService/ServerReady']);
    await other.stop();
    await expect(run(grpcurl, ['-plaintext', '-max-time', '2', `127.0.0.1:${port}`, 'inference.GRPCInferenceService/ServerLive'])).rejects.toThrow();
  }, 30_000);
});
