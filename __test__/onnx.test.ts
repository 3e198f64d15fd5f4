// The ONNX runtime end to end: scikit-learn's iris LogisticRegression,
// exported by skl2onnx (bench/peers/train_iris.py in the venv
// scripts/v2-clients.mjs makes), served by `onnx.handler(file)` with no
// handler code, over real HTTP: native JSON and V2 REST. onnxruntime is the
// library the onnxruntime-node npm package ships (bench/setup.mjs installs it).
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, FsClient, OnnxHandler, Schema, Server, onnx } from '../src';
import { ensureClients } from '../scripts/v2-clients.mjs';
import { onnxruntimeLibrary } from '../bench/setup.mjs';
import { post } from './helpers';

const run = promisify(execFile);
const root = join(__dirname, '..');

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});
const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;

interface Expected {
  rows: number[][];
  labels: number[];
  probabilities: number[][];
}

let models: string;
let dylib: string;
let expected: Expected;
let server: Server;
let url: string;

const record = (row: number[]) => Object.fromEntries(FEATURES.map((f, j) => [f, row[j]]));

beforeAll(async () => {
  const pythons = ensureClients();
  models = mkdtempSync(join(tmpdir(), 'redesmyn-onnx-'));
  await run(pythons.onnx, [join(root, 'bench/peers/train_iris.py'), models], { cwd: root, timeout: 300_000 });
  dylib = onnxruntimeLibrary();
  expected = JSON.parse(readFileSync(join(models, 'iris-expected.json'), 'utf8'));
  server = new Server({ host: '127.0.0.1', port: 0, workers: 2 });
  server.register(
    new Endpoint({
      path: '/iris',
      name: 'iris-onnx',
      schema: Iris,
      handler: onnx.handler(join(models, 'iris.onnx'), { dylib }),
      batch: { maxSize: 32, maxDelayMs: 2 },
    }),
  );
  // A model cache of .onnx artifacts: /cached/{version} loads <models>/cache/{version}/iris.onnx.
  mkdirSync(join(models, 'cache', 'v1'), { recursive: true });
  copyFileSync(join(models, 'iris.onnx'), join(models, 'cache', 'v1', 'iris.onnx'));
  server.register(
    new Endpoint({
      path: '/cached/{version}',
      schema: Iris,
      handler: onnx.handler(),
      cache: new CacheConfig({
        client: new FsClient({ basePath: join(models, 'cache'), pathTemplate: '{version}/iris.onnx' }),
        loadModel: onnx.loader({ dylib }),
      }),
    }),
  );
  await server.serve();
  url = `http://127.0.0.1:${server.port}`;
}, 600_000);

afterAll(async () => {
  await server?.stop();
});

function expectClose(got: number[], want: number[]) {
  expect(got).toHaveLength(want.length);
  got.forEach((p, k) => expect(Math.abs(p - want[k])).toBeLessThan(1e-4));
}

describe('onnx.handler over native JSON', () => {
  it("answers every iris row with scikit-learn's label and probabilities", async () => {
    const res = await post(`${url}/iris`, expected.rows.map(record));
    expect(res.body.error).toBeUndefined();
    expect(res.status).toBe(200);
    expect(res.body.predictions).toHaveLength(150);
    res.body.predictions.forEach((p: { label: number; probabilities: number[] }, i: number) => {
      expect(p.label).toBe(expected.labels[i]);
      expectClose(p.probabilities, expected.probabilities[i]);
    });
  });

  it('batches concurrent requests and gives each its own rows back', async () => {
    const picks = Array.from({ length: 60 }, (_, i) => (i * 7) % 150);
    const replies = await Promise.all(picks.map((i) => post(`${url}/iris`, record(expected.rows[i]))));
    replies.forEach((res, n) => {
      expect(res.status).toBe(200);
      expect(res.body.predictions[0].label).toBe(expected.labels[picks[n]]);
    });
  });

  it('refuses bad records with a 4xx and keeps serving', async () => {
    const missing = await post(`${url}/iris`, [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4 }]);
    expect(missing.status).toBeGreaterThanOrEqual(400);
    expect(missing.status).toBeLessThan(500);
    expect(missing.body.error).toMatch(/petal_width/);
    const wrongType = await post(`${url}/iris`, [{ ...record(expected.rows[0]), sepal_length: 'wide' }]);
    expect(wrongType.status).toBeGreaterThanOrEqual(400);
    expect(wrongType.status).toBeLessThan(500);
    const ok = await post(`${url}/iris`, [record(expected.rows[100])]);
    expect(ok.status).toBe(200);
    expect(ok.body.predictions[0].label).toBe(expected.labels[100]);
  });
});

describe('onnx.loader in a model cache', () => {
  it('loads the artifact the path selects and fails a missing one with a clear error', async () => {
    const ok = await post(`${url}/cached/v1`, [record(expected.rows[120])]);
    expect(ok.body.error).toBeUndefined();
    expect(ok.body.predictions[0].label).toBe(expected.labels[120]);
    const missing = await post(`${url}/cached/v9`, [record(expected.rows[120])]);
    expect(missing.status).toBeGreaterThanOrEqual(400);
    expect(missing.body.error).toMatch(/v9/);
    const again = await post(`${url}/cached/v1`, [record(expected.rows[0])]);
    expect(again.body.predictions[0].label).toBe(expected.labels[0]);
  });
});

describe('onnx.handler over V2 REST', () => {
  it('infers an [N, 4] FP32 matrix and answers label and probabilities tensors', async () => {
    const rows = expected.rows.slice(48, 53);
    const res = await post(`${url}/v2/models/iris-onnx/infer`, {
      id: 'onnx-1',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4], data: rows.flat() }],
    });
    expect(res.body.error).toBeUndefined();
    expect(res.status).toBe(200);
    expect(res.body.id).toBe('onnx-1');
    const outputs = Object.fromEntries(res.body.outputs.map((o: { name: string }) => [o.name, o]));
    expect(outputs.label).toMatchObject({ datatype: 'INT64', shape: [5], data: expected.labels.slice(48, 53) });
    expect(outputs.probabilities).toMatchObject({ datatype: 'FP32', shape: [5, 3] });
    expectClose(outputs.probabilities.data, expected.probabilities.slice(48, 53).flat());
  });

  it("lists the graph's outputs in the model metadata", async () => {
    const res = await fetch(`${url}/v2/models/iris-onnx`);
    expect(res.status).toBe(200);
    const meta = await res.json();
    expect(meta.outputs).toEqual([
      { name: 'label', datatype: 'INT64', shape: [-1] },
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
    ]);
    expect(meta.inputs.map((i: { name: string }) => i.name)).toEqual([...FEATURES]);
  });
});

describe('bad ONNX endpoints', () => {
  it('refuses a schema whose width is not the model input, a missing file and a garbage file, at registration', async () => {
    const other = new Server({ host: '127.0.0.1', port: 0 });
    const three = new Schema({ a: Schema.f64(), b: Schema.f64(), c: Schema.f64() });
    expect(() =>
      other.register(new Endpoint({ path: '/narrow', schema: three, handler: onnx.handler(join(models, 'iris.onnx'), { dylib }) })),
    ).toThrow(/endpoint '\/narrow'.*input 'input' takes 4 features per row but the schema's fields \(a, b, c\) give 3/);
    expect(() =>
      other.register(new Endpoint({ path: '/missing', schema: Iris, handler: onnx.handler(join(models, 'nope.onnx'), { dylib }) })),
    ).toThrow(/nope\.onnx: no such file/);
    const garbage = join(models, 'garbage.onnx');
    writeFileSync(garbage, 'not a model at all');
    expect(() => other.register(new Endpoint({ path: '/garbage', schema: Iris, handler: onnx.handler(garbage, { dylib }) }))).toThrow(
      /cannot load ONNX model .*garbage\.onnx/,
    );
    // The same server still takes and serves a good endpoint.
    other.register(new Endpoint({ path: '/good', schema: Iris, handler: onnx.handler(join(models, 'iris.onnx'), { dylib }) }));
    await other.serve();
    try {
      const res = await post(`http://127.0.0.1:${other.port}/good`, [record(expected.rows[149])]);
      expect(res.status).toBe(200);
      expect(res.body.predictions[0].label).toBe(expected.labels[149]);
    } finally {
      await other.stop();
    }
    // And the first server never noticed.
    const res = await post(`${url}/iris`, [record(expected.rows[0])]);
    expect(res.body.predictions[0].label).toBe(expected.labels[0]);
  });

  it('names what to install when onnxruntime cannot be found', async () => {
    // A fresh process, away from any node_modules and without ORT_DYLIB_PATH.
    const script = `
      const { Endpoint, Schema, Server, onnx } = require(${JSON.stringify(join(root, 'dist'))});
      const schema = new Schema({ a: Schema.f64(), b: Schema.f64(), c: Schema.f64(), d: Schema.f64() });
      try {
        new Server({ port: 0 }).register(new Endpoint({ path: '/x', schema, handler: onnx.handler(${JSON.stringify(join(models, 'iris.onnx'))}) }));
        console.log('registered');
      } catch (e) {
        console.log(e.message);
      }`;
    const env = { ...process.env };
    delete env.ORT_DYLIB_PATH;
    const { stdout } = await run(process.execPath, ['-e', script], { cwd: models, env, timeout: 60_000 });
    expect(stdout).toMatch(/onnxruntime is not available: no ORT_DYLIB_PATH and no node_modules\/onnxruntime-node above/);
    expect(stdout).toMatch(/npm install onnxruntime-node/);

    // In this process onnxruntime is open, but a wrong explicit path is still reported.
    const other = new Server({ host: '127.0.0.1', port: 0 });
    expect(() =>
      other.register(
        new Endpoint({
          path: '/nolib',
          schema: Iris,
          handler: onnx.handler(join(models, 'iris.onnx'), { dylib: join(models, 'libonnxruntime.so.1') }),
        }),
      ),
    ).toThrow(/libonnxruntime\.so\.1, which is not a file: install onnxruntime with `npm install onnxruntime-node`/);
  });

  it('takes no streaming, no empty path, and no missing path without a cache', () => {
    expect(() => new OnnxHandler('')).toThrow(TypeError);
    expect(() => new Server({ port: 0 }).register(new Endpoint({ path: '/n', schema: Iris, handler: onnx.handler() }))).toThrow(
      /onnx\.handler\(\) needs a \.onnx file/,
    );
    expect(
      () => new Endpoint({ path: '/s', schema: Iris, stream: true, handler: onnx.handler(join(models, 'iris.onnx')) }),
    ).toThrow(/cannot stream/);
  });
});

describe('the onnx runtime in a model repository', () => {
  it('serves a folder whose model-settings.json names runtime onnx, with the declared inputs as its schema', async () => {
    const repo = join(models, 'repository');
    mkdirSync(join(repo, 'iris'), { recursive: true });
    copyFileSync(join(models, 'iris.onnx'), join(repo, 'iris', 'iris.onnx'));
    writeFileSync(
      join(repo, 'iris', 'model-settings.json'),
      JSON.stringify({
        name: 'iris-repo',
        runtime: 'onnx',
        parameters: { uri: './iris.onnx' },
        inputs: [{ name: 'input', datatype: 'FP64', shape: [-1, 4] }],
      }),
    );
    const before = process.env.ORT_DYLIB_PATH;
    process.env.ORT_DYLIB_PATH = dylib;
    const other = new Server({ host: '127.0.0.1', port: 0, workers: 1 });
    try {
      const index = await other.registerRepository(repo);
      expect(index.map((m) => [m.name, m.state, m.reason ?? null])).toEqual([['iris-repo', 'ready', null]]);
      await other.serve();
      const rows = expected.rows.slice(0, 6);
      const res = await fetch(`http://127.0.0.1:${other.port}/v2/models/iris-repo/infer`, {
        method: 'POST',
        body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP64', shape: [rows.length, 4], data: rows.flat() }] }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { outputs: { name: string; data: number[] }[] };
      const label = body.outputs.find((o) => o.name === 'label');
      expect(label?.data).toEqual(expected.labels.slice(0, 6));
    } finally {
      await other.stop();
      if (before === undefined) delete process.env.ORT_DYLIB_PATH;
      else process.env.ORT_DYLIB_PATH = before;
    }
  });
});
