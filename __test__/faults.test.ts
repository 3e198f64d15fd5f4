// Faults users lose sleep over, made real: a disk that fills while a file
// is scored or job results are written (a small tmpfs, grown again with a
// remount), the jobs database made immutable (chattr +i) or deleted under
// a running server, and a Python worker that hangs holding a batch of
// innocent requests. Mounting and chattr need root, as CI runs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py } from '../src';
import { post, serve, until, type Reply } from './helpers';

const root = join(__dirname, '..');
const X = new Schema({ x: Schema.f64() });

const mounts: string[] = [];
const dirs: string[] = [];

/** A tmpfs of `size` (mount's syntax: 512k, 2m) at a new folder. */
function tmpfs(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'redesmyn-fault-'));
  dirs.push(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

function remount(dir: string, options: string): void {
  execFileSync('mount', ['-o', `remount,${options}`, dir]);
}


afterAll(() => {
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const doubling = () =>
  new Endpoint({ path: '/double', schema: X, batch: { maxSize: 64 }, handler: ({ columns }) => columns.x.map((x) => x * 2) });

async function getJob(url: string, id: string) {
  const res = await fetch(`${url}/jobs/${id}`);
  return { status: res.status, body: (await res.json()) as any };
}

describe('a disk that fills', () => {
  it('fails a scoring run with the disk named, leaves no output behind, and the server serves on', async () => {
    const full = tmpfs('256k');
    const input = join(mkdtempSync(join(tmpdir(), 'redesmyn-fault-in-')), 'in.csv');
    dirs.push(join(input, '..'));
    writeFileSync(input, ['x', ...Array.from({ length: 100_000 }, (_, i) => String(i))].join('\n') + '\n');
    const endpoint = doubling();
    const { server, url } = await serve([endpoint]);
    try {
      const output = join(full, 'out.csv');
      const error = await endpoint.score({ input, output, batchSize: 1000 }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error, 'the run must fail: 100 000 rows do not fit 256 KiB').toBeInstanceOf(Error);
      expect(error!.message).toMatch(/No space left on device/);
      expect(error!.message).toContain(join(full, 'out.csv'));
      // Neither the output nor its temporary file is left.
      expect(readdirSync(full)).toEqual([]);
      const after = await post(`${url}/double`, [{ x: 21 }]);
      expect(after.status).toBe(200);
      expect(after.body.predictions).toEqual([42]);
    } finally {
      await server.stop();
    }
  });

  it('refuses new jobs with a 503 naming the store, finishes every accepted job once space returns, and answers online requests meanwhile', async () => {
    const dir = tmpfs('1m');
    const { server, url } = await serve([doubling()], { jobs: { dir } });
    try {
      const accepted: { id: string; x: number }[] = [];
      let refused: Reply | undefined;
      // Big bodies fill the store quickly; each result is small.
      const pad = 'p'.repeat(2000);
      for (let i = 0; i < 5000 && !refused; i++) {
        const res = await post(`${url}/double/jobs`, `[{"x": ${i}, "pad": "${pad}"}]`);
        if (res.status === 202) accepted.push({ id: res.body.id, x: i });
        else refused = res;
      }
      expect(refused, 'the store must fill within 5000 jobs of 2 KB').toBeDefined();
      expect(refused!.status).toBe(503);
      expect(refused!.body.error).toMatch(/job store/i);
      expect(refused!.body.error).toMatch(/full/i);
      expect(accepted.length).toBeGreaterThan(10);
      const online = await post(`${url}/double`, [{ x: 4 }]);
      expect(online.status).toBe(200);
      expect(online.body.predictions).toEqual([8]);
      // Space comes back: every accepted job ends, succeeded, with its own answer.
      remount(dir, 'size=64m');
      await until(async () => {
        const states = await Promise.all(accepted.map((j) => getJob(url, j.id)));
        return states.every((s) => s.body.state === 'succeeded');
      }, 30_000, 100);
      for (const j of accepted) {
        const { body } = await getJob(url, j.id);
        expect(body.result.predictions).toEqual([2 * j.x]);
      }
      const more = await post(`${url}/double/jobs`, [{ x: 1 }]);
      expect(more.status).toBe(202);
    } finally {
      await server.stop();
    }
  });
});

describe('the jobs database under a running server', () => {
  const db = (dir: string) => ['jobs.sqlite3', 'jobs.sqlite3-wal'].map((f) => join(dir, f));

  it('made read-only (immutable): submissions get a 503, jobs are still read, online requests served, and it recovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redesmyn-fault-ro-'));
    dirs.push(dir);
    const { server, url } = await serve([doubling()], { jobs: { dir } });
    try {
      const first = await post(`${url}/double/jobs`, [{ x: 1 }]);
      expect(first.status).toBe(202);
      await until(async () => (await getJob(url, first.body.id)).body.state === 'succeeded');
      // Immutable even for root: every write to the file fails.
      execFileSync('chattr', ['+i', ...db(dir)]);
      try {
        const refused = await post(`${url}/double/jobs`, [{ x: 2 }]);
        expect(refused.status).toBe(503);
        expect(refused.body.error).toMatch(/^the job store failed: /);
        const read = await getJob(url, first.body.id);
        expect(read.status).toBe(200);
        expect(read.body.result.predictions).toEqual([2]);
        const online = await post(`${url}/double`, [{ x: 5 }]);
        expect(online.status).toBe(200);
        expect(online.body.predictions).toEqual([10]);
      } finally {
        execFileSync('chattr', ['-i', ...db(dir)]);
      }
      const again = await post(`${url}/double/jobs`, [{ x: 3 }]);
      expect(again.status).toBe(202);
      await until(async () => (await getJob(url, again.body.id)).body.state === 'succeeded');
      expect((await getJob(url, again.body.id)).body.result.predictions).toEqual([6]);
    } finally {
      await server.stop();
    }
  });

  it('deleted: the server writes it back, and after a restart no accepted job is lost or run twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redesmyn-fault-rm-'));
    dirs.push(dir);
    const seen: number[] = [];
    const slow = () =>
      new Endpoint({
        path: '/double',
        schema: X,
        batch: { maxSize: 4 },
        handler: async ({ columns }) => {
          await new Promise((r) => setTimeout(r, 20));
          seen.push(...columns.x);
          return columns.x.map((x) => x * 2);
        },
      });
    let { server, url } = await serve([slow()], { jobs: { dir, maxRunning: 4 } });
    const ids: string[] = [];
    try {
      for (let i = 0; i < 40; i++) ids.push((await post(`${url}/double/jobs`, [{ x: i }])).body.id);
      for (const f of ['jobs.sqlite3', 'jobs.sqlite3-wal', 'jobs.sqlite3-shm']) rmSync(join(dir, f), { force: true });
      for (let i = 40; i < 80; i++) {
        const res = await post(`${url}/double/jobs`, [{ x: i }]);
        expect(res.status).toBe(202);
        ids.push(res.body.id);
      }
      expect(readdirSync(dir)).toContain('jobs.sqlite3');
    } finally {
      await server.stop();
    }
    ({ server, url } = await serve([slow()], { jobs: { dir } }));
    try {
      await until(async () => {
        const states = await Promise.all(ids.map((id) => getJob(url, id)));
        return states.every((s) => s.status === 200 && s.body.state === 'succeeded');
      }, 30_000, 100);
      for (const [i, id] of ids.entries()) expect((await getJob(url, id)).body.result.predictions).toEqual([2 * i]);
      expect(seen.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    } finally {
      await server.stop();
    }
  });
});

describe('a Python worker that hangs holding a batch', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = new Server({ host: '127.0.0.1', port: 0, python: { venv: join(root, '.venv'), path: [join(__dirname, 'python')] }, metrics: true });
    server.register(
      new Endpoint({
        path: '/hang',
        schema: new Schema({ a: Schema.f64() }),
        // Waits for company, so the hanging request shares its batch.
        batch: { maxDelayMs: 50, maxSize: 64 },
        handler: py.handler('worker_handlers:hang', { workers: { count: 2, timeoutMs: 1000 } }),
      }),
    );
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server?.stop());

  it('times the batch out, replaces the worker, and answers every innocent request of the batch', async () => {
    const values = Array.from({ length: 16 }, (_, i) => (i === 5 ? -1 : i + 1));
    const replies = await Promise.all(values.map((a) => post(`${url}/hang`, [{ a }])));
    values.forEach((a, i) => {
      if (a === -1) {
        expect(replies[i].status).toBe(500);
        expect(replies[i].body.error).toMatch(/past its time limit of 1000 ms and was killed/);
      } else {
        expect(replies[i].status, `request ${a}`).toBe(200);
      }
    });
    const text = await (await fetch(`${url}/metrics`)).text();
    const restarts = text.split('\n').find((l) => l.startsWith('redesmyn_worker_restarts_total{endpoint="/hang",cause="timeout"}'));
    expect(Number(restarts?.split(' ').pop())).toBeGreaterThanOrEqual(1);
    const after = await Promise.all(Array.from({ length: 8 }, (_, i) => post(`${url}/hang`, [{ a: i + 1 }])));
    expect(after.map((r) => r.status)).toEqual(Array(8).fill(200));
  });
});
