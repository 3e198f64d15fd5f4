#!/usr/bin/env node
// Prepares what the examples and tests need beyond npm packages:
// ./.venv with requirements.txt and requirements-tracing.txt (made with the Python the addon embeds),
// and the iris example's trained models. Idempotent and quick when done.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const venv = join(root, '.venv');
const python = process.env.PYO3_PYTHON ?? 'python3';

function run(cmd, args) {
  console.log(`setup: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`setup: '${cmd} ${args.join(' ')}' failed`);
    process.exit(1);
  }
}

if (!existsSync(join(venv, 'bin', 'python'))) run(python, ['-m', 'venv', venv]);

// requirements-tracing.txt: OpenTelemetry for the tracing suite's Python handler, here only.
const files = ['requirements.txt', 'requirements-tracing.txt'];
const digest = files.reduce((hash, file) => hash.update(readFileSync(join(root, file))), createHash('sha256')).digest('hex');
const stamp = join(venv, '.redesmyn-requirements');
if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== digest) {
  run(join(venv, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...files.flatMap((f) => ['-r', f])]);
  writeFileSync(stamp, digest);
}

const model = join(root, 'examples', 'iris', 'models', 'iris', '1', '2', 'model.joblib');
if (!existsSync(model)) run(join(venv, 'bin', 'python'), [join('examples', 'iris', 'train.py')]);
console.log('setup: ready');
