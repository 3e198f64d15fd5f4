#!/usr/bin/env node
// A real S3-compatible server for the tests: Versity S3 Gateway (versitygw)
// with its posix backend, built from source with `go install` at a pinned
// release and cached under $HOME/.cache/redesmyn-tools (or
// $REDESMYN_TOOLS_DIR), so only the first run on a machine pays for the build
// (2.5 to 5 minutes on 2 cores, about 3 s with a warm Go build cache); later
// runs find the binary and start a server in about 0.1 s. Needs Go >= 1.25.
//
// Library:
//   import { startS3Server, installS3Server } from './scripts/s3-server.mjs';
//   const s3 = await startS3Server();  // { endpoint, region, accessKeyId, secretAccessKey, env, stop() }
//   ...
//   await s3.stop();
//
// CLI:
//   node scripts/s3-server.mjs install            build the server if it is not cached; print its path
//   node scripts/s3-server.mjs serve [--data-dir DIR] [--port N]
//                                                 start one, print its JSON config, stop on SIGINT/SIGTERM
//
// Environment:
//   REDESMYN_TOOLS_DIR   where built tools are cached (default $HOME/.cache/redesmyn-tools)
//   REDESMYN_VERSITYGW   path of an existing versitygw binary to use instead of building one
//   GO                   the go command (default `go` on PATH)
//
// The server speaks the AWS S3 API: SigV4 auth, path-style addressing, MD5
// ETags, Last-Modified, HEAD, ranges, ListObjectsV2 with prefix/delimiter and
// conditional requests (If-Match / If-None-Match on GET, and on PUT).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const VERSITYGW_MODULE = 'github.com/versity/versitygw';
export const VERSITYGW_VERSION = 'v1.8.0';
const PACKAGE = `${VERSITYGW_MODULE}/cmd/versitygw`;

const DEFAULT_REGION = 'us-east-1';
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const INSTALL_TIMEOUT_MS = 30 * 60_000;
const LOCK_STALE_MS = 60_000; // a lock whose owner never wrote its pid this long is abandoned

/** The folder that caches built tools. */
export function toolsDir() {
  return path.resolve(process.env.REDESMYN_TOOLS_DIR || path.join(os.homedir(), '.cache', 'redesmyn-tools'));
}

/** Where the pinned server binary lives once installed. */
export function serverBinaryPath() {
  if (process.env.REDESMYN_VERSITYGW) return path.resolve(process.env.REDESMYN_VERSITYGW);
  return path.join(toolsDir(), `versitygw-${VERSITYGW_VERSION}`, 'versitygw');
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

// ---------------------------------------------------------------------------
// Install: `go install` into a private folder, then an atomic rename, under a
// lock (a directory made with mkdir, which is atomic) so that two processes
// never build at once and a reader never sees half a binary.

async function acquireLock(lockDir, log) {
  const deadline = Date.now() + INSTALL_TIMEOUT_MS;
  let said = false;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, 'owner.json'), JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }));
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    if (isStale(lockDir)) {
      // Rename first so that only one waiter breaks a given stale lock.
      const grave = `${lockDir}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        fs.renameSync(lockDir, grave);
        fs.rmSync(grave, { recursive: true, force: true });
        log(`s3-server: removed a stale install lock ${lockDir}`);
      } catch {
        // another waiter got there first
      }
      continue;
    }
    if (!said) {
      log(`s3-server: waiting for another process to finish installing versitygw (lock ${lockDir})`);
      said = true;
    }
    if (Date.now() > deadline) throw new Error(`s3-server: timed out waiting for the install lock ${lockDir}`);
    await sleep(500);
  }
}

function isStale(lockDir) {
  let owner;
  try {
    owner = JSON.parse(fs.readFileSync(path.join(lockDir, 'owner.json'), 'utf8'));
  } catch {
    // No (complete) owner file yet: the owner may be between mkdir and write.
    try {
      return Date.now() - fs.statSync(lockDir).mtimeMs > LOCK_STALE_MS;
    } catch {
      return false; // gone already
    }
  }
  if (owner.host !== os.hostname()) return false; // cannot tell; wait for the deadline
  return !pidAlive(owner.pid);
}

function runGo(args, env, log) {
  return new Promise((resolve) => {
    const child = spawn(process.env.GO || 'go', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (d) => {
      output += d;
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => resolve({ code: -1, output: `${output}\n${e.message}` }));
    child.on('close', (code) => resolve({ code, output }));
    const timer = setTimeout(() => {
      log('s3-server: go install is taking too long; killing it');
      child.kill('SIGKILL');
    }, INSTALL_TIMEOUT_MS);
    child.on('close', () => clearTimeout(timer));
  });
}

/**
 * Make sure the pinned versitygw binary is installed; return its path.
 * Idempotent and safe to call from several processes at once.
 * @param {{ log?: (msg: string) => void }} [options]
 * @returns {Promise<string>}
 */
export async function installS3Server({ log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  const bin = serverBinaryPath();
  if (isExecutable(bin)) return bin;
  if (process.env.REDESMYN_VERSITYGW) throw new Error(`s3-server: REDESMYN_VERSITYGW=${bin} is not an executable file`);

  const goCheck = spawnSync(process.env.GO || 'go', ['version'], { encoding: 'utf8' });
  if (goCheck.status !== 0) {
    throw new Error(`s3-server: building versitygw needs Go (>= 1.25) on PATH; \`go version\` failed: ${goCheck.error?.message ?? goCheck.stderr}`);
  }

  const dir = path.dirname(bin);
  fs.mkdirSync(dir, { recursive: true });
  const lockDir = `${dir}.lock`;
  await acquireLock(lockDir, log);
  const release = () => fs.rmSync(lockDir, { recursive: true, force: true });
  process.once('exit', release);
  try {
    if (isExecutable(bin)) return bin; // another process built it while we waited
    for (const old of fs.readdirSync(dir)) {
      if (old.startsWith('.build-')) fs.rmSync(path.join(dir, old), { recursive: true, force: true }); // left by a crash
    }

    const stage = fs.mkdtempSync(path.join(dir, '.build-'));
    const env = {
      ...process.env,
      GOBIN: stage,
      CGO_ENABLED: '0', // a static binary, and no C toolchain needed (skips the optional RDMA code)
      GOTOOLCHAIN: 'local', // never try to download another Go toolchain
      GOFLAGS: `${process.env.GOFLAGS ?? ''} -modcacherw`.trim(), // a module cache that `rm -rf` can clear
    };
    const args = ['install', '-trimpath', '-ldflags=-s -w', `${PACKAGE}@${VERSITYGW_VERSION}`];
    log(`s3-server: building versitygw ${VERSITYGW_VERSION} with \`go ${args.join(' ')}\` (${goCheck.stdout.trim()}); the first build takes a few minutes`);
    const started = Date.now();
    let result;
    for (let attempt = 1; attempt <= 3; attempt++) {
      result = await runGo(args, env, log);
      if (result.code === 0) break;
      log(`s3-server: go install failed (attempt ${attempt}/3, exit ${result.code}):\n${result.output.slice(-4000)}`);
      if (attempt < 3) await sleep(attempt * 5_000);
    }
    if (result.code !== 0) {
      fs.rmSync(stage, { recursive: true, force: true });
      throw new Error(`s3-server: could not build versitygw ${VERSITYGW_VERSION}:\n${result.output.slice(-4000)}`);
    }
    const built = path.join(stage, 'versitygw');
    const check = spawnSync(built, ['--version'], { encoding: 'utf8' });
    if (check.status !== 0) {
      fs.rmSync(stage, { recursive: true, force: true });
      throw new Error(`s3-server: the built versitygw does not run: ${check.error?.message ?? check.stderr}`);
    }
    fs.renameSync(built, bin);
    fs.rmSync(stage, { recursive: true, force: true });
    log(`s3-server: installed ${bin} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return bin;
  } finally {
    release();
    process.removeListener('exit', release);
  }
}

// ---------------------------------------------------------------------------
// Start / stop.

/** Servers still running, killed on exit if their owner forgot to stop them. */
const running = new Set();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const s of running) s.killNow();
  });
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function answers(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1_000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
    sock.on('data', (d) => {
      got += d;
      if (got.startsWith('HTTP/1.')) done(true);
    });
    sock.on('end', () => done(got.startsWith('HTTP/1.')));
  });
}

// On Linux, `setpriv --pdeathsig` makes the kernel send SIGTERM to the server
// when the process that spawned it dies, however it dies (even SIGKILL), so a
// crashed test worker leaves no server behind.
let setprivChecked;
function pdeathsigPrefix() {
  if (setprivChecked === undefined) {
    setprivChecked = false;
    if (process.platform === 'linux') {
      const r = spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
      setprivChecked = r.status === 0;
    }
  }
  return setprivChecked ? ['setpriv', '--pdeathsig', 'TERM', '--'] : [];
}

function launch(bin, { port, region, accessKeyId, secretAccessKey, gwroot, sidecar, cwd }) {
  const args = ['--port', `127.0.0.1:${port}`, '--region', region, '--quiet', 'posix'];
  if (sidecar) args.push('--sidecar', sidecar);
  args.push(gwroot);
  const prefix = pdeathsigPrefix();
  const [cmd, ...rest] = [...prefix, bin, ...args];
  const env = {
    ...process.env,
    ROOT_ACCESS_KEY_ID: accessKeyId,
    ROOT_SECRET_ACCESS_KEY: secretAccessKey,
  };
  // The server's own configuration comes only from the arguments above.
  for (const k of Object.keys(env)) if (k.startsWith('VGW_')) delete env[k];
  // detached: its own process group, so stop() can signal it and any children at once.
  const child = spawn(cmd, rest, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d) => {
    log += d;
    if (log.length > 20_000) log = log.slice(-10_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('error', (e) => keep(`\nspawn error: ${e.message}`));
  return { child, exited, log: () => log };
}

function signalGroup(child, sig) {
  if (child.exitCode !== null || child.signalCode !== null) return; // gone: its pid may be reused
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      // already gone
    }
  }
}

/**
 * @typedef {object} S3Server
 * @property {string} endpoint         e.g. http://127.0.0.1:40123 (path-style: bucket is the first path segment)
 * @property {string} region           us-east-1
 * @property {string} accessKeyId
 * @property {string} secretAccessKey
 * @property {string} dataDir          the posix backend's root: one sub-folder per bucket
 * @property {number} pid
 * @property {Record<string, string>} env   AWS_* variables for a child process using object_store's from_env()
 * @property {() => string} logs            the server's output so far (it runs with --quiet: errors only)
 * @property {Promise<{ code: number | null, signal: string | null }>} exited  settles when the server process ends
 * @property {() => Promise<void>} stop     kills the server and removes its temporary folder; idempotent
 */

/**
 * Start a fresh server on a free loopback port with an empty data folder.
 * @param {{ dataDir?: string, port?: number, region?: string, accessKeyId?: string, secretAccessKey?: string }} [options]
 *   dataDir: use this folder (created if absent, kept on stop) instead of a temporary one.
 * @returns {Promise<S3Server>}
 */
export async function startS3Server(options = {}) {
  const bin = await installS3Server();
  const region = options.region ?? DEFAULT_REGION;
  const accessKeyId = options.accessKeyId ?? 'redesmyn-test';
  const secretAccessKey = options.secretAccessKey ?? `redesmyn-test-${randomBytes(12).toString('hex')}`;

  sweepAbandoned();
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), TMP_PREFIX));
  await fsp.writeFile(path.join(tmp, 'owner.pid'), String(process.pid));
  const gwroot = options.dataDir ? path.resolve(options.dataDir) : path.join(tmp, 'data');
  await fsp.mkdir(gwroot, { recursive: true });
  let sidecar; // metadata in xattrs by default; in files when the filesystem has no user xattrs

  let lastError = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = options.port ?? (await freePort());
    const proc = launch(bin, { port, region, accessKeyId, secretAccessKey, gwroot, sidecar, cwd: tmp });
    const deadline = Date.now() + START_TIMEOUT_MS;
    let up = false;
    let exit;
    proc.exited.then((e) => (exit = e));
    while (!up && !exit && Date.now() < deadline) {
      up = await answers(port);
      if (!up) await sleep(25);
    }
    if (up && !exit) {
      const server = makeHandle({ proc, port, region, accessKeyId, secretAccessKey, gwroot, tmp });
      return server;
    }
    signalGroup(proc.child, 'SIGKILL');
    await proc.exited;
    lastError = proc.log();
    if (/xattr check failed/i.test(lastError) && !sidecar) {
      sidecar = path.join(tmp, 'meta');
      await fsp.mkdir(sidecar, { recursive: true });
      continue;
    }
    if (/address already in use/i.test(lastError) && options.port === undefined) continue; // lost a race for the port
    break;
  }
  await fsp.rm(tmp, { recursive: true, force: true });
  throw new Error(`s3-server: versitygw did not start:\n${lastError.slice(-4000)}`);
}

const TMP_PREFIX = 'redesmyn-s3-';

/** Remove the temporary folders of servers whose owner died without stop() (killed, crashed). */
function sweepAbandoned() {
  let names = [];
  try {
    names = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(os.tmpdir(), name);
    try {
      const owner = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8'));
      if (owner > 0 && !pidAlive(owner)) fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // not ours, or being set up right now
    }
  }
}

function makeHandle({ proc, port, region, accessKeyId, secretAccessKey, gwroot, tmp }) {
  const endpoint = `http://127.0.0.1:${port}`;
  let stopping;
  const entry = {
    killNow() {
      signalGroup(proc.child, 'SIGKILL');
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
  running.add(entry);
  installExitHook();
  const stop = () => {
    stopping ??= (async () => {
      signalGroup(proc.child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(proc.child, 'SIGKILL'), STOP_TIMEOUT_MS);
      await proc.exited;
      clearTimeout(timer);
      running.delete(entry);
      await fsp.rm(tmp, { recursive: true, force: true });
    })();
    return stopping;
  };
  // Let the caller's process exit even if it forgets stop(): the exit hook kills the server.
  proc.child.unref();
  proc.child.stdout.unref?.();
  proc.child.stderr.unref?.();
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    dataDir: gwroot,
    pid: proc.child.pid,
    env: {
      AWS_ENDPOINT: endpoint,
      AWS_DEFAULT_REGION: region,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_ALLOW_HTTP: 'true',
      AWS_VIRTUAL_HOSTED_STYLE_REQUEST: 'false',
    },
    logs: () => proc.log(),
    exited: proc.exited,
    stop,
  };
}

// ---------------------------------------------------------------------------
// CLI.

async function main(argv) {
  const [cmd, ...rest] = argv;
  const opt = (name) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (cmd === 'install') {
    const bin = await installS3Server();
    process.stdout.write(`${bin}\n`);
    return;
  }
  if (cmd === 'serve') {
    const port = opt('--port');
    const server = await startS3Server({ dataDir: opt('--data-dir'), port: port ? Number(port) : undefined });
    const { stop, logs, exited, ...config } = server;
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    process.stderr.write('s3-server: serving; Ctrl-C to stop\n');
    const keepAlive = setInterval(() => {}, 1 << 30);
    const died = await new Promise((resolve) => {
      process.once('SIGINT', () => resolve(false));
      process.once('SIGTERM', () => resolve(false));
      exited.then(() => resolve(true));
    });
    clearInterval(keepAlive);
    if (died) {
      process.stderr.write(`s3-server: the server exited on its own:\n${logs()}\n`);
      await stop();
      process.exitCode = 1;
      return;
    }
    await stop();
    return;
  }
  process.stderr.write('usage: node scripts/s3-server.mjs install | serve [--data-dir DIR] [--port N]\n');
  process.exitCode = 2;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.message : e}\n`);
    process.exit(1);
  });
}
