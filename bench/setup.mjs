#!/usr/bin/env node
// Installs everything the benchmark needs besides redesmyn itself, into
// ignored folders under bench/. Idempotent: each step records what it installed
// and is skipped while that is still current.
//
//   node bench/setup.mjs          # wrk, Python peers, npm peers, models, MLServer config
//   node bench/setup.mjs onnxruntime  # step 3 only; prints the onnxruntime shared library's path
//                                     # (the ONNX runtime's tests load it, see crates/redesmyn-onnx)
//
// Steps:
//   1. wrk, the load generator, and h2load (nghttp2) for the gRPC scenario
//      (Debian/Ubuntu: apt-get; macOS: brew).
//   2. bench/.venv-peers: MLServer + its scikit-learn runtime, FastAPI, uvicorn,
//      scikit-learn, joblib, skl2onnx, onnx, polars (bench/requirements.txt).
//   3. bench/node_modules: fastify, onnxruntime-node (bench/package-lock.json).
//   4. bench/.models: iris.joblib and iris.onnx, trained on scikit-learn's
//      bundled copy of the iris set (no download).
//   5. bench/.models/mlserver: MLServer's model repository, adaptive batching on
//      (and mlserver-forest, the random forest of scenario 15).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH, MLSERVER_BATCH, MODELS, PY, VENV } from './lib/config.mjs';

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: opts.quiet ? 'pipe' : 'inherit', encoding: 'utf8', ...opts });
  if (r.error) return { status: -1, stdout: '', stderr: String(r.error) };
  return r;
}

function must(what, cmd, args, opts) {
  const r = sh(cmd, args, opts);
  if (r.status !== 0) {
    if (opts?.quiet) process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    throw new Error(`${what} failed: ${cmd} ${args.join(' ')} (exit ${r.status})`);
  }
  return r;
}

const which = (bin) => sh('sh', ['-c', `command -v ${bin}`], { quiet: true }).stdout?.trim() || null;
const hash = (...files) => {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex').slice(0, 16);
};
const stampOk = (file, value) => existsSync(file) && readFileSync(file, 'utf8').trim() === value;

// 1. wrk ---------------------------------------------------------------------
/** Installs `tool` from the system's packages (`apt` / `brew` name the package) unless it is on PATH. */
function ensureSystemTool(tool, { apt: aptPackage, brew: brewPackage, home }) {
  if (which(tool)) return which(tool);
  console.log(`setup: installing ${tool}`);
  if (which('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const apt = (...args) =>
      process.getuid?.() === 0 ? sh('apt-get', args, { env }) : sh('sudo', ['-E', 'apt-get', ...args], { env });
    if (apt('install', '-y', '-qq', aptPackage).status !== 0) {
      if (apt('update', '-qq').status !== 0) throw new Error('apt-get update failed');
      if (apt('install', '-y', '-qq', aptPackage).status !== 0) throw new Error(`apt-get install ${aptPackage} failed`);
    }
  } else if (which('brew')) {
    must(`brew install ${brewPackage}`, 'brew', ['install', brewPackage]);
  } else {
    throw new Error(`${tool} is not installed and neither apt-get nor brew is available: install ${tool} (${home}) and retry`);
  }
  const path = which(tool);
  if (!path) throw new Error(`${tool} still not on PATH after installing it`);
  return path;
}

export const ensureWrk = () => ensureSystemTool('wrk', { apt: 'wrk', brew: 'wrk', home: 'https://github.com/wg/wrk' });

/** h2load, the HTTP/2 load generator of the gRPC scenario (nghttp2). */
export const ensureH2load = () =>
  ensureSystemTool('h2load', { apt: 'nghttp2-client', brew: 'nghttp2', home: 'https://nghttp2.org' });

// 2. Python peers --------------------------------------------------------------
/**
 * A Python that MLServer 1.7 supports (3.9–3.12). The same venv serves
 * redesmyn's Python handler, so the Python the addon embeds (PYO3_PYTHON, else
 * python3, as in scripts/setup.mjs) comes first.
 */
function findPython() {
  const candidates = [process.env.BENCH_PYTHON, process.env.PYO3_PYTHON, 'python3'].filter(Boolean);
  const pyenvRoot = process.env.PYENV_ROOT ?? join(process.env.HOME ?? '/root', '.pyenv');
  if (existsSync(join(pyenvRoot, 'versions'))) {
    const versions = readdirSync(join(pyenvRoot, 'versions')).filter((v) => /^3\.(9|1[012])\.\d+$/.test(v));
    versions.sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
    candidates.push(...versions.map((v) => join(pyenvRoot, 'versions', v, 'bin', 'python3')));
  }
  candidates.push('python3.12', 'python3.11', 'python3.10', 'python3.9');
  for (const c of candidates) {
    const r = sh(c, ['-c', 'import sys, venv; print("%d.%d" % sys.version_info[:2])'], { quiet: true });
    if (r.status !== 0) continue;
    const [maj, min] = r.stdout.trim().split('.').map(Number);
    if (maj === 3 && min >= 9 && min <= 12) return c;
  }
  throw new Error('no Python 3.9–3.12 with venv found (MLServer 1.7 needs one); set BENCH_PYTHON=/path/to/python3');
}

export function ensureVenv() {
  const req = join(BENCH, 'requirements.txt');
  const stamp = join(VENV, '.bench-requirements');
  const want = hash(req);
  if (existsSync(PY) && stampOk(stamp, want)) return;
  if (!existsSync(PY)) {
    const python = findPython();
    console.log(`setup: creating ${VENV} with ${python}`);
    must('venv', python, ['-m', 'venv', VENV]);
  }
  console.log('setup: installing the Python peers (bench/requirements.txt)');
  must('pip', PY, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', req]);
  writeFileSync(stamp, `${want}\n`);
}

// 3. npm peers -----------------------------------------------------------------
export function ensureNodeModules() {
  const stamp = join(BENCH, 'node_modules', '.bench-lock');
  const want = hash(join(BENCH, 'package.json'), join(BENCH, 'package-lock.json'));
  if (stampOk(stamp, want)) return;
  console.log('setup: installing the npm peers (bench/package.json)');
  // onnxruntime-node's install script only fetches optional GPU (CUDA)
  // providers; the CPU runtime ships inside the npm package itself.
  const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
  must('npm ci', 'npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: BENCH, env });
  writeFileSync(stamp, `${want}\n`);
}

/** onnxruntime's shared library as onnxruntime-node ships it for this platform (after step 3). */
export function onnxruntimeLibrary() {
  ensureNodeModules();
  const file = { linux: 'libonnxruntime.so.1', darwin: 'libonnxruntime.1.dylib', win32: 'onnxruntime.dll' }[process.platform];
  const bin = join(BENCH, 'node_modules', 'onnxruntime-node', 'bin');
  for (const napi of readdirSync(bin).sort().reverse()) {
    const path = join(bin, napi, process.platform, process.arch, file ?? '');
    if (file && existsSync(path)) return path;
  }
  throw new Error(`onnxruntime-node ships no onnxruntime for ${process.platform}/${process.arch}`);
}

// 4. models --------------------------------------------------------------------
export function ensureModels() {
  const stamp = join(MODELS, '.bench-models');
  const want = hash(join(BENCH, 'peers', 'train_iris.py'), join(BENCH, 'requirements.txt'));
  if (['iris.joblib', 'iris.onnx', 'forest.joblib'].every((f) => existsSync(join(MODELS, f))) && stampOk(stamp, want)) return;
  console.log('setup: training the iris classifier and exporting it to ONNX');
  mkdirSync(MODELS, { recursive: true });
  must('train_iris.py', PY, [join(BENCH, 'peers', 'train_iris.py'), MODELS]);
  writeFileSync(stamp, `${want}\n`);
}

// 5. MLServer's model repository -------------------------------------------------
export const MLSERVER_REPO = join(MODELS, 'mlserver');

export function writeMlserverRepo() {
  mkdirSync(join(MLSERVER_REPO, 'iris'), { recursive: true });
  // Server-wide settings; ports and the worker count come from MLSERVER_*
  // environment variables at start. debug=false turns the access log off, as
  // in production.
  const settings = { debug: false, host: '127.0.0.1' };
  const model = {
    name: 'iris',
    implementation: 'mlserver_sklearn.SKLearnModel',
    parameters: { uri: join(MODELS, 'iris.joblib'), version: 'v1' },
    // Adaptive batching, the same limits as redesmyn's endpoints (lib/config.mjs).
    max_batch_size: MLSERVER_BATCH.maxSize,
    max_batch_time: MLSERVER_BATCH.maxDelayMs / 1000,
  };
  writeFileSync(join(MLSERVER_REPO, 'settings.json'), `${JSON.stringify(settings, null, 2)}\n`);
  writeFileSync(join(MLSERVER_REPO, 'iris', 'model-settings.json'), `${JSON.stringify(model, null, 2)}\n`);

  // Scenario 11: the random forest, parallel_workers from the contender's environment.
  const forestRepo = join(MODELS, 'mlserver-forest');
  mkdirSync(join(forestRepo, 'forest'), { recursive: true });
  const forest = { ...model, name: 'forest', parameters: { uri: join(MODELS, 'forest.joblib'), version: 'v1' } };
  writeFileSync(join(forestRepo, 'settings.json'), `${JSON.stringify(settings, null, 2)}\n`);
  writeFileSync(join(forestRepo, 'forest', 'model-settings.json'), `${JSON.stringify(forest, null, 2)}\n`);

  // Scenario 8: a streaming runtime (peers/mlserver_stream.py), in a
  // repository of its own with the settings MLServer streams under.
  const streamRepo = join(MODELS, 'mlserver-stream');
  mkdirSync(join(streamRepo, 'stream'), { recursive: true });
  const streamSettings = { ...settings, parallel_workers: 0, gzip_enabled: false, metrics_endpoint: null };
  const streamModel = { name: 'stream', implementation: 'mlserver_stream.NoopStream' };
  writeFileSync(join(streamRepo, 'settings.json'), `${JSON.stringify(streamSettings, null, 2)}\n`);
  writeFileSync(join(streamRepo, 'stream', 'model-settings.json'), `${JSON.stringify(streamModel, null, 2)}\n`);
  // MLServer imports a custom runtime from its model folder.
  copyFileSync(join(BENCH, 'peers', 'mlserver_stream.py'), join(streamRepo, 'stream', 'mlserver_stream.py'));
}

// 6. Model repositories `redesmyn serve` reads ---------------------------------
const IRIS_COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];

/** Settings of one iris model folder for `redesmyn serve` (`runtime`: sklearn or onnx). */
function redesmynIris(runtime) {
  const onnx = runtime === 'onnx';
  return {
    runtime,
    parameters: { uri: join(MODELS, onnx ? 'iris.onnx' : 'iris.joblib') },
    // The ONNX export takes one FP32 [-1, 4] tensor named "input"; read from the records as the four columns.
    inputs: [{ name: onnx ? 'input' : 'input-0', datatype: onnx ? 'FP32' : 'FP64', shape: [-1, 4] }],
    columns: IRIS_COLUMNS,
    max_batch_size: 64,
  };
}

/** A repository of `count` copies of one model (iris-1 … iris-N), in `dir`. */
function writeCopies(dir, count, settings) {
  if (existsSync(join(dir, `iris-${count}`, 'model-settings.json'))) return;
  for (let i = 1; i <= count; i++) {
    mkdirSync(join(dir, `iris-${i}`), { recursive: true });
    writeFileSync(join(dir, `iris-${i}`, 'model-settings.json'), `${JSON.stringify({ ...settings, name: `iris-${i}` }, null, 2)}\n`);
  }
}

/** How many models the memory scenario loads (and the one-model baseline). */
export const MEMORY_MODELS = [1, 50];

export function writeRepositories() {
  // Scenario 3: the iris ONNX model served by `redesmyn serve` through the onnx runtime.
  mkdirSync(join(MODELS, 'redesmyn-onnx', 'iris'), { recursive: true });
  writeFileSync(join(MODELS, 'redesmyn-onnx', 'iris', 'model-settings.json'), `${JSON.stringify(redesmynIris('onnx'), null, 2)}\n`);
  // Memory per loaded model: N copies of the iris model, for redesmyn (sklearn, onnx) and MLServer (sklearn).
  for (const n of MEMORY_MODELS) {
    writeCopies(join(MODELS, 'memory', `redesmyn-sklearn-${n}`), n, redesmynIris('sklearn'));
    writeCopies(join(MODELS, 'memory', `redesmyn-onnx-${n}`), n, redesmynIris('onnx'));
    const mlserver = join(MODELS, 'memory', `mlserver-${n}`);
    writeCopies(mlserver, n, { implementation: 'mlserver_sklearn.SKLearnModel', parameters: { uri: join(MODELS, 'iris.joblib'), version: 'v1' } });
    writeFileSync(join(mlserver, 'settings.json'), `${JSON.stringify({ debug: false, host: '127.0.0.1' }, null, 2)}\n`);
  }
}

export function setup() {
  const t0 = Date.now();
  const wrk = ensureWrk();
  ensureH2load();
  ensureVenv();
  ensureNodeModules();
  ensureModels();
  writeMlserverRepo();
  writeRepositories();
  console.log(`setup: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (wrk: ${wrk}, Python peers: ${VENV})`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    if (process.argv[2] === 'onnxruntime') {
      const path = onnxruntimeLibrary();
      process.stdout.write(`${path}\n`);
    } else {
      setup();
    }
  } catch (e) {
    console.error(`setup: ${e.message}`);
    process.exit(1);
  }
}
