import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, FsClient, Schema, Server, py } from '../src';
import { post } from './helpers';

const root = join(__dirname, '..');
const venvPython = join(root, '.venv/bin/python');
const python = { venv: join(root, '.venv'), path: [join(__dirname, 'python')] };
const A = new Schema({ a: Schema.f64() });
const Features = new Schema({ f0: Schema.f64(), f1: Schema.f64(), f2: Schema.f64(), f3: Schema.f64() });

/** Whether a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The live worker processes whose parent is `parent`. */
function workersOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== parent || fields[0] === 'Z') continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('redesmyn_runtimes._worker')) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function serve(endpoints: Endpoint<any, any>[], options: { metrics?: boolean } = {}) {
  const server = new Server({ host: '127.0.0.1', port: 0, python, ...options });
  for (const e of endpoints) server.register(e);
  await server.serve();
  return { server, url: `http://127.0.0.1:${server.port}` };
}

/** Runs `n` requests, at most `concurrency` at a time. */
async function many<T>(n: number, concurrency: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await one(i);
      }
    }),
  );
  return out;
}

async function metric(url: string, name: string): Promise<string[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('Python worker processes: a CPU-heavy model', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let X: number[][];
  let expected: number[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redesmyn-workers-'));
    const script = `
import json, sys, joblib, numpy as np
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(7)
X = rng.normal(size=(2000, 4))
y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1).astype(int)
model = RandomForestClassifier(n_estimators=300, random_state=0).fit(X, y)
joblib.dump(model, sys.argv[1] + "/model.joblib")
Q = rng.normal(size=(200, 4))
print(json.dumps({"X": Q.tolist(), "y": model.predict(Q).tolist()}))`;
    ({ X, y: expected } = JSON.parse(execFileSync(venvPython, ['-c', script, dir], { encoding: 'utf8' })));
    ({ server, url } = await serve(
      [
        new Endpoint({
          path: '/forest',
          schema: Features,
          batch: { maxSize: 16 },
          cache: new CacheConfig({ client: new FsClient({ basePath: dir, pathTemplate: 'model.joblib' }), loadModel: py.loader('joblib:load') }),
          handler: py.handler('worker_handlers:forest', { workers: 2 }),
        }),
        new Endpoint({ path: '/region/{region}', schema: A, handler: py.handler('worker_handlers:region', { workers: 1 }) }),
        new Endpoint({ path: '/poison', schema: A, handler: py.handler('worker_handlers:poison', { workers: 2 }) }),
        new Endpoint({ path: '/nap', schema: A, batch: { maxSize: 1 }, handler: py.handler('worker_handlers:nap', { workers: 2 }) }),
      ],
      { metrics: true },
    ));
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('predicts as scikit-learn does under 200 concurrent clients, in two processes', async () => {
    const replies = await Promise.all(
      X.map(([f0, f1, f2, f3]) => post(`${url}/forest`, [{ f0, f1, f2, f3 }])),
    );
    expect(replies.map((r) => r.status)).toEqual(Array(200).fill(200));
    expect(replies.map((r) => r.body.predictions[0].label)).toEqual(expected);
    const pids = new Set(replies.map((r) => r.body.predictions[0].pid));
    expect(pids.size).toBe(2);
    expect(pids.has(process.pid)).toBe(false);
    for (const pid of pids) expect(workersOf(process.pid)).toContain(pid);
    const batches = await metric(url, 'redesmyn_worker_batches_total{endpoint="/forest"');
    expect(batches).toHaveLength(2);
    expect(batches.every((l) => Number(l.split(' ').pop()) > 0)).toBe(true);
  });

  it('runs two batches at once, one per worker (maxConcurrent defaults to the worker count)', async () => {
    const [a, b] = (await Promise.all([post(`${url}/nap`, [{ a: 1 }]), post(`${url}/nap`, [{ a: 2 }])])).map((r) => r.body.predictions[0]);
    expect(a.pid).not.toBe(b.pid);
    // Each batch sleeps 300 ms: they overlapped, so neither waited for the other.
    expect(a.start < b.end && b.start < a.end).toBe(true);
  });

  it('passes path parameters as params and returns several columns', async () => {
    const res = await post(`${url}/region/eu`, [{ a: 1 }, { a: 2.5 }]);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual([
      { region: 'eu', double: 2 },
      { region: 'eu', double: 5 },
    ]);
  });

  it('answers a Python exception as in-process: 500 with the exception, and the worker stays', async () => {
    const res = await post(`${url}/poison`, [{ a: 7 }]);
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('ValueError: seven is not allowed');
    expect(await metric(url, 'redesmyn_worker_restarts_total{endpoint="/poison"')).toEqual([]);
  });

  it('fails only the batch of a worker that segfaults or exits, restarts it, then answers 1 000 requests', async () => {
    const segfault = await post(`${url}/poison`, [{ a: 13 }]);
    expect(segfault.status).toBe(500);
    expect(segfault.body.error).toMatch(/worker exited with signal 11$/);
    const exited = await post(`${url}/poison`, [{ a: 3 }]);
    expect(exited.status).toBe(500);
    expect(exited.body.error).toMatch(/worker exited with code 3$/);
    const replies = await many(1000, 50, (i) => post(`${url}/poison`, [{ a: i % 2 === 0 ? 1 : 2 }]));
    expect(replies.filter((r) => r.status !== 200)).toEqual([]);
    expect(replies.every((r, i) => r.body.predictions[0] === (i % 2 === 0 ? 2 : 4))).toBe(true);
    const restarts = await metric(url, 'redesmyn_worker_restarts_total{endpoint="/poison"');
    expect(restarts.sort()).toEqual([
      'redesmyn_worker_restarts_total{endpoint="/poison",cause="exit"} 1',
      'redesmyn_worker_restarts_total{endpoint="/poison",cause="signal"} 1',
    ]);
    expect(await metric(url, 'redesmyn_workers_alive{endpoint="/poison"}')).toEqual(['redesmyn_workers_alive{endpoint="/poison"} 2']);
  });
});

describe('Python worker processes: limits', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    ({ server, url } = await serve(
      [
        new Endpoint({ path: '/leak', schema: A, handler: py.handler('worker_handlers:leak', { workers: { count: 2, maxRssMiB: 300 } }) }),
        new Endpoint({ path: '/hang', schema: A, handler: py.handler('worker_handlers:hang', { workers: { count: 2, timeoutMs: 1000 } }) }),
      ],
      { metrics: true },
    ));
  });
  afterAll(() => server?.stop());

  it('recycles a leaking worker past maxRssMiB after its batch, answering every request', async () => {
    const replies = await many(30, 2, () => post(`${url}/leak`, [{ a: 1 }]));
    expect(replies.map((r) => r.status)).toEqual(Array(30).fill(200));
    // 30 batches of 40 MiB could not fit two workers under 300 MiB each: some were replaced.
    expect(new Set(replies.map((r) => r.body.predictions[0])).size).toBeGreaterThan(2);
    const [recycled] = await metric(url, 'redesmyn_worker_restarts_total{endpoint="/leak",cause="rss"}');
    expect(Number(recycled.split(' ').pop())).toBeGreaterThan(0);
  });

  it('kills a worker whose batch runs past timeoutMs, while the other answers', async () => {
    const hanging = post(`${url}/hang`, [{ a: -1 }]);
    await new Promise((r) => setTimeout(r, 100));
    const others = await many(20, 1, () => post(`${url}/hang`, [{ a: 1 }]));
    expect(others.map((r) => r.status)).toEqual(Array(20).fill(200));
    const res = await hanging;
    expect(res.status).toBe(500);
    expect(res.body.error).toMatch(/past its time limit of 1000 ms and was killed/);
    const after = await many(20, 4, () => post(`${url}/hang`, [{ a: 1 }]));
    expect(after.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(await metric(url, 'redesmyn_worker_restarts_total{endpoint="/hang",cause="timeout"}')).toEqual([
      'redesmyn_worker_restarts_total{endpoint="/hang",cause="timeout"} 1',
    ]);
  });
});

describe('Python worker processes: lifecycle', () => {
  it('fails register with the Python error when a worker cannot import the module', () => {
    const server = new Server({ host: '127.0.0.1', port: 0, python });
    const bad = new Endpoint({ path: '/bad', schema: A, handler: py.handler('no_such_module_here:f', { workers: 2 }) });
    expect(() => server.register(bad)).toThrow(
      "could not import Python module 'no_such_module_here': ModuleNotFoundError: No module named 'no_such_module_here'",
    );
    expect(workersOf(process.pid)).toEqual([]);
  });

  it('refuses workers for a streaming handler, and keeps one in-process under the server-wide option', async () => {
    const server = new Server({ host: '127.0.0.1', port: 0, python: { ...python, workers: 2 } });
    const own = new Endpoint({ path: '/own', schema: A, stream: true, handler: py.handler('stream_handlers:words', { workers: 2 }) });
    expect(() => server.register(own)).toThrow('a streaming Python handler runs in-process only (no workers)');
    const before = workersOf(process.pid);
    server.register(new Endpoint({ path: '/words', schema: A, stream: true, handler: py.handler('stream_handlers:words') }));
    server.register(new Endpoint({ path: '/here', schema: A, handler: py.handler('worker_handlers:hang', { workers: 0 }) }));
    expect(workersOf(process.pid)).toEqual(before);
    await server.serve();
    const res = await post(`http://127.0.0.1:${server.port}/here`, [{ a: 1 }]);
    expect(res.body.predictions).toEqual([process.pid]);
    await server.stop();
  });

  it('takes the server-wide python.workers, and stop() leaves no worker process', async () => {
    const before = workersOf(process.pid);
    const server = new Server({ host: '127.0.0.1', port: 0, python: { ...python, workers: 2 } });
    server.register(new Endpoint({ path: '/pid', schema: A, handler: py.handler('worker_handlers:hang') }));
    await server.serve();
    const started = workersOf(process.pid).filter((p) => !before.includes(p));
    expect(started).toHaveLength(2);
    const res = await post(`http://127.0.0.1:${server.port}/pid`, [{ a: 1 }]);
    expect(started).toContain(res.body.predictions[0]);
    await server.stop();
    expect(started.filter(alive)).toEqual([]);
  });

  it('leaves no worker process within 2 s when the Node process is SIGKILLed', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/workers-orphans.ts')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line)));
      child.once('exit', () => reject(new Error('the fixture exited before serving')));
    });
    const workers = workersOf(ready.pid);
    expect(workers).toHaveLength(2);
    const res = await post(`http://127.0.0.1:${ready.port}/pid`, [{ a: 1 }]);
    expect(res.status).toBe(200);
    child.kill('SIGKILL');
    const deadline = Date.now() + 2000;
    while (workers.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(workers.filter(alive)).toEqual([]);
  });
});
