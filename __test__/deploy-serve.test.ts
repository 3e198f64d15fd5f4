// `redesmyn serve` where KServe and MLServer put it: the built CLI as a
// child process, configured by KServe's arguments (`--model_name`,
// `--model_dir`, `--http_port`, `--model_format`) and the MLSERVER_*
// variables, over a single model folder, a bare artifact (made by the real
// libraries: __test__/deploy/make_artifacts.py), an empty folder that the
// repository API fills, and bad values that must stop it with a message
// naming what is wrong. Ends with SIGTERM and a drain delay: requests sent
// while draining are answered, then the process exits 0.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';
import { serveCli } from './support/cli';

const run = promisify(execFile);
const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
const TOKEN = 'deploy-test-token-0123456789';
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];

interface Served {
  child: ChildProcess;
  url: string;
  log: () => string;
  exit: Promise<number | null>;
}

/** Starts the CLI with `args` and `env` (over a clean MLSERVER_* environment); waits for "serving". */
function serve(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MLSERVER_') && !k.startsWith('REDESMYN_')));
  return serveCli(args, { ...base, ...env });
}

/** Runs the CLI to its exit. */
function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MLSERVER_') && !k.startsWith('REDESMYN_')));
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...base, ...env } });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stderr });
    });
  });
}

async function stop(s: Served): Promise<number | null> {
  if (s.child.exitCode === null) s.child.kill('SIGTERM');
  return s.exit;
}

async function infer(url: string, model: string, rows: number[][]): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input-0', datatype: 'FP64', shape: [rows.length, rows[0].length], data: rows.flat() }] }),
  });
  return { status: res.status, body: await res.json() };
}

let dir: string;
let venv: string;
let expected: Record<string, any>;
const started: Served[] = [];

beforeAll(async () => {
  ({ venv } = ensureRuntimesVenv());
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-deploy-serve-'));
  await run(join(venv, 'bin', 'python'), [join(__dirname, 'deploy', 'make_artifacts.py'), join(dir, 'artifacts')], { timeout: 120_000 });
  expected = JSON.parse(readFileSync(join(dir, 'artifacts', 'expected.json'), 'utf8'));
}, 300_000);

afterAll(async () => {
  for (const s of started) await stop(s);
  rmSync(dir, { recursive: true, force: true });
});

describe('KServe single-model conventions', () => {
  it('serves a bare scikit-learn artifact at MLSERVER_MODEL_URI under MLSERVER_MODEL_NAME, on MLSERVER_HTTP_PORT', async () => {
    const generated = join(dir, 'generated');
    mkdirSync(generated);
    const s = await serve(['serve', '--venv', venv], {
      MLSERVER_MODEL_URI: join(dir, 'artifacts', 'sklearn'),
      MLSERVER_MODEL_NAME: 'iris',
      MLSERVER_MODEL_IMPLEMENTATION: 'mlserver_sklearn.SKLearnModel',
      MLSERVER_HTTP_PORT: '0',
      REDESMYN_TMPDIR: generated,
    });
    started.push(s);
    // The single model is served from a small generated folder, which lives as long as the server.
    expect(readdirSync(generated)).toHaveLength(1);
    expect((await fetch(`${s.url}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${s.url}/v2/models/iris/ready`)).status).toBe(200);
    const r = await infer(s.url, 'iris', expected.rows);
    expect(r.status).toBe(200);
    expect(r.body.model_name).toBe('iris');
    expect(r.body.outputs[0].data).toEqual(expected.sklearn);
    expect(s.log()).toContain('"layout":"artifact"');
    expect(await stop(s)).toBe(0);
    expect(readdirSync(generated)).toEqual([]);
  }, 120_000);

  it("serves a bare XGBoost model.json with KServe's arguments (--model_name, --model_dir, --http_port, --model_format)", async () => {
    const s = await serve(['serve', '--model_name=flowers', `--model_dir=${join(dir, 'artifacts', 'xgboost')}`, '--http_port=0', '--model_format=xgboost', '--venv', venv]);
    started.push(s);
    const r = await infer(s.url, 'flowers', expected.rows);
    expect(r.status).toBe(200);
    expect(r.body.outputs[0].data.map(Number)).toEqual(expected.xgboost);
    // V1, as KServe's v1 protocol sends it.
    const v1 = await fetch(`${s.url}/v1/models/flowers:predict`, { method: 'POST', body: JSON.stringify({ instances: expected.rows }) });
    expect(v1.status).toBe(200);
    expect(((await v1.json()) as { predictions: number[] }).predictions.map(Number)).toEqual(expected.xgboost);
    expect(await stop(s)).toBe(0);
  }, 120_000);

  it('serves an MLflow model folder (MLmodel with a sklearn flavour) under modelFormat mlflow', async () => {
    const mlflow = join(dir, 'artifacts', 'mlflow');
    const s = await serve(['serve', '--model_dir', mlflow, '--model_name', 'wine', '--model_format', 'mlflow', '--port', '0', '--venv', venv]);
    started.push(s);
    const r = await infer(s.url, 'wine', expected.rows);
    expect(r.status).toBe(200);
    expect(r.body.outputs[0].data).toEqual(expected.sklearn);
    expect(await stop(s)).toBe(0);
  }, 120_000);

  it('serves one model folder (a model-settings.json at the root) under the name KServe gives', async () => {
    const model = join(dir, 'sum-ts');
    cpSync(join(root, 'examples', 'repository', 'sum-ts'), model, { recursive: true });
    writeFileSync(join(model, 'model-settings.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(model, 'model-settings.json'), 'utf8')), name: 'sum' }));
    const s = await serve(['serve', model, '--port', '0', '--model_name', 'adder']);
    started.push(s);
    const res = await fetch(`${s.url}/predictions/adder`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ a: 1, b: 2 }, { a: 0.5, b: 4 }]) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: number[] }).predictions).toEqual([3, 4.5]);
    // The settings' own name is not served beside it.
    expect((await fetch(`${s.url}/v2/models/sum/ready`)).status).toBe(404);
    expect(await stop(s)).toBe(0);
  }, 60_000);
});

describe('models that come by API', () => {
  it('starts from an empty folder with the management API on, and loads a model put there by the repository API', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const s = await serve(['serve', empty, '--port', '0'], { REDESMYN_MANAGEMENT_TOKEN: TOKEN });
    started.push(s);
    expect(s.log()).toContain('"models":0');
    expect((await fetch(`${s.url}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${s.url}/v2/models/sum-ts/ready`)).status).toBe(404);
    cpSync(join(root, 'examples', 'repository', 'sum-ts'), join(empty, 'sum-ts'), { recursive: true });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const load = await fetch(`${s.url}/v2/repository/models/sum-ts/load`, { method: 'POST', headers: auth });
    expect(load.status).toBe(200);
    const res = await fetch(`${s.url}/predictions/sum-ts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ a: 2, b: 3 }]) });
    expect(((await res.json()) as { predictions: number[] }).predictions).toEqual([5]);
    expect(await stop(s)).toBe(0);
  }, 60_000);

  it('MLSERVER_LOAD_MODELS_AT_STARTUP=false leaves the models unloaded until the repository API loads them', async () => {
    const repo = join(dir, 'lazy');
    cpSync(join(root, 'examples', 'repository', 'sum-ts'), join(repo, 'sum-ts'), { recursive: true });
    const s = await serve(['serve', repo, '--port', '0'], { REDESMYN_MANAGEMENT_TOKEN: TOKEN, MLSERVER_LOAD_MODELS_AT_STARTUP: 'false' });
    started.push(s);
    const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const before = (await (await fetch(`${s.url}/v2/repository/index`, { method: 'POST', headers: auth, body: '{}' })).json()) as { name: string; state: string }[];
    expect(before).toEqual([expect.objectContaining({ name: 'sum-ts', state: 'UNAVAILABLE' })]);
    expect((await fetch(`${s.url}/v2/repository/models/sum-ts/load`, { method: 'POST', headers: auth })).status).toBe(200);
    const after = (await (await fetch(`${s.url}/v2/repository/index`, { method: 'POST', headers: auth, body: '{}' })).json()) as { name: string; state: string }[];
    expect(after).toEqual([expect.objectContaining({ name: 'sum-ts', state: 'READY' })]);
    expect(await stop(s)).toBe(0);
  }, 60_000);
});

describe('bad values stop it with a message naming them', () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['a port that is no number', ['serve', '.'], { MLSERVER_HTTP_PORT: 'eighty' }, /MLSERVER_HTTP_PORT expects a non-negative integer, got 'eighty'/],
    ['a gRPC port out of range', ['serve', '.'], { MLSERVER_GRPC_PORT: '70000' }, /MLSERVER_GRPC_PORT expects a port number \(0-65535\), got '70000'/],
    ['a boolean that is none', ['serve', '.'], { MLSERVER_LOAD_MODELS_AT_STARTUP: 'maybe' }, /MLSERVER_LOAD_MODELS_AT_STARTUP expects true or false, got 'maybe'/],
    ['lazy loading without the API that loads', ['serve', '.'], { MLSERVER_LOAD_MODELS_AT_STARTUP: 'false' }, /needs|management API/],
    ['a model folder that is missing', ['serve'], { MLSERVER_MODEL_URI: '/nonexistent/models' }, /MLSERVER_MODEL_URI '\/nonexistent\/models' does not exist/],
    ['a bad model name', ['serve', '.'], { MLSERVER_MODEL_NAME: 'a b' }, /MLSERVER_MODEL_NAME expects a model name/],
    ['a short management token', ['serve', '.'], { REDESMYN_MANAGEMENT_TOKEN: 'short' }, /REDESMYN_MANAGEMENT_TOKEN expects at least 16 characters/],
    ['a bad drain delay', ['serve', '.', '--drain-seconds', 'soon'], {}, /--drain-seconds expects seconds/],
  ];
  for (const [what, args, env, message] of cases) {
    it(what, async () => {
      const r = await runCli(args, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }

  it('an unknown model format', async () => {
    const r = await runCli(['serve', join(dir, 'artifacts', 'sklearn'), '--model_format=pmml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model_format: unknown model format 'pmml'; redesmyn serves sklearn/);
  });

  it('an artifact whose format nothing names', async () => {
    const r = await runCli(['serve', `--model_dir=${join(dir, 'artifacts', 'xgboost')}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no model-settings.json, and its files \(model.json\) do not say which format they are: give --model_format/);
  });

  it('a format whose artifact is not there', async () => {
    const r = await runCli(['serve', join(dir, 'artifacts', 'xgboost'), '--model_format', 'lightgbm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds no lightgbm artifact \(.txt, .bst\); its files: model.json/);
  });

  it('an empty folder with no way to load models later', async () => {
    const empty = mkdtempSync(join(dir, 'nothing-'));
    const r = await runCli(['serve', '--model_dir', empty]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is empty: nothing to serve/);
  });

  it('`serve DIR` of a model folder is no repository: it says how to serve the folder as one model', async () => {
    const r = await runCli(['serve', join(dir, 'artifacts', 'sklearn')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model repository '.*sklearn' has no model folders .* give it as --model_dir/);
  });

  it('an artifact that fails to load exits 2 with the reason, not a crash loop without one', async () => {
    const broken = join(dir, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'model.joblib'), 'not a pickle');
    const r = await runCli(['serve', '--model_dir', broken, '--venv', venv, '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no model of '.*broken' could be served \(broken: /);
  }, 60_000);
});

describe('SIGTERM with a drain delay', () => {
  it('answers requests still running when the drain ends (a 1.2 s model, a 0.3 s drain), then exits 0', async () => {
    const repo = join(dir, 'slow-repo');
    mkdirSync(join(repo, 'slow'), { recursive: true });
    writeFileSync(join(repo, 'slow', 'model-settings.json'), JSON.stringify({ runtime: 'typescript', parameters: { uri: 'model.mjs' }, inputs: [{ name: 'x', datatype: 'FP64', shape: [-1] }], max_batch_size: 1 }));
    writeFileSync(join(repo, 'slow', 'model.mjs'), 'export async function predict(batch) { await new Promise((r) => setTimeout(r, 1200)); return Float64Array.from(batch.columns.x, (v) => v + 1); }\n');
    const s = await serve(['serve', repo, '--port', '0', '--drain-seconds', '0.3']);
    const t0 = Date.now();
    const answers = [1, 2, 3].map((x) =>
      fetch(`${s.url}/predictions/slow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ x }]) }).then(async (r) => [r.status, ((await r.json()) as { predictions: number[] }).predictions[0]]),
    );
    await new Promise((r) => setTimeout(r, 100));
    s.child.kill('SIGTERM');
    expect(await Promise.all(answers)).toEqual([[200, 2], [200, 3], [200, 4]]);
    expect(await s.exit).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);
  }, 30_000);

  it('keeps answering for the delay, then exits 0', async () => {
    const model = join(dir, 'drain', 'sum-ts');
    cpSync(join(root, 'examples', 'repository', 'sum-ts'), model, { recursive: true });
    const s = await serve(['serve', join(dir, 'drain'), '--port', '0'], { REDESMYN_DRAIN_SECONDS: '1.5' });
    const body = JSON.stringify([{ a: 1, b: 1 }]);
    const post = () => fetch(`${s.url}/predictions/sum-ts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.status);
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const during: number[] = [];
    try {
      while (Date.now() - t0 < 1200) during.push(await post());
    } catch (error) {
      throw new Error(`${String(error)} after ${Date.now() - t0} ms:\n${s.log()}`);
    }
    expect(during.length).toBeGreaterThan(5);
    expect(new Set(during)).toEqual(new Set([200]));
    // Not ready from the start of the drain, so load balancers take the replica out.
    const ready = await fetch(`${s.url}/v2/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ ready: false });
    expect(await s.exit).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(s.log()).toContain('SIGTERM: draining');
  }, 30_000);
});
