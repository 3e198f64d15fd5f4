// What the emulator scripts share (s3-server.mjs, gcs-server.mjs,
// azure-server.mjs, http-server.mjs): the cache folder of built tools, an
// install lock several processes can wait on, `go install` of a pinned module
// into that cache, free loopback ports, and child servers that die with the
// process that started them.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const INSTALL_TIMEOUT_MS = 30 * 60_000;
const LOCK_STALE_MS = 60_000; // a lock whose owner never wrote its pid this long is abandoned
const STOP_TIMEOUT_MS = 5_000;

/** The folder that caches built tools. */
export function toolsDir() {
  return path.resolve(process.env.REDESMYN_TOOLS_DIR || path.join(os.homedir(), '.cache', 'redesmyn-tools'));
}

export function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

export const defaultLog = (m) => process.stderr.write(`${m}\n`);

// ---------------------------------------------------------------------------
// Install lock: a directory made with mkdir (atomic), so that two processes
// never install at once and a reader never sees half an install.

export async function acquireLock(lockDir, log, label) {
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
        log(`${label}: removed a stale install lock ${lockDir}`);
      } catch {
        // another waiter got there first
      }
      continue;
    }
    if (!said) {
      log(`${label}: waiting for another process to finish installing (lock ${lockDir})`);
      said = true;
    }
    if (Date.now() > deadline) throw new Error(`${label}: timed out waiting for the install lock ${lockDir}`);
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

/**
 * Run `install(stageDir)` under the lock of `dir` unless `done()` already
 * holds; the stage is a fresh folder inside `dir` that install fills.
 */
export async function installOnce({ dir, done, install, log = defaultLog, label }) {
  if (done()) return;
  fs.mkdirSync(dir, { recursive: true });
  const lockDir = `${dir}.lock`;
  await acquireLock(lockDir, log, label);
  const release = () => fs.rmSync(lockDir, { recursive: true, force: true });
  process.once('exit', release);
  try {
    if (done()) return; // another process installed it while we waited
    for (const old of fs.readdirSync(dir)) {
      if (old.startsWith('.build-')) fs.rmSync(path.join(dir, old), { recursive: true, force: true }); // left by a crash
    }
    const stage = fs.mkdtempSync(path.join(dir, '.build-'));
    try {
      await install(stage);
    } finally {
      fs.rmSync(stage, { recursive: true, force: true });
    }
  } finally {
    release();
    process.removeListener('exit', release);
  }
}

/** Run a command to its end, keeping the tail of its output; killed after INSTALL_TIMEOUT_MS. */
export function runCommand(cmd, args, { env = process.env, cwd, log = defaultLog, label } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
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
      log(`${label}: ${cmd} is taking too long; killing it`);
      child.kill('SIGKILL');
    }, INSTALL_TIMEOUT_MS);
    child.on('close', () => clearTimeout(timer));
  });
}

/** Run a command up to three times (network hiccups); throw with its output if it never succeeds. */
export async function runWithRetries(cmd, args, options) {
  const { log = defaultLog, label } = options;
  let result;
  for (let attempt = 1; attempt <= 3; attempt++) {
    result = await runCommand(cmd, args, options);
    if (result.code === 0) return result;
    log(`${label}: ${cmd} ${args.join(' ')} failed (attempt ${attempt}/3, exit ${result.code}):\n${result.output.slice(-4000)}`);
    if (attempt < 3) await sleep(attempt * 5_000);
  }
  throw new Error(`${label}: ${cmd} ${args.join(' ')} failed:\n${result.output.slice(-4000)}`);
}

/**
 * `go install PACKAGE@VERSION` into `bin` (a static binary, trimmed), once
 * per machine; returns `bin`. `check` is an argument list the built binary
 * must run with successfully.
 */
export async function goInstall({ pkg, version, bin, check = ['--version'], log = defaultLog, label }) {
  const go = process.env.GO || 'go';
  await installOnce({
    dir: path.dirname(bin),
    done: () => isExecutable(bin),
    log,
    label,
    install: async (stage) => {
      const goCheck = spawnSync(go, ['version'], { encoding: 'utf8' });
      if (goCheck.status !== 0) throw new Error(`${label}: building needs Go on PATH; \`go version\` failed: ${goCheck.error?.message ?? goCheck.stderr}`);
      const env = {
        ...process.env,
        GOBIN: stage,
        CGO_ENABLED: '0', // a static binary, and no C toolchain needed
        GOTOOLCHAIN: 'local', // never try to download another Go toolchain
        GOFLAGS: `${process.env.GOFLAGS ?? ''} -modcacherw`.trim(), // a module cache that `rm -rf` can clear
      };
      const args = ['install', '-trimpath', '-ldflags=-s -w', `${pkg}@${version}`];
      log(`${label}: building with \`go ${args.join(' ')}\` (${goCheck.stdout.trim()}); the first build takes a few minutes`);
      const started = Date.now();
      await runWithRetries(go, args, { env, log, label });
      const built = path.join(stage, path.basename(pkg.replace(/\/v\d+$/, '')));
      const ran = spawnSync(built, check, { encoding: 'utf8' });
      if (ran.status !== 0) throw new Error(`${label}: the built ${built} does not run: ${ran.error?.message ?? ran.stderr}`);
      fs.renameSync(built, bin);
      log(`${label}: installed ${bin} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    },
  });
  return bin;
}

// ---------------------------------------------------------------------------
// Servers.

export async function freePort() {
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

/** Whether something on `port` answers an HTTP request (any status). */
export async function answers(port, urlPath = '/') {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1_000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
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
export function pdeathsigPrefix() {
  if (setprivChecked === undefined) {
    setprivChecked = false;
    if (process.platform === 'linux') {
      const r = spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
      setprivChecked = r.status === 0;
    }
  }
  return setprivChecked ? ['setpriv', '--pdeathsig', 'TERM', '--'] : [];
}

export function signalGroup(child, sig) {
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

/** Servers still running, killed on exit if their owner forgot to stop them. */
const running = new Set();
let exitHookInstalled = false;
export function killOnExit(entry) {
  running.add(entry);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const s of running) s.killNow();
    });
  }
  return () => running.delete(entry);
}

/**
 * Spawn a server in its own process group (dies with this process), keeping
 * the tail of its output. Returns { child, exited, log }.
 */
export function launch(cmd, args, { env = process.env, cwd } = {}) {
  const [first, ...rest] = [...pdeathsigPrefix(), cmd, ...args];
  const child = spawn(first, rest, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** Wait until `port` answers or the process exits; true when it answers. */
export async function waitUntilUp(proc, port, { timeoutMs = 20_000, urlPath = '/' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let exit;
  proc.exited.then((e) => (exit = e));
  while (!exit && Date.now() < deadline) {
    if (await answers(port, urlPath)) return !exit;
    await sleep(25);
  }
  return false;
}

/**
 * A stop() for a launched server: SIGTERM, SIGKILL after a grace period,
 * then `cleanup`; idempotent. Also kills it when this process exits.
 */
export function stopper(proc, cleanup = () => {}) {
  let stopping;
  const forget = killOnExit({
    killNow() {
      signalGroup(proc.child, 'SIGKILL');
      cleanup();
    },
  });
  // Let the caller's process exit even if it forgets stop(): the exit hook kills the server.
  proc.child.unref();
  proc.child.stdout.unref?.();
  proc.child.stderr.unref?.();
  return () => {
    stopping ??= (async () => {
      signalGroup(proc.child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(proc.child, 'SIGKILL'), STOP_TIMEOUT_MS);
      await proc.exited;
      clearTimeout(timer);
      forget();
      await cleanup();
    })();
    return stopping;
  };
}

/**
 * The command line of an emulator script: `install` (no argument: the same)
 * prints what was installed; `serve [--port N] [--data-dir DIR]` starts one,
 * prints its config as JSON and stops on SIGINT/SIGTERM.
 */
export function serveFromCli(label, argv, install, start) {
  const main = async () => {
    const [cmd = 'install', ...rest] = argv;
    const opt = (name) => {
      const i = rest.indexOf(name);
      return i >= 0 ? rest[i + 1] : undefined;
    };
    if (cmd === 'install') {
      process.stdout.write(`${await install()}\n`);
      return;
    }
    if (cmd !== 'serve') {
      process.stderr.write(`usage: ${label} install | serve [--data-dir DIR] [--port N]\n`);
      process.exitCode = 2;
      return;
    }
    const port = opt('--port');
    const { stop, logs, exited, ...config } = await start({ dataDir: opt('--data-dir'), port: port ? Number(port) : undefined });
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    process.stderr.write(`${label}: serving; Ctrl-C to stop\n`);
    const keepAlive = setInterval(() => {}, 1 << 30);
    const died = await new Promise((resolve) => {
      process.once('SIGINT', () => resolve(false));
      process.once('SIGTERM', () => resolve(false));
      exited.then(() => resolve(true));
    });
    clearInterval(keepAlive);
    if (died) {
      process.stderr.write(`${label}: the server exited on its own:\n${logs()}\n`);
      process.exitCode = 1;
    }
    await stop();
  };
  main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.message : e}\n`);
    process.exit(1);
  });
}

/**
 * Start a server with its own temporary folder (`dataDir` inside it, unless
 * `options.dataDir` names one to keep) on a free loopback port (or
 * `options.port`), trying other ports when one is taken. `argsFor(port,
 * dataDir)` is its command line; resolves once `urlPath` answers with
 * { proc, port, tmp, dataDir }, else throws with the server's output.
 */
export async function startServer({ label, prefix, cmd, argsFor, options = {}, urlPath = '/' }) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const dataDir = options.dataDir ? path.resolve(options.dataDir) : path.join(tmp, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  let last = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = options.port ?? (await freePort());
    const proc = launch(cmd, argsFor(port, dataDir), { cwd: tmp });
    if (await waitUntilUp(proc, port, { urlPath })) return { proc, port, tmp, dataDir };
    signalGroup(proc.child, 'SIGKILL');
    await proc.exited;
    last = proc.log();
    if (!/address already in use|EADDRINUSE/i.test(last) || options.port !== undefined) break;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  throw new Error(`${label}: the server did not start:\n${last.slice(-4000)}`);
}
