// Starting, watching and stopping servers; their memory and CPU from /proc.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';

const CLK_TCK = 100; // USER_HZ: 100 on every Linux this runs on

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** CPU list for taskset, or null when not pinning. */
/** CPU seconds of this process's exited and waited-for children (cutime + cstime, USER_HZ = 100). */
export function childCpuSeconds() {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

/**
 * Runs a load generator to its end and resolves to its exit code, stdout,
 * stderr and the CPU seconds it used (read from this process's children, so
 * only one may run at a time). Killed if it runs past `limitS`. `env`
 * replaces the environment when given.
 */
export function runLoadTool(cmd, args, limitS, { env } = {}) {
  const cpu0 = childCpuSeconds();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const guard = setTimeout(() => p.kill('SIGKILL'), limitS * 1000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, out, err, cpuSeconds: childCpuSeconds() - cpu0 });
    });
  });
}

export function pinned(cpus, cmd, args) {
  return cpus == null ? [cmd, args] : ['taskset', ['-c', String(cpus), cmd, ...args]];
}

/** Pins an already running process (e.g. this one) to `cpus`. */
export function pinSelf(cpus) {
  const r = spawn('taskset', ['-a', '-p', '-c', String(cpus), String(process.pid)], { stdio: 'ignore' });
  return new Promise((resolve) => r.on('exit', (code) => resolve(code === 0)));
}

/**
 * Starts a server in its own process group, its output in `logFile`.
 * Returns { proc, pid, exited: Promise<{code, signal}>, log() }.
 */
export function startServer({ cmd, args, env, cwd, cpus, logFile }) {
  const [c, a] = pinned(cpus, cmd, args);
  const fd = openSync(logFile, 'w');
  const proc = spawn(c, a, { cwd, env, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    proc.once('error', (error) => {
      exitInfo = { code: -1, signal: null, error: String(error) };
      resolve(exitInfo);
    });
  });
  return {
    proc,
    pid: proc.pid,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}

/** Stops a server's whole process group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopServer(server, graceMs = 5000) {
  if (server.exitInfo) return server.exitInfo;
  const kill = (sig) => {
    try {
      process.kill(-server.pid, sig);
    } catch {
      /* already gone */
    }
  };
  kill('SIGTERM');
  const timer = new Promise((resolve) => setTimeout(() => resolve(null), graceMs));
  const done = await Promise.race([server.exited, timer]);
  if (done) {
    kill('SIGKILL'); // stray children of the group (e.g. MLServer's workers)
    return done;
  }
  kill('SIGKILL');
  return server.exited;
}

/** GET `url` once; resolves to the status code, or 0 on a connection error. */
export function getStatus(url, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Polls `url` every `intervalMs` until it answers 200. Resolves to the
 * milliseconds since `t0` (a performance.now() value). Rejects if the server
 * exits first or `timeoutMs` passes.
 */
export async function waitReady(server, url, { t0 = performance.now(), timeoutMs = 120_000, intervalMs = 10 } = {}) {
  for (;;) {
    if (server.exitInfo) {
      const e = new Error(`exited before it was ready (${exitText(server.exitInfo)})`);
      e.exitInfo = server.exitInfo;
      throw e;
    }
    if ((await getStatus(url)) === 200) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`not ready after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const exitText = (info) =>
  info.error ? info.error : info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;

// ---------------------------------------------------------------------------
// /proc sampling

function stat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: split after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): field n is f[n - 3].
    return {
      ppid: Number(f[1]),
      utime: Number(f[11]),
      stime: Number(f[12]),
      cutime: Number(f[13]),
      cstime: Number(f[14]),
    };
  } catch {
    return null;
  }
}

/** `pid` and all its live descendants. */
export function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(name);
    if (!s) continue;
    if (!children.has(s.ppid)) children.set(s.ppid, []);
    children.get(s.ppid).push(Number(name));
  }
  const out = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

function statusKb(pid, key) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) of the tree, including children that have
 * exited and been waited for.
 */
export function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const s = stat(p);
    if (s) ticks += s.utime + s.stime + s.cutime + s.cstime;
  }
  return ticks / CLK_TCK;
}

/** Current resident memory of the tree, MiB. */
export const rssMiB = (pid) => processTree(pid).reduce((sum, p) => sum + statusKb(p, 'VmRSS'), 0) / 1024;

/** Peak resident memory (VmHWM) of the tree, MiB: the sum of each process's peak. */
export const peakRssMiB = (pid) => processTree(pid).reduce((sum, p) => sum + statusKb(p, 'VmHWM'), 0) / 1024;

/** Resets the peak (VmHWM) of every process in the tree to its current RSS. */
export function resetPeak(pid) {
  for (const p of processTree(pid)) {
    try {
      writeFileSync(`/proc/${p}/clear_refs`, '5');
    } catch {
      /* not permitted: the peak then covers the server's whole life */
    }
  }
}
