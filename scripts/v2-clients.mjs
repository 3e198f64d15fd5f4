#!/usr/bin/env node
// Prepares the Open Inference Protocol (V2) test clients: one Python venv per
// client family, because tritonclient's gRPC stubs, kserve's and MLServer's
// register the same protobuf names and cannot share a process.
//
//   triton: tritonclient[http,grpc] (not [all], which pulls CUDA packages)
//   kserve: kserve (InferenceRESTClient with RESTConfig(protocol="v2"), InferenceGRPCClient)
//   sse:    httpx + httpx-sse
//   onnx:   scikit-learn + skl2onnx, which export the ONNX runtime's test model
//           (bench/peers/train_iris.py; not a client, but a venv made the same way)
//
// Idempotent: a venv is rebuilt only when its pinned package list changes.
// Cached under $REDESMYN_V2_CLIENTS, else $HOME/.cache/redesmyn-tools/v2-clients,
// else ./.cache/v2-clients. Prints {"triton": "<python>", ...} as JSON on stdout
// (progress goes to stderr), so tests can `JSON.parse` it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ensureVenv, withLock } from './venv.mjs';

const root = join(import.meta.dirname, '..');
const python = process.env.PYO3_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3.11';

/** Pinned versions that install on CPython 3.11 / Linux x86_64. */
export const families = {
  triton: ['tritonclient[http,grpc]==2.73.0'],
  kserve: ['kserve==0.21.0'],
  sse: ['httpx==0.28.1', 'httpx-sse==0.4.3'],
  onnx: ['scikit-learn==1.9.1', 'skl2onnx==1.20.0', 'onnx==1.23.2', 'joblib==1.6.0', 'numpy==2.4.6'],
};

function cacheDir() {
  if (process.env.REDESMYN_V2_CLIENTS) return process.env.REDESMYN_V2_CLIENTS;
  const home = homedir();
  if (home && existsSync(home)) return join(home, '.cache', 'redesmyn-tools', 'v2-clients');
  return join(root, '.cache', 'v2-clients');
}

function run(cmd, args) {
  process.stderr.write(`v2-clients: ${cmd} ${args.join(' ')}\n`);
  // stdout of the children goes to stderr: our stdout is the JSON answer.
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`'${cmd} ${args.join(' ')}' failed with status ${r.status}`);
}


/** Makes (or reuses) every client venv and returns the python path of each. */
export function ensureClients() {
  const base = cacheDir();
  mkdirSync(base, { recursive: true });
  return withLock(join(base, '.lock'), () => ensureAll(base));
}

function ensureAll(base) {
  const pythons = {};
  for (const [name, packages] of Object.entries(families)) {
    pythons[name] = ensureVenv(run, python, join(base, name), packages);
  }
  return pythons;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.stdout.write(`${JSON.stringify(ensureClients())}\n`);
  } catch (err) {
    process.stderr.write(`v2-clients: ${err.message}\n`);
    process.exit(1);
  }
}
