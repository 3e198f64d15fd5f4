// Pipelines end to end over real sockets: a TypeScript feature step
// (millimetres to centimetres, as float32), scikit-learn's iris classifier
// exported to ONNX, and a Python business rule, registered as one model.
// It answers what the same steps give run by hand in Python
// (pipeline/by_hand.py) over native JSON, V2 REST, V2 gRPC (tritonclient)
// and predict(), under 200 concurrent requests mixing them; a step that
// raises fails only its request; mismatches, cycles and unknown models are
// refused at registration naming step and column; and a 1M-row float64
// column reaches a Python step over the same buffer the request was parsed
// into (a child process logs the addresses at trace).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Pipeline, Schema, Server, onnx, py } from '../src';
import { ensureClients } from '../scripts/v2-clients.mjs';
import { onnxruntimeLibrary } from '../bench/setup.mjs';
import { loggedBuffer, post } from './helpers';

const run = promisify(execFile);
const root = join(__dirname, '..');
const python = { venv: join(root, '.venv'), path: [join(__dirname, 'python')] };

const Millimetres = new Schema({
  sepal_length_mm: Schema.f64(),
  sepal_width_mm: Schema.f64(),
  petal_length_mm: Schema.f64(),
  petal_width_mm: Schema.f64(),
});
const Centimetres = new Schema({
  sepal_length: Schema.f32(),
  sepal_width: Schema.f32(),
  petal_length: Schema.f32(),
  petal_width: Schema.f32(),
});
const Classified = new Schema({ label: Schema.i64(), probabilities: Schema.array('f32', 3) });
const CM = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;
const MM = CM.map((f) => `${f}_mm`);

/** The feature step: each `<f>_mm` column divided by ten, as float32 `<f>`. */
function features() {
  return new Endpoint({
    path: '/features',
    name: 'features',
    schema: Millimetres,
    outputs: CM.map((name) => ({ name, datatype: 'FP32', shape: [-1] })),
    handler: (batch) => Object.fromEntries(CM.map((f) => [f, Float32Array.from(batch.columns[`${f}_mm`], (v) => v / 10)])),
  });
}

interface ByHand {
  rows_mm: number[][];
  labels: number[];
  probabilities: number[][];
  decisions: string[];
}

let dir: string;
let hand: ByHand;
let dylib: string;
let pythons: Record<string, string>;
let server: Server;
let url: string;
let pipeline: Pipeline;

const record = (row: number[]) => Object.fromEntries(MM.map((f, j) => [f, row[j]]));

beforeAll(async () => {
  pythons = ensureClients();
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-pipeline-'));
  await run(pythons.onnx, [join(root, 'bench/peers/train_iris.py'), dir], { cwd: root, timeout: 300_000 });
  hand = JSON.parse((await run(pythons.onnx, [join(__dirname, 'pipeline/by_hand.py'), dir], { timeout: 120_000 })).stdout);
  dylib = onnxruntimeLibrary();

  server = new Server({ host: '127.0.0.1', port: 0, grpcPort: 0, workers: 2, python });
  const scale = features();
  const classify = new Endpoint({ path: '/classify', name: 'classify', schema: Centimetres, handler: onnx.handler(join(dir, 'iris.onnx'), { dylib }) });
  const rule = new Endpoint({
    path: '/rule',
    name: 'rule',
    schema: Classified,
    outputs: [{ name: 'decision', datatype: 'BYTES', shape: [-1] }],
    handler: py.handler('pipeline_handlers:decide'),
  });
  pipeline = new Pipeline({
    name: 'iris-pipeline',
    batch: { maxSize: 64, maxDelayMs: 2 },
    steps: [
      Pipeline.step('features', scale),
      // The classifier's fields are the feature step's declared outputs, read by name.
      Pipeline.step('classify', classify),
      Pipeline.step('decide', rule, { inputs: { label: 'classify.label', probabilities: 'classify.probabilities' } }),
    ],
  });
  // A TypeScript step, then a Python step that raises for negative x.
  const double = new Endpoint({ path: '/double', name: 'double', schema: new Schema({ x: Schema.f64() }), handler: (b) => b.columns.x.map((v) => v * 2) });
  const check = new Endpoint({ path: '/check', name: 'check', schema: new Schema({ x: Schema.f64() }), handler: py.handler('pipeline_handlers:checked') });
  const guarded = new Pipeline({
    name: 'guarded',
    batch: { maxSize: 64, maxDelayMs: 20 },
    steps: [
      { name: 'double', model: double },
      { name: 'check', model: 'check', inputs: { x: 'double' } },
    ],
  });
  server.register(scale).register(classify).register(rule).register(pipeline);
  server.register(double).register(check).register(guarded);
  await server.serve();
  url = `http://127.0.0.1:${server.port}`;
}, 600_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a pipeline of a TypeScript, an ONNX and a Python step', () => {
  it('answers as the steps run by hand, over native JSON and predict()', async () => {
    const records = hand.rows_mm.map(record);
    const native = await post(`${url}/predictions/iris-pipeline`, records);
    expect(native.status).toBe(200);
    expect(native.body.predictions).toEqual(hand.decisions);
    const inProcess = await pipeline.predict<string>(records.slice(0, 10));
    expect(inProcess.predictions).toEqual(hand.decisions.slice(0, 10));
    // The steps by hand agree with the steps served alone.
    const classified = await post(`${url}/classify`, hand.rows_mm.map((r) => Object.fromEntries(CM.map((f, j) => [f, r[j] / 10]))));
    expect(classified.body.predictions.map((p: { label: number }) => p.label)).toEqual(hand.labels);
  });

  it('is a model on V2 REST: metadata lists its inputs and its last step\'s outputs, inference answers', async () => {
    const meta = await fetch(`${url}/v2/models/iris-pipeline`).then((r) => r.json());
    expect(meta.inputs).toEqual(MM.map((name) => ({ name, datatype: 'FP64', shape: [-1] })));
    expect(meta.outputs).toEqual([{ name: 'decision', datatype: 'BYTES', shape: [-1] }]);
    const rows = hand.rows_mm.slice(40, 60);
    const v2 = await post(`${url}/v2/models/iris-pipeline/infer`, {
      id: 'v2-1',
      inputs: MM.map((name, j) => ({ name, datatype: 'FP64', shape: [rows.length], data: rows.map((r) => r[j]) })),
    });
    expect(v2.status).toBe(200);
    expect(v2.body.id).toBe('v2-1');
    expect(v2.body.outputs[0].name).toBe('decision');
    expect(v2.body.outputs[0].data).toEqual(hand.decisions.slice(40, 60));
  });

  it('answers 200 concurrent requests mixing V2 REST JSON and binary, V2 gRPC, native JSON, with predict() beside them', async () => {
    const rowsFile = join(dir, 'rows.json');
    writeFileSync(rowsFile, JSON.stringify(hand.rows_mm));
    const clients = run(pythons.triton, [join(__dirname, 'v2-clients/pipeline_clients.py'), url.slice(7), `127.0.0.1:${server.grpcPort}`, 'iris-pipeline', '/predictions/iris-pipeline', rowsFile], { timeout: 180_000 });
    const inProcess = await Promise.all(hand.rows_mm.slice(0, 50).map((row) => pipeline.predict<string>([record(row)])));
    const r = JSON.parse((await clients).stdout);
    expect(inProcess.map((p) => p.predictions[0])).toEqual(hand.decisions.slice(0, 50));
    expect(r.grpc_metadata.name).toBe('iris-pipeline');
    expect(r.grpc_metadata.outputs).toEqual([{ name: 'decision', datatype: 'BYTES', shape: ['-1'] }]);
    expect(r.grpc_infer).toEqual({ id: 'p-1', decision: hand.decisions[0] });
    const burst = r.burst as Record<string, unknown>;
    expect(Object.keys(burst)).toHaveLength(200);
    for (const [key, answer] of Object.entries(burst)) {
      const i = Number(key.split(':')[1]);
      expect(answer, key).toBe(hand.decisions[i % hand.decisions.length]);
    }
    // Each request was counted as the pipeline's.
    const metrics = await fetch(`${url}/metrics`).then((m) => m.text());
    const counted = metrics.match(/redesmyn_requests_total\{endpoint="\/predictions\/iris-pipeline",status="200"\} (\d+)/);
    expect(Number(counted?.[1])).toBeGreaterThanOrEqual(200 + 50 + 1);
  }, 240_000);

  it('fails only the request whose rows make a step raise, naming the step, and serves on', async () => {
    const xs = Array.from({ length: 12 }, (_, i) => (i === 5 ? -1 : i));
    const answers = await Promise.all(xs.map((x) => post(`${url}/predictions/guarded`, [{ x }])));
    answers.forEach((a, i) => {
      if (i === 5) {
        expect(a.status).toBe(500);
        expect(a.body.error).toMatch(/^step 'check' failed: .*negative x/);
      } else {
        expect(a.status).toBe(200);
        expect(a.body.predictions).toEqual([xs[i] * 2]);
      }
    });
    const after = await post(`${url}/predictions/guarded`, [{ x: 21 }]);
    expect(after.body.predictions).toEqual([42]);
  });
});

describe('a pipeline that cannot run is refused at registration', () => {
  const rule = () => new Endpoint({ path: '/rule', name: 'rule', schema: Classified, handler: (b) => new Float64Array(b.length) });
  const refusal = (steps: ConstructorParameters<typeof Pipeline>[0]['steps']) => {
    const s = new Server({ host: '127.0.0.1', port: 0 });
    s.register(features()).register(rule());
    return () => s.register(new Pipeline({ name: 'p', steps }));
  };

  it('names the step and the column a step cannot read', () => {
    expect(refusal([Pipeline.step('f', features()), { name: 'decide', model: 'rule' }])).toThrow(
      "pipeline 'p': step 'decide': input 'label' reads 'label', which is neither a pipeline input nor an output of a step listed before it",
    );
    expect(refusal([Pipeline.step('f', features()), { name: 'decide', model: 'rule', inputs: { label: 'f.sepal_length', probabilities: 'f.petal_width' } }])).toThrow(
      "pipeline 'p': step 'decide': input 'probabilities' is array<f32, 3> but 'f.petal_width' is a number",
    );
    expect(refusal([Pipeline.step('f', features()), { name: 'decide', model: 'rule', inputs: { label: 'f.colour' } }])).toThrow(
      "pipeline 'p': step 'decide': input 'label' reads 'f.colour', which step 'f' does not answer (it answers 'sepal_length', 'sepal_width', 'petal_length', 'petal_width')",
    );
  });

  it('refuses a cycle and an unknown model', () => {
    const scale = features();
    expect(
      refusal([
        Pipeline.step('a', scale, { inputs: { sepal_length_mm: 'b.sepal_length' } }),
        Pipeline.step('b', scale, { inputs: { sepal_length_mm: 'a.sepal_length' } }),
      ]),
    ).toThrow("pipeline 'p': steps form a cycle: a -> b -> a");
    expect(refusal([Pipeline.step('a', scale), { name: 'x', model: 'no-such-model' }])).toThrow("pipeline 'p': step 'x': no model named 'no-such-model'");
  });
});

describe('zero copy', () => {
  it('a 1M-row float64 column reaches a Python step over the buffer it was parsed into', async () => {
    const child = spawn(join(root, 'node_modules/.bin/tsx'), [join(__dirname, 'fixtures/pipeline-zero-copy.ts')], {
      cwd: root,
      env: { ...process.env, PY_PATH: join(__dirname, 'python'), REDESMYN_LOG: 'warn,redesmyn_python=trace,redesmyn::pipeline=trace', VIRTUAL_ENV: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const logs: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => logs.push(l));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`the child exited (${code}):\n${logs.join('\n')}`)));
        createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line).port));
      });
      const rows = 1_000_000;
      const body = `[${Array.from({ length: rows }, (_, i) => `{"x":${i}.5}`).join(',')}]`;
      const seen = await post(`http://127.0.0.1:${port}/predictions/zero-copy`, body);
      expect(seen.status).toBe(200);
      const inPython = BigInt(seen.body.predictions[0]);
      const logged = (message: string) => loggedBuffer(logs, message);
      const parsed = logged('batch to pipeline');
      expect(parsed).toMatch(/^x=0x[0-9a-f]+$/); // one chunk
      expect(logged('batch to Python')).toBe(parsed);
      expect(BigInt(parsed!.slice(2))).toBe(inPython);
    } finally {
      child.stdin!.write('stop\n');
      await new Promise((done) => (child.exitCode !== null ? done(null) : child.once('exit', done)));
    }
  }, 120_000);
});
