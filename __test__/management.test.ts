// The management API over real HTTP, with real CPython and scikit-learn
// models (made at set-up by __test__/management/make_artifacts.py in the
// venv scripts/runtimes-venv.mjs makes): deploy, predict, add a version,
// split traffic and remove the first version while a load generator runs,
// with zero failed requests; tokens; paths that escape the model root are
// refused before anything is read (a pickle outside the root, which would
// create a marker file when loaded, stays unopened).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server } from '../src';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';
import { post } from './helpers';

const run = promisify(execFile);
const TOKEN = 'test-token-0123456789abcdef';
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
const CONFIG = { inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }], columns: COLUMNS, max_batch_time: 0.002 };

let dir: string;
let root: string;
let outside: string;
let expected: { rows: number[][]; '1': number[]; '2': number[] };
let server: Server;
let url: string;

function records(rows: number[][]) {
  return rows.map((r) => Object.fromEntries(COLUMNS.map((n, i) => [n, r[i]])));
}

async function call(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined || method === 'GET' ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  const { venv, python } = ensureRuntimesVenv();
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-mgmt-'));
  root = join(dir, 'models');
  outside = join(dir, 'outside');
  const { stdout } = await run(python, [join(__dirname, 'management', 'make_artifacts.py'), root, outside], { timeout: 120_000 });
  expected = JSON.parse(stdout);
  symlinkSync(join(outside, 'evil.joblib'), join(root, 'artifacts', 'link.joblib'));
  symlinkSync(outside, join(root, 'artifacts', 'up'));
  server = new Server({ host: '127.0.0.1', port: 0, workers: 2, python: { venv }, management: { token: TOKEN, root } });
  await server.serve();
  url = `http://127.0.0.1:${server.port}`;
}, 300_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('management API', () => {
  it('needs the bearer token: 401 without, 403 with another', async () => {
    for (const [method, path] of [
      ['GET', '/models'],
      ['POST', '/models'],
      ['GET', '/models/iris'],
      ['DELETE', '/models/iris'],
      ['PUT', '/models/iris/traffic'],
      ['POST', '/predict/iris'],
      ['POST', '/v2/repository/index'],
    ]) {
      const none = await call(method, path, {}, null);
      expect(none.status, `${method} ${path}`).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      expect(none.body.error).toMatch(/Bearer/);
      expect((await call(method, path, {}, `${TOKEN}x`)).status, `${method} ${path}`).toBe(403);
      expect((await call(method, path, {}, 'nope')).status).toBe(403);
    }
  });

  it('refuses paths outside the model root with 400 and opens nothing there', async () => {
    for (const path of [
      '../outside/evil.joblib',
      'artifacts/../../outside/evil.joblib',
      join(outside, 'evil.joblib'),
      '/etc/passwd',
      'artifacts/link.joblib',
      'artifacts/up/evil.joblib',
      '%2e%2e%2foutside%2fevil.joblib',
      '..%2Foutside/evil.joblib',
      'artifacts/missing.joblib',
    ]) {
      const r = await call('POST', '/models', { name: 'evil', runtime: 'sklearn', path, config: CONFIG });
      expect(r.status, path).toBe(400);
      expect(r.body.error, path).toMatch(/'path'/);
    }
    expect((await call('POST', '/models', { name: '../evil', runtime: 'sklearn', path: 'artifacts/iris1.joblib' })).status).toBe(400);
    expect((await call('POST', '/v2/repository/models/..%2Foutside/load')).status).toBeGreaterThanOrEqual(400);
    expect(existsSync(join(outside, 'PWNED')), 'the pickle outside the root was never loaded').toBe(false);
    expect((await call('GET', '/models')).body.models).toEqual([]);
  });

  it('deploys, adds a version, splits 90/10 and removes v1 under load with zero failed requests', async () => {
    const started = performance.now();
    const deployed = await call('POST', '/models', { name: 'iris', runtime: 'sklearn', path: 'artifacts/iris1.joblib', version: '1', config: CONFIG });
    const deployMs = performance.now() - started;
    expect(deployed.status, JSON.stringify(deployed.body)).toBe(201);
    expect(deployed.body.versions).toEqual([expect.objectContaining({ version: '1', state: 'ready' })]);
    console.log(`deploy through the API (iris, sklearn): ${deployMs.toFixed(1)} ms`);

    const predicted = await call('POST', '/predict/iris', { inputs: records(expected.rows) });
    expect(predicted.status).toBe(200);
    expect(predicted.body).toMatchObject({ predictions: expected['1'], model: 'iris', version: '1' });
    expect(predicted.headers.get('x-model-version')).toBe('1');

    // The load generator: 8 clients in a loop, native by-name path and V2.
    const statuses = new Map<number, number>();
    const versions = new Map<string, number>();
    let running = true;
    const client = async (i: number) => {
      while (running) {
        const v2 = i % 2 === 1;
        const res = v2
          ? await fetch(`${url}/v2/models/iris/infer`, {
              method: 'POST',
              body: JSON.stringify({ inputs: [{ name: 'input-0', datatype: 'FP64', shape: [3, 4], data: expected.rows.flat() }] }),
            })
          : await fetch(`${url}/predictions/iris`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records(expected.rows)) });
        const body = await res.json();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const version = res.headers.get('x-model-version') ?? 'none';
        versions.set(version, (versions.get(version) ?? 0) + 1);
        if (res.status === 200) {
          const got = v2 ? body.outputs[0].data : body.predictions;
          expect(got).toEqual(expected[version as '1' | '2']);
          if (v2) expect(body.model_version).toBe(version);
        }
      }
    };
    const clients = Array.from({ length: 8 }, (_, i) => client(i));
    const pause = (ms: number) => new Promise((done) => setTimeout(done, ms));
    await pause(300);

    const warm = performance.now();
    const v2 = await call('POST', '/models/iris/versions/2', { path: 'artifacts/iris2.joblib', config: CONFIG });
    console.log(`deploy of a second version through the API (Python warm, under load): ${(performance.now() - warm).toFixed(1)} ms`);
    expect(v2.status, JSON.stringify(v2.body)).toBe(201);
    await pause(300);
    const split = await call('PUT', '/models/iris/traffic', { '1': 0.9, '2': 0.1 });
    expect(split.status).toBe(200);
    expect(split.body.traffic).toEqual({ '1': 0.9, '2': 0.1 });
    await pause(500);
    const removed = await call('DELETE', '/models/iris/versions/1');
    expect(removed.status).toBe(200);
    expect(removed.body.removed).toEqual([{ name: 'iris', version: '1' }]);
    const after = new Map(versions);
    await pause(300);
    running = false;
    await Promise.all(clients);

    expect([...statuses.keys()], JSON.stringify([...statuses])).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(100);
    expect(versions.get('1')).toBeGreaterThan(0);
    expect(versions.get('2')).toBeGreaterThan(0);
    expect(versions.get('1'), 'no request reached v1 once it was removed').toBe(after.get('1'));

    const view = await call('GET', '/models/iris');
    expect(view.body.versions.map((v: { version: string }) => v.version)).toEqual(['2']);
    expect(view.body.traffic).toEqual({ '2': 0.1 });
    expect(view.body.versions[0].requests).toBeGreaterThan(0);
    expect((await call('POST', '/predict/iris', { inputs: records(expected.rows), version: '1' })).status).toBe(404);
  });

  it('reports load errors and conflicts, and validates traffic', async () => {
    const broken = await call('POST', '/models', { name: 'broken', runtime: 'sklearn', path: 'artifacts/iris1.joblib', config: { ...CONFIG, method: 'nope' } });
    expect(broken.status).toBe(422);
    expect(broken.body.error).toMatch(/method/);
    const listed = await call('GET', '/models/broken');
    expect(listed.body.versions).toEqual([expect.objectContaining({ state: 'failed', reason: expect.stringMatching(/method/) })]);
    expect((await call('DELETE', '/models/broken')).status).toBe(200);
    expect((await call('GET', '/models/broken')).status).toBe(404);

    expect((await call('POST', '/models/iris/versions/2', { path: 'artifacts/iris2.joblib', config: CONFIG })).status).toBe(409);
    expect((await call('POST', '/models', { name: 'x', runtime: 'nope', path: 'artifacts/iris1.joblib' })).status).toBe(422);
    for (const weights of [{ '2': -1 }, { '3': 1 }, { '2': 0 }, { '2': 'a' }]) {
      expect((await call('PUT', '/models/iris/traffic', weights)).status, JSON.stringify(weights)).toBe(400);
    }
    expect((await call('PUT', '/models/nope/traffic', { '1': 1 })).status).toBe(404);
    expect((await call('DELETE', '/models/nope')).status).toBe(404);
  });

  it('V2 repository extension: index, unload, listed in GET /v2', async () => {
    const meta = await (await fetch(`${url}/v2`)).json();
    expect(meta.extensions).toContain('model_repository');
    const index = await call('POST', '/v2/repository/index', {});
    expect(index.body).toContainEqual({ name: 'iris', version: '2', state: 'READY', reason: '' });
    expect((await call('POST', '/v2/repository/models/iris/unload')).status).toBe(200);
    expect((await post(`${url}/predictions/iris`, records(expected.rows))).status).toBe(404);
    const load = await call('POST', '/v2/repository/models/iris/load');
    expect(load.status, JSON.stringify(load.body)).toBe(404);
  });
});
