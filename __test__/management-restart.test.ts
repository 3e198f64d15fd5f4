// Management changes survive a restart: `redesmyn serve DIR` (a child
// process, as a user runs it) with the management API on in DIR's
// settings.json; models deployed, versioned, split and removed through the
// API are written into DIR's settings files, and the restarted server
// serves the same models, versions and weights.
import { execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';
import { serveCli } from './support/cli';

const run = promisify(execFile);
const TOKEN = 'restart-token-0123456789';
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
const CONFIG = { inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }], columns: COLUMNS };

interface Served {
  child: ChildProcess;
  url: string;
  exit: Promise<number | null>;
}

function serve(dir: string, venv: string): Promise<Served> {
  return serveCli(['serve', dir, '--port', '0', '--venv', venv]);
}

async function stop(served: Served) {
  served.child.kill('SIGTERM');
  expect(await served.exit).toBe(0);
}

let dir: string;
let venv: string;
let expected: { rows: number[][]; '1': number[]; '2': number[] };

async function call(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

beforeAll(async () => {
  let python: string;
  ({ venv, python } = ensureRuntimesVenv());
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-restart-'));
  const { stdout } = await run(python, [join(__dirname, 'management', 'make_artifacts.py'), dir, join(dir, '..', `${dir.split('/').pop()}-outside`)], {
    timeout: 120_000,
  });
  expected = JSON.parse(stdout);
  mkdirSync(join(dir, 'base'));
  writeFileSync(join(dir, 'base', 'model-settings.json'), JSON.stringify({ name: 'base', runtime: 'sklearn', parameters: { uri: '../artifacts/iris1.joblib' }, ...CONFIG }));
  // A versioned repository model: its own policy stays when only its traffic changes.
  for (const v of ['1', '2']) {
    mkdirSync(join(dir, 'multi', v), { recursive: true });
    copyFileSync(join(dir, 'artifacts', `iris${v}.joblib`), join(dir, 'multi', v, 'model.joblib'));
  }
  writeFileSync(join(dir, 'multi', 'model-settings.json'), JSON.stringify({ runtime: 'sklearn', parameters: { uri: 'model.joblib' }, versionPolicy: { all: {} }, ...CONFIG }));
  writeFileSync(join(dir, 'settings.json'), JSON.stringify({ management: { token: TOKEN } }));
}, 300_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}-outside`, { recursive: true, force: true });
});

describe('management changes persist in the repository', () => {
  it('a restarted server serves the same models, versions and weights', async () => {
    const first = await serve(dir, venv);
    try {
      for (const [name, version, file] of [
        ['iris', '1', 'iris1'],
        ['iris', '2', 'iris2'],
        ['gone', '1', 'iris1'],
      ]) {
        const r = await call(first.url, 'POST', '/models', { name, version, runtime: 'sklearn', path: `artifacts/${file}.joblib`, config: CONFIG });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
      }
      expect((await call(first.url, 'PUT', '/models/iris/traffic', { '1': 0.7, '2': 0.3 })).status).toBe(200);
      expect((await call(first.url, 'DELETE', '/models/gone')).status).toBe(200);
      expect((await call(first.url, 'PUT', '/models/multi/traffic', { '1': 1, '2': 0 })).status).toBe(200);
    } finally {
      await stop(first);
    }

    const parent = JSON.parse(readFileSync(join(dir, 'iris', 'model-settings.json'), 'utf8'));
    expect(parent).toMatchObject({ name: 'iris', runtime: 'sklearn', versionPolicy: { specific: { versions: [1, 2] } }, traffic: { '1': 0.7, '2': 0.3 } });
    const v1 = JSON.parse(readFileSync(join(dir, 'iris', '1', 'model-settings.json'), 'utf8'));
    expect(v1.parameters.uri).toBe('../../artifacts/iris1.joblib');
    expect(existsSync(join(dir, 'gone', 'model-settings.json'))).toBe(false);
    expect(existsSync(join(dir, 'gone', 'model-settings.json.removed'))).toBe(true);
    const multi = JSON.parse(readFileSync(join(dir, 'multi', 'model-settings.json'), 'utf8'));
    expect(multi).toMatchObject({ versionPolicy: { all: {} }, traffic: { '1': 1, '2': 0 }, parameters: { uri: 'model.joblib' } });

    const second = await serve(dir, venv);
    try {
      const iris = await call(second.url, 'GET', '/models/iris');
      expect(iris.status).toBe(200);
      const versions = iris.body.versions.map((v: { version: string | null }) => v.version).filter((v: string | null) => v !== null);
      expect(versions.sort()).toEqual(['1', '2']);
      expect(iris.body.traffic).toEqual({ '1': 0.7, '2': 0.3 });
      expect((await call(second.url, 'GET', '/models/gone')).status).toBe(404);
      expect((await call(second.url, 'GET', '/models/base')).status).toBe(200);
      // Weight 0 keeps version 2 of `multi` out of rotation after the restart too.
      for (let i = 0; i < 10; i++) {
        const r = await call(second.url, 'POST', '/predict/multi', { inputs: [Object.fromEntries(COLUMNS.map((c, j) => [c, expected.rows[0][j]]))] });
        expect(r.body.version).toBe('1');
      }
      // The weights serve: both versions answer unversioned requests, each with its own predictions.
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const r = await call(second.url, 'POST', '/predict/iris', { inputs: expected.rows.map((row) => Object.fromEntries(COLUMNS.map((c, j) => [c, row[j]]))) });
        expect(r.status).toBe(200);
        expect(r.body.predictions).toEqual(expected[r.body.version as '1' | '2']);
        seen.add(r.body.version);
      }
      expect([...seen].sort()).toEqual(['1', '2']);
    } finally {
      await stop(second);
    }
  }, 120_000);
});
