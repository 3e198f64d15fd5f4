// MLServer folders served unchanged: real `mlserver.MLModel` custom runtimes
// (NumpyCodec, PandasCodec, StringCodec with decode_args), MLServer's
// scikit-learn runtime and MLflow models, each folder served by MLServer
// itself and by `redesmyn serve` from the same Python environment
// (scripts/mlserver-venv.mjs), the same V2 requests sent to both and the
// bodies compared after removing the fields docs/mlserver.md lists. Models
// that fail (at load or at predict) fail alone, with the reason.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureMlserverVenv } from '../scripts/mlserver-venv.mjs';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';
import { persist } from '../src/repository/manage';
import { post } from './helpers';

const run = promisify(execFile);
const cli = join(__dirname, '..', 'dist', 'cli.js');

interface Proc {
  child: ChildProcess;
  url: string;
  log: () => string;
  exit: Promise<number | null>;
}

function track(child: ChildProcess) {
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return { log: () => out, exit };
}

/** `redesmyn serve <dir>` in `venv`, once it logs "serving". */
async function redesmyn(dir: string, venv: string): Promise<Proc> {
  const child = spawn(process.execPath, [cli, 'serve', dir, '--port', '0', '--grpc-port', '0', '--venv', venv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { log, exit } = track(child);
  const url = await new Promise<string>((done, fail) => {
    const timer = setInterval(() => {
      const line = log()
        .split('\n')
        .find((l) => l.includes('"message":"serving"'));
      if (line) {
        clearInterval(timer);
        done(`http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`);
      }
    }, 50);
    void exit.then((code) => {
      clearInterval(timer);
      fail(new Error(`redesmyn serve exited (${code}) before serving:\n${log()}`));
    });
  });
  return { child, url, log, exit };
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

/** `mlserver start <dir>` in `venv`, once every model is ready. */
async function mlserver(dir: string, venv: string): Promise<Proc> {
  const [http, grpc] = [await freePort(), await freePort()];
  const child = spawn(join(venv, 'bin', 'mlserver'), ['start', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MLSERVER_HOST: '127.0.0.1', MLSERVER_HTTP_PORT: String(http), MLSERVER_GRPC_PORT: String(grpc) },
  });
  const { log, exit } = track(child);
  const url = `http://127.0.0.1:${http}`;
  let exited = false;
  void exit.then(() => (exited = true));
  for (const deadline = Date.now() + 150_000; ; ) {
    if (exited) throw new Error(`mlserver exited before it was ready:\n${log()}`);
    const ready = await fetch(`${url}/v2/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`mlserver was not ready in time:\n${log()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return { child, url, log, exit };
}

async function stop(p: Proc | undefined) {
  if (p && p.child.exitCode === null) {
    p.child.kill('SIGTERM');
    await p.exit;
  }
}

type Body = Record<string, any>;

/**
 * What legitimately differs, removed from both bodies (docs/mlserver.md):
 * `parameters` (MLServer echoes codec content types there; redesmyn's core
 * does not carry them), the `id` MLServer makes up when the request had
 * none, and, for MLServer's built-in scikit-learn runtime only, a 1-D output
 * (redesmyn's own runtime answers `[N]`, MLServer's `[N, 1]`).
 */
function normalise(body: Body, request: Body, builtin = false): Body {
  const b = structuredClone(body);
  delete b.parameters;
  if (request.id === undefined) delete b.id;
  for (const o of b.outputs ?? []) {
    delete o.parameters;
    if (builtin && o.shape.length === 2 && o.shape[1] === 1) o.shape = [o.shape[0]];
  }
  return b;
}

let dir: string;
let venv: string;
let expected: { rows: number[][]; classes: number[]; proba: number[][] };
let theirs: Proc | undefined;
let ours: Proc | undefined;

beforeAll(async () => {
  ({ venv } = ensureMlserverVenv());
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-mlserver-'));
  await run(join(venv, 'bin', 'python'), [join(__dirname, 'mlserver', 'make_models.py'), dir], { timeout: 180_000 });
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  [theirs, ours] = await Promise.all([mlserver(join(dir, 'same'), venv), redesmyn(join(dir, 'same'), venv)]);
}, 420_000);

afterAll(async () => {
  await Promise.all([stop(theirs), stop(ours)]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const iris = (rows: number[][]) => ({ name: 'input-0', datatype: 'FP64', shape: [rows.length, 4], data: rows.flat() });
const column = (name: string, datatype: string, data: unknown[], shape = [data.length, 1]) => ({ name, datatype, shape, data });

/** The Server-Sent Events of a streaming request, each event's JSON. */
async function events(url: string, body: unknown): Promise<Body[]> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return text
    .split('\n\n')
    .map((frame) => frame.trim())
    .filter((frame) => frame.startsWith('data:'))
    .map((frame) => JSON.parse(frame.slice('data:'.length)) as Body);
}

/** The same request to both servers: both answer 200 and the same body. */
async function same(model: string, request: Body, builtin = false) {
  const [a, b] = await Promise.all([post(`${theirs!.url}/v2/models/${model}/infer`, request), post(`${ours!.url}/v2/models/${model}/infer`, request)]);
  expect({ status: a.status, body: a.body }).toMatchObject({ status: 200 });
  expect(b.status, JSON.stringify(b.body)).toBe(200);
  expect(normalise(b.body as Body, request, builtin)).toEqual(normalise(a.body as Body, request, builtin));
  return b.body as Body;
}

describe('the same folders, the same V2 requests: redesmyn answers what MLServer answers', () => {
  it("MLServer's scikit-learn runtime: one row, several rows, an id echoed, model_version from parameters.version", async () => {
    const one = await same('iris-sklearn', { inputs: [iris(expected.rows.slice(0, 1))] }, true);
    expect(one.outputs[0].data).toEqual(expected.classes.slice(0, 1));
    const several = await same('iris-sklearn', { id: 'req-7', inputs: [iris(expected.rows)] }, true);
    expect(several).toMatchObject({ model_name: 'iris-sklearn', model_version: 'v1', id: 'req-7' });
    expect(several.outputs[0]).toMatchObject({ name: 'predict', datatype: 'INT64', data: expected.classes });
  });

  it('a custom runtime with NumpyCodec: two outputs of different shapes, request parameters', async () => {
    const rows = [
      [1, 2, 3, 4],
      [0.5, -1, 2, 8],
      [0, 0, 0, 0],
    ];
    const x = (r: number[][]) => [{ name: 'x', datatype: 'FP64', shape: [r.length, 4], data: r.flat() }];
    const body = await same('numpy-model', { id: 'n-1', inputs: x(rows) });
    const score = rows.map((r) => 0.5 * r[0] - 1 * r[1] + 2 * r[2] + 0.25 * r[3] + 1.5);
    expect(body).toMatchObject({ model_name: 'numpy-model', model_version: '2', id: 'n-1' });
    expect(body.outputs).toEqual([
      expect.objectContaining({ name: 'score', datatype: 'FP64', shape: [3, 1], data: score }),
      expect.objectContaining({ name: 'doubled', datatype: 'FP64', shape: [3, 4], data: rows.flat().map((v) => v * 2) }),
    ]);
    await same('numpy-model', { inputs: x(rows.slice(1, 2)) });
    await same('numpy-model', { inputs: x(rows), parameters: { threshold: 3, tag: 'a' } });
  });

  it('binary tensors (MLServer 1.7 has no binary extension): the same answer as the JSON request MLServer answers', async () => {
    const rows = [1, 2, 3, 4, 0.5, -1, 2, 8];
    const json = await post(`${theirs!.url}/v2/models/numpy-model/infer`, { inputs: [{ name: 'x', datatype: 'FP64', shape: [2, 4], data: rows }] });
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP64', shape: [2, 4], parameters: { binary_data_size: rows.length * 8 } }] }));
    const res = await fetch(`${ours!.url}/v2/models/numpy-model/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      body: Buffer.concat([header, Buffer.from(new Float64Array(rows).buffer)]),
    });
    expect(res.status).toBe(200);
    const request = {};
    expect(normalise((await res.json()) as Body, request)).toEqual(normalise(json.body as Body, request));
  });

  it('a custom runtime with PandasCodec (content types from the settings) and BYTES in and out', async () => {
    const request = {
      inputs: [column('a', 'FP64', [1.5, 2, -1]), column('n', 'INT64', [2, 3, 4]), column('city', 'BYTES', ['oslo', 'rome', 'lima'])],
    };
    const body = await same('pandas-model', request);
    expect(body.outputs).toEqual([
      expect.objectContaining({ name: 'total', datatype: 'FP64', data: [3, 6, -4] }),
      expect.objectContaining({ name: 'label', datatype: 'BYTES', data: ['OSLO-2', 'ROME-3', 'LIMA-4'] }),
    ]);
    await same('pandas-model', { inputs: [column('a', 'FP64', [0.25]), column('n', 'INT64', [8]), column('city', 'BYTES', ['kyiv'])] });
  });

  it('a custom runtime with StringCodec through decode_args', async () => {
    const body = await same('string-model', { inputs: [{ name: 'text', datatype: 'BYTES', shape: [2], data: ['hi', 'there'] }] });
    expect(body.outputs[0]).toMatchObject({ datatype: 'BYTES', data: ['HI!', 'THERE!'] });
  });

  it('an MLflow scikit-learn model: the signature names the inputs, MLServer names the output', async () => {
    const columns = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
    const request = (rows: number[][]) => ({ inputs: columns.map((c, i) => column(c, 'FP64', rows.map((r) => r[i]))) });
    const body = await same('mlflow-sklearn', request(expected.rows));
    expect(body.outputs[0].data).toEqual(expected.classes);
    expect(body.model_version).toBe('1');
    await same('mlflow-sklearn', request(expected.rows.slice(2, 3)));
    // The native records endpoint takes the signature's columns by name (and answers each row's outputs by name).
    const records = expected.rows.map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i]])));
    const native = await post(`${ours!.url}/predictions/mlflow-sklearn`, records);
    expect(native.status).toBe(200);
    expect((native.body as Body).predictions).toEqual(expected.classes.map((c) => ({ 'output-1': [c] })));
  });

  it('an MLflow pyfunc model (a python_model class) answering two columns', async () => {
    const body = await same('mlflow-pyfunc', { inputs: [column('a', 'FP64', [1, 2]), column('b', 'FP64', [0.5, -1])] });
    expect(body.outputs.map((o: Body) => [o.name, o.data])).toEqual([
      ['y', [3.5, 5]],
      ['z', [0.5, 3]],
    ]);
  });

  it('a streaming runtime (predict_stream) over generate_stream: the same events', async () => {
    const request = { inputs: [{ name: 'prompt', datatype: 'BYTES', shape: [1], data: ['the quick brown fox'] }] };
    const [a, b] = await Promise.all([events(`${theirs!.url}/v2/models/stream-model/generate_stream`, request), events(`${ours!.url}/v2/models/stream-model/generate_stream`, request)]);
    expect(b.map((e) => normalise(e, request))).toEqual(a.map((e) => normalise(e, request)));
    expect(b.map((e) => e.outputs[0].data[0])).toEqual(['the', ' quick', ' brown', ' fox']);
  });

  it('V2 metadata: the inputs the MLflow signature gives', async () => {
    const [a, b] = await Promise.all([fetch(`${theirs!.url}/v2/models/mlflow-sklearn`).then((r) => r.json()), fetch(`${ours!.url}/v2/models/mlflow-sklearn`).then((r) => r.json())]);
    const names = (m: Body) => (m.inputs as Body[]).map((t) => [t.name, t.datatype]);
    expect(names(b)).toEqual(names(a));
    expect(b.outputs.map((t: Body) => t.name)).toEqual(a.outputs.map((t: Body) => t.name));
  });

  it('a burst of concurrent requests of 1 to 3 rows: each gets its own rows back, merged into shared batches', async () => {
    const n = 120;
    const requests = Array.from({ length: n }, (_, i) => Array.from({ length: 1 + (i % 3) }, (_, j) => [i, j, i * 0.5, 1 - j]));
    let batched = 0;
    const answers = await Promise.all(
      requests.map(async (rows, i) => {
        const r = await post(`${ours!.url}/v2/models/numpy-model/infer`, { id: `burst-${i}`, inputs: [{ name: 'x', datatype: 'FP64', shape: [rows.length, 4], data: rows.flat() }] });
        if (Number(r.headers.get('x-batch-size') ?? 1) > rows.length) batched++;
        return r;
      }),
    );
    answers.forEach((r, i) => {
      const rows = requests[i];
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ id: `burst-${i}` });
      const [score, doubled] = (r.body as Body).outputs;
      expect(score).toMatchObject({ shape: [rows.length, 1], data: rows.map((x) => 0.5 * x[0] - x[1] + 2 * x[2] + 0.25 * x[3] + 1.5) });
      expect(doubled).toMatchObject({ shape: [rows.length, 4], data: rows.flat().map((v) => v * 2) });
    });
    // The merging was exercised: some requests shared a batch with others.
    expect(batched).toBeGreaterThan(0);
  });
});

describe("MLServer's parallel_workers", () => {
  it('a custom runtime in worker processes answers what it answers in-process', async () => {
    const workers = join(dir, 'workers');
    mkdirSync(workers);
    cpSync(join(dir, 'same', 'numpy-model'), join(workers, 'numpy-model'), { recursive: true });
    writeFileSync(join(workers, 'settings.json'), JSON.stringify({ parallel_workers: 2 }));
    const served = await redesmyn(workers, venv);
    try {
      const request = { id: 'w', inputs: [{ name: 'x', datatype: 'FP64', shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] }] };
      const [inProcess, pooled] = await Promise.all([post(`${ours!.url}/v2/models/numpy-model/infer`, request), post(`${served.url}/v2/models/numpy-model/infer`, request)]);
      expect(pooled.status).toBe(200);
      expect(pooled.body).toEqual(inProcess.body);
    } finally {
      await stop(served);
    }
  });
});

describe('models that fail, fail alone', () => {
  let bad: Proc;
  const failed = (p: Proc, model: string) => {
    const line = p
      .log()
      .split('\n')
      .find((l) => l.includes('"model failed"') && l.includes(`"model":"${model}"`));
    return line ? (JSON.parse(line).reason as string) : undefined;
  };
  const x = (data: number[]) => ({ inputs: [{ name: 'x', datatype: 'FP64', shape: [data.length], data }] });

  beforeAll(async () => {
    bad = await redesmyn(join(dir, 'bad'), venv);
  }, 180_000);
  afterAll(() => stop(bad));

  it('load() returning False or raising, no declared inputs, a malformed MLmodel, a flavour whose library is missing: failed with the reason', async () => {
    expect(failed(bad, 'not-ready')).toMatch(/load failed: RuntimeError: model 'not-ready': load\(\) returned False, so the model is not ready/);
    expect(failed(bad, 'load-raises')).toMatch(/load failed: RuntimeError: weights are corrupt/);
    expect(failed(bad, 'mlflow-malformed')).toMatch(/mlflow-malformed\/model\/MLmodel is malformed YAML/);
    expect(failed(bad, 'mlflow-missing-flavour')).toMatch(/flavour 'mlflow.catboost' needs the Python package 'catboost'.*install it with: pip install catboost/);
    expect(failed(bad, 'catboost')).toMatch(/'mlserver_catboost.CatboostModel' needs the Python package 'mlserver_catboost', which is not installed in .*; install it with: pip install mlserver-catboost/);
    expect(failed(bad, 'no-inputs')).toMatch(/no-inputs\/model-settings.json: 'inputs': missing; expected a list of V2 tensors/);
    expect((await post(`${bad.url}/v2/models/not-ready/infer`, x([1]))).status).toBe(404);
  });

  it('predict raising, answering the wrong number of rows or not an InferenceResponse: a 500 naming the model; the others keep serving', async () => {
    const cases: [string, RegExp][] = [
      ['predict-raises', /model 'predict-raises': predict\(\) raised ValueError: cannot score this/],
      ['wrong-rows', /model 'wrong-rows': output 'y' has shape \[4, 1\] for a batch of 2 rows/],
      ['not-a-response', /model 'not-a-response': predict\(\) returned a dict; expected an mlserver.types.InferenceResponse/],
    ];
    for (const [model, message] of cases) {
      const r = await post(`${bad.url}/v2/models/${model}/infer`, x([1, 2]));
      expect(r.status, model).toBe(500);
      expect((r.body as Body).error).toMatch(message);
    }
    const fine = await post(`${bad.url}/v2/models/fine/infer`, x([1, 2]));
    expect(fine.status).toBe(200);
    expect((fine.body as Body).outputs[0].data).toEqual([2, 3]);
    // runtime "mlflow" (redesmyn's name for MLServer's MLflowRuntime).
    const mlflow = await post(`${bad.url}/v2/models/mlflow-by-name/infer`, { inputs: [column('a', 'FP64', [1]), column('b', 'FP64', [2])] });
    expect(mlflow.status).toBe(200);
    expect((mlflow.body as Body).outputs.map((o: Body) => o.data)).toEqual([[5], [-1]]);
  });

  it('without mlserver installed: a real MLModel subclass fails naming the package to install', async () => {
    const plain = await redesmyn(join(dir, 'bad'), ensureRuntimesVenv().venv);
    try {
      expect(failed(plain, 'fine')).toMatch(/'bad_models.Fine' needs the Python package 'mlserver', which is not installed in .*; install it with: pip install mlserver/);
      expect(failed(plain, 'mlflow-by-name')).toMatch(/the Python package 'mlflow' is missing; install it with: pip install mlflow/);
      // An MLServer-shaped class (load() and predict(df), no mlserver import) still serves there.
      const duck = await post(`${plain.url}/predictions/duck`, [{ x: 2 }, { x: 5 }]);
      expect(duck.status).toBe(200);
      expect((duck.body as Body).predictions).toEqual([20, 50]);
    } finally {
      await stop(plain);
    }
  });
});

describe("parameters.version (MLServer's) and the management API's persistence", () => {
  it('a folder served under its settings version is persisted as the unversioned folder it is: its file is left as written', () => {
    const root = mkdtempSync(join(tmpdir(), 'redesmyn-persist-'));
    try {
      const file = join(root, 'mnist', 'model-settings.json');
      mkdirSync(join(root, 'mnist'));
      const text = JSON.stringify({ implementation: 'mlserver_sklearn.SKLearnModel', parameters: { uri: './m.joblib', version: 'v0.1.0' } });
      writeFileSync(file, text);
      const change = { kind: 'deployed' as const, name: 'mnist', version: 'v0.1.0', spec: null, versions: ['v0.1.0'], traffic: null };
      expect(() => persist(root, change)).not.toThrow();
      expect(readFileSync(file, 'utf8')).toBe(text);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
