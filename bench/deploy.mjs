#!/usr/bin/env node
// `npm run bench:deploy`: deploy time through the management API for the
// iris scikit-learn model: the time from `POST /models` to its 201 (the
// model loaded in the server's Python and serving).
//
// - warm: `redesmyn serve` over a copy of examples/repository (its Python
//   models loaded at start, so CPython and scikit-learn are imported):
//   20 deploys of iris/1/model.joblib under new names; median and max.
// - cold: a repository with only the TypeScript model, so the deploy also
//   starts CPython in the process and imports scikit-learn.
//
// Needs `npm run build` (dist/cli.js and the addon). Prints JSON.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';

const root = join(import.meta.dirname, '..');
const TOKEN = 'bench-deploy-0123456789abcdef';
const CONFIG = {
  inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }],
  columns: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
};

function serve(dir, venv) {
  const child = spawn(process.execPath, [join(root, 'dist', 'cli.js'), 'serve', dir, '--port', '0', '--venv', venv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((done, fail) => {
    const onData = (chunk) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"message":"serving"'));
      if (line) done({ child, url: `http://127.0.0.1:${JSON.parse(line).port}` });
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    child.on('exit', (code) => fail(new Error(`serve exited (${code}):\n${out}`)));
  });
}

async function deploy(url, name) {
  const started = performance.now();
  const res = await fetch(`${url}/models`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, runtime: 'sklearn', path: 'iris/1/model.joblib', version: '1', config: CONFIG }),
  });
  const ms = performance.now() - started;
  if (res.status !== 201) throw new Error(`deploy ${name}: ${res.status} ${await res.text()}`);
  return ms;
}

async function stopped(child) {
  const exit = new Promise((done) => child.on('exit', done));
  child.kill('SIGTERM');
  await exit;
}

const { venv, python } = ensureRuntimesVenv();
const work = mkdtempSync(join(tmpdir(), 'redesmyn-bench-deploy-'));
try {
  const warmDir = join(work, 'warm');
  cpSync(join(root, 'examples', 'repository'), warmDir, { recursive: true });
  execFileSync(python, [join(warmDir, 'train.py')], { stdio: 'ignore' });
  writeFileSync(join(warmDir, 'settings.json'), JSON.stringify({ management: { token: TOKEN } }));

  const warm = await serve(warmDir, venv);
  const times = [];
  for (let i = 0; i < 20; i++) times.push(await deploy(warm.url, `bench-${i}`));
  await stopped(warm.child);

  const coldDir = join(work, 'cold');
  cpSync(join(root, 'examples', 'repository', 'sum-ts'), join(coldDir, 'sum-ts'), { recursive: true });
  cpSync(join(warmDir, 'iris'), join(coldDir, 'artifacts', 'iris'), { recursive: true });
  rmSync(join(coldDir, 'artifacts', 'iris', 'model-settings.json'));
  writeFileSync(join(coldDir, 'settings.json'), JSON.stringify({ management: { token: TOKEN } }));
  const cold = await serve(coldDir, venv);
  const coldMs = await (async () => {
    const started = performance.now();
    const res = await fetch(`${cold.url}/models`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'iris', runtime: 'sklearn', path: 'artifacts/iris/1/model.joblib', config: CONFIG }),
    });
    if (res.status !== 201) throw new Error(`cold deploy: ${res.status} ${await res.text()}`);
    return performance.now() - started;
  })();
  await stopped(cold.child);

  const sorted = [...times].sort((a, b) => a - b);
  const round = (x) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify(
      {
        model: 'iris (examples/repository/iris/1: scikit-learn DecisionTreeClassifier, joblib)',
        warm: { deploys: times.length, median_ms: round(sorted[Math.floor(sorted.length / 2)]), min_ms: round(sorted[0]), max_ms: round(sorted[sorted.length - 1]) },
        cold_first_python_model_ms: round(coldMs),
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
