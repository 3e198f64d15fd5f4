#!/usr/bin/env node
// `node scripts/mlserver-venv.mjs`: the Python environment the MLServer
// compatibility suite (__test__/mlserver-compat.test.ts) runs both servers
// in: MLServer 1.7.1 with its scikit-learn and MLflow runtimes, MLflow, and
// what redesmyn's Python runtimes import (polars, numpy). One environment
// for both, as a team moving from MLServer would point `redesmyn serve
// --venv` at the one it already has.
//
// Idempotent: the venv is rebuilt only when its package list changes, under
// a lock (npm test's prefetch and the suite may start it together). Cached
// under $REDESMYN_MLSERVER_VENV, else $HOME/.cache/redesmyn-tools/mlserver.
// Prints {"python": "<venv>/bin/python", "venv": "<venv>"} as JSON on stdout
// (progress goes to stderr).
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ensureVenv, withLock } from './venv.mjs';

const root = join(import.meta.dirname, '..');
const python = process.env.PYO3_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3.11';

/**
 * Pinned versions that install on CPython 3.11 / Linux x86_64. uvloop stays
 * below 0.22 (MLServer 1.7's workers call asyncio.get_event_loop() in a
 * fresh process, which uvloop 0.22+ rejects; see bench/requirements.txt).
 */
export const packages = [
  'mlserver==1.7.1',
  'mlserver-sklearn==1.7.1',
  'mlserver-mlflow==1.7.1',
  'mlflow==3.18.0',
  'uvloop==0.21.0',
  'polars==2.1.0',
  'numpy==2.4.6',
  'pandas==3.1.1',
  'scikit-learn==1.9.1',
  'joblib==1.6.0',
];

function run(cmd, args) {
  process.stderr.write(`mlserver-venv: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`'${cmd} ${args.join(' ')}' failed with status ${r.status}`);
}


export function ensureMlserverVenv() {
  const venv = process.env.REDESMYN_MLSERVER_VENV ?? join(homedir(), '.cache', 'redesmyn-tools', 'mlserver');
  mkdirSync(dirname(venv), { recursive: true });
  return withLock(`${venv}.lock`, () => ({ python: ensureVenv(run, python, venv, packages), venv }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.stdout.write(`${JSON.stringify(ensureMlserverVenv())}\n`);
  } catch (err) {
    process.stderr.write(`mlserver-venv: ${err.message}\n`);
    process.exit(1);
  }
}
