#!/usr/bin/env node
// `node scripts/runtimes-venv.mjs`: the Python environment the model
// repository suite (__test__/repository.test.ts) serves its models with and
// makes its model files with: requirements.txt (polars, numpy, scikit-learn,
// joblib) plus the libraries of the built-in runtimes (xgboost-cpu and
// tensorflow-cpu keep the install small, lightgbm).
//
// Idempotent: the venv is rebuilt only when its package list changes. Cached
// under $REDESMYN_RUNTIMES_VENV, else $HOME/.cache/redesmyn-tools/runtimes.
// Prints {"python": "<venv>/bin/python", "venv": "<venv>"} as JSON on stdout
// (progress goes to stderr).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const python = process.env.PYO3_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3.11';

/** Pinned versions that install on CPython 3.11 / Linux x86_64, beside requirements.txt. */
export const packages = ['xgboost-cpu==3.2.0', 'lightgbm==4.7.0', 'tensorflow-cpu==2.21.0'];

function run(cmd, args) {
  process.stderr.write(`runtimes-venv: ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`'${cmd} ${args.join(' ')}' failed with status ${r.status}`);
}

export function ensureRuntimesVenv() {
  const venv = process.env.REDESMYN_RUNTIMES_VENV ?? join(homedir(), '.cache', 'redesmyn-tools', 'runtimes');
  mkdirSync(dirname(venv), { recursive: true });
  const bin = join(venv, 'bin', 'python');
  const stamp = join(venv, '.redesmyn-packages');
  const wanted = `${readFileSync(join(root, 'requirements.txt'), 'utf8')}\n${packages.join('\n')}`;
  if (!existsSync(bin)) run(python, ['-m', 'venv', venv]);
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== wanted) {
    run(bin, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', join(root, 'requirements.txt'), ...packages]);
    writeFileSync(stamp, wanted);
  }
  return { python: bin, venv };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.stdout.write(`${JSON.stringify(ensureRuntimesVenv())}\n`);
  } catch (err) {
    process.stderr.write(`runtimes-venv: ${err.message}\n`);
    process.exit(1);
  }
}
