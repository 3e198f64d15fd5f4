// Asynchronous jobs over real HTTP: submit, poll, cancel, limits, retention,
// a SIGKILLed server restarted on the same data directory, and online
// requests answered while many jobs wait.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { Endpoint, PredictionError, Schema } from '../src';
import { post, serve } from './helpers';

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'redesmyn-jobs-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const schema = new Schema({ x: Schema.f64() });

function doubling(slowMs = 0, seen?: number[]) {
  return new Endpoint({
    path: '/double/{run}',
    schema,
    batch: { maxSize: 8 },
    handler: async (batch) => {
      if (slowMs) await new Promise((r) => setTimeout(r, slowMs));
      if (seen) seen.push(...batch.columns.x);
      return Array.from(batch.columns.x, (x) => x * 2);
    },
  });
}

async function getJob(url: string, id: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/jobs/${id}`, { headers });
  return { status: res.status, body: (await res.json()) as any };
}

/** Polls until every job has ended; returns their final bodies. */
async function settle(url: string, ids: string[], headers: Record<string, string> = {}): Promise<any[]> {
  const out: any[] = new Array(ids.length);
  let pending = ids.map((_, i) => i);
  while (pending.length) {
    const next: number[] = [];
    for (const i of pending) {
      const { status, body } = await getJob(url, ids[i], headers);
      expect(status).toBe(200);
      if (body.state === 'queued' || body.state === 'running') next.push(i);
      else out[i] = body;
    }
    pending = next;
    if (pending.length) await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

describe('jobs over HTTP', () => {
  it('runs 1000 jobs to completion with correct results and telemetry', async () => {
    const { server, url } = await serve([doubling()], { jobs: { dir: dataDir() } });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const res = await post(`${url}/double/r${i % 3}/jobs`, [{ x: i }], { 'x-request-id': `req-${i}` });
        expect(res.status).toBe(202);
        expect(res.body.state).toBe('queued');
        expect(res.headers.get('location')).toBe(`/jobs/${res.body.id}`);
        ids.push(res.body.id);
      }
      expect(new Set(ids).size).toBe(1000);
      const done = await settle(url, ids);
      done.forEach((job, i) => {
        expect(job.state).toBe('succeeded');
        expect(job.result).toEqual({ id: `req-${i}`, predictions: [2 * i] });
        expect(job.telemetry.request_id).toBe(`req-${i}`);
        expect(job.telemetry.params).toEqual({ run: `r${i % 3}` });
        expect(job.telemetry.batch_size).toBeGreaterThanOrEqual(1);
        expect(typeof job.telemetry.handler_ms).toBe('number');
        expect(Date.parse(job.telemetry.finished_at)).toBeGreaterThanOrEqual(Date.parse(job.telemetry.submitted_at));
      });
    } finally {
      await server.stop();
    }
  });

  it('cancels a queued job, refuses to cancel a finished one, and answers 404/400 for bad ids', async () => {
    const { server, url } = await serve([doubling(50)], { jobs: { dir: dataDir(), maxRunning: 1 } });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await post(`${url}/double/a/jobs`, { x: i })).body.id);
      const last = ids[ids.length - 1];
      const del = await fetch(`${url}/jobs/${last}`, { method: 'DELETE' });
      expect(del.status).toBe(200);
      expect((await getJob(url, last)).body.state).toBe('cancelled');
      const done = await settle(url, ids.slice(0, -1));
      expect(done.every((j) => j.state === 'succeeded')).toBe(true);
      const again = await fetch(`${url}/jobs/${ids[0]}`, { method: 'DELETE' });
      expect(again.status).toBe(409);
      expect((await getJob(url, '6f1c2a3e-0000-4000-8000-000000000000')).status).toBe(404);
      expect((await getJob(url, 'not-a-job')).status).toBe(400);
      expect((await fetch(`${url}/jobs/not-a-job`, { method: 'DELETE' })).status).toBe(400);
      // A bad body is refused at once, not failed later.
      const bad = await post(`${url}/double/a/jobs`, [{ x: 'nope' }]);
      expect(bad.status).toBe(422);
    } finally {
      await server.stop();
    }
  });

  it('limits queued jobs (503), result size, requires the token when set, and deletes old results', async () => {
    const { server, url } = await serve([doubling(100)], {
      jobs: { dir: dataDir(), maxQueued: 3, maxRunning: 1, maxResultBytes: 60, retentionSeconds: 0.5, token: 's3cret' },
    });
    try {
      const auth = { authorization: 'Bearer s3cret' };
      expect((await post(`${url}/double/a/jobs`, { x: 1 })).status).toBe(401);
      const statuses: number[] = [];
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        const res = await post(`${url}/double/a/jobs`, { x: i }, auth);
        statuses.push(res.status);
        if (res.status === 202) ids.push(res.body.id);
      }
      expect(statuses).toContain(503);
      expect(statuses.filter((s) => s === 202).length).toBeLessThan(8);
      await settle(url, ids, auth);
      const big = (await post(`${url}/double/a/jobs`, Array.from({ length: 20 }, (_, i) => ({ x: i })), auth)).body.id;
      while (!['succeeded', 'failed'].includes((await getJob(url, big, auth)).body.state)) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const failed = (await getJob(url, big, auth)).body;
      expect(failed.state).toBe('failed');
      expect(failed.error).toMatch(/over the limit of 60 bytes/);
      expect((await getJob(url, ids[0])).status).toBe(401);
      // Retention: a finished job disappears (404) once its half second has passed.
      let status = 200;
      while (status === 200) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await getJob(url, big, auth)).status;
      }
      expect(status).toBe(404);
    } finally {
      await server.stop();
    }
  });

  it('takes V2 infer bodies at /v2/models/{m}/jobs and answers in the V2 shape', async () => {
    const endpoint = new Endpoint({
      path: '/v2double',
      name: 'v2double',
      schema,
      handler: (batch) => Array.from(batch.columns.x, (x) => x * 2),
    });
    const { server, url } = await serve([endpoint], { jobs: { dir: dataDir() } });
    try {
      const body = { inputs: [{ name: 'x', shape: [2], datatype: 'FP64', data: [1, 2] }] };
      const res = await post(`${url}/v2/models/v2double/jobs`, body);
      expect(res.status).toBe(202);
      const [job] = await settle(url, [res.body.id]);
      expect(job.state).toBe('succeeded');
      expect(job.result.model_name).toBe('v2double');
      expect(job.result.outputs[0].data).toEqual([2, 4]);
      expect((await post(`${url}/v2/models/nope/jobs`, body)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });

  it('keeps answering online requests, and fast, while 10 000 jobs are queued', async () => {
    const seen: number[] = [];
    const { server, url } = await serve([doubling(10, seen)], { jobs: { dir: dataDir(), maxRunning: 8, maxQueued: 20_000 } });
    /** 100 online requests (x < 0), one after another: each answered with its own prediction; their p99 in ms. */
    const online = async (): Promise<number> => {
      const ms: number[] = [];
      for (let i = 1; i <= 100; i++) {
        const t0 = performance.now();
        const res = await post(`${url}/double/a`, { x: -i });
        ms.push(performance.now() - t0);
        expect(res.status).toBe(200);
        expect(res.body.predictions).toEqual([-2 * i]);
      }
      return ms.sort((a, b) => a - b)[98];
    };
    try {
      const quiet = await online();
      const ids: string[] = new Array(10_000);
      let next = 0;
      // 32 submitters at a time.
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          for (let i = next++; i < ids.length; i = next++) {
            const res = await post(`${url}/double/a/jobs`, { x: i });
            expect(res.status).toBe(202);
            ids[i] = res.body.id;
          }
        }),
      );
      const ranBefore = seen.filter((x) => x >= 0).length;
      const busy = await online();
      const ranAfter = seen.filter((x) => x >= 0).length;
      console.log(
        `online p99 ${quiet.toFixed(1)} ms with no jobs, ${busy.toFixed(1)} ms (${(busy / quiet).toFixed(2)}x) with ${10_000 - ranBefore}` +
          ` to ${10_000 - ranAfter} of 10 000 jobs still queued (handler 10 ms per batch of 8, maxRunning 8)`,
      );
      // The online requests were answered while jobs still waited, not after them.
      expect(ranAfter).toBeLessThan(10_000);
      const queued = await Promise.all(ids.slice(-10).map((id) => getJob(url, id)));
      expect(queued.some((j) => j.body.state === 'queued')).toBe(true);
    } finally {
      await server.stop();
    }
  }, 120_000);
});

describe('jobs in process', () => {
  it('schedules, polls and awaits results through the endpoint', async () => {
    const endpoint = doubling(20);
    const { server } = await serve([endpoint], { jobs: { dir: dataDir(), maxRunning: 1 } });
    try {
      const ids = await Promise.all([1, 2, 3].map((x) => endpoint.schedule({ x }, { params: { run: 'z' } })));
      const results = await Promise.all(ids.map((id) => endpoint.result<number>(id)));
      expect(results).toEqual([[2], [4], [6]]);
      const status = await endpoint.poll(ids[0]);
      expect(status.state).toBe('succeeded');
      expect(status.telemetry.params).toEqual({ run: 'z' });
      const queued = await Promise.all([4, 5, 6, 7].map((x) => endpoint.schedule({ x }, { params: { run: 'z' } })));
      await endpoint.cancel(queued[3]);
      await expect(endpoint.result(queued[3])).rejects.toBeInstanceOf(PredictionError);
      await expect(endpoint.schedule({ x: 1 })).rejects.toMatchObject({ status: 422 });
      await expect(endpoint.poll('bad id')).rejects.toMatchObject({ status: 400 });
    } finally {
      await server.stop();
    }
  });
});

describe('jobs across a crash', () => {
  function start(dir: string): Promise<{ child: ChildProcess; url: string }> {
    const root = join(__dirname, '..');
    // `node --import tsx`, not the tsx command: the command runs the server in a child
    // process of its own, which a SIGKILL of the command would leave running.
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/jobs-server.ts')], {
      cwd: root,
      env: { ...process.env, DATA_DIR: dir, SLOW_MS: '20' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.once('line', (line) => resolve({ child, url: `http://127.0.0.1:${JSON.parse(line).port}` }));
      child.once('exit', (code) => reject(new Error(`jobs server exited with ${code}`)));
    });
  }

  it('completes every accepted job once after SIGKILL and a restart on the same data directory', async () => {
    const dir = dataDir();
    let { child, url } = await start(dir);
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const res = await post(`${url}/double/jobs`, { x: i });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    const before = await Promise.all(ids.map((id) => getJob(url, id)));
    expect(before.some((j) => j.body.state === 'queued')).toBe(true);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;

    ({ child, url } = await start(dir));
    try {
      const done = await settle(url, ids);
      done.forEach((job, i) => {
        expect(job.state).toBe('succeeded');
        expect(job.result.predictions).toEqual([2 * i]);
      });
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  });
});

describe('engine state', () => {
  it('counts requests in Triton-shaped stats and lists models with their state', async () => {
    const endpoint = new Endpoint({
      path: '/counted',
      name: 'counted',
      schema,
      batch: { maxSize: 4 },
      handler: (batch) => {
        if (batch.columns.x.some((x) => x < 0)) throw new Error('negative');
        return Array.from(batch.columns.x);
      },
    });
    const { server, url } = await serve([endpoint]);
    try {
      for (let i = 0; i < 5; i++) expect((await post(`${url}/counted`, [{ x: i }, { x: i }])).status).toBe(200);
      expect((await post(`${url}/counted`, { x: -1 })).status).toBe(500);
      expect((await post(`${url}/counted`, [{ x: 'bad' }])).status).toBe(422);
      const stats = (await (await fetch(`${url}/v2/models/counted/stats`)).json()) as any;
      const [s] = stats.model_stats;
      expect(s.name).toBe('counted');
      expect(s.inference_stats.success.count).toBe(5);
      expect(s.inference_stats.fail.count).toBe(2);
      // Sequential requests: one batch each, that reached the handler.
      expect(s.execution_count).toBe(6);
      expect(s.inference_count).toBe(11);
      expect(s.inference_stats.queue.count).toBe(6);
      expect(s.inference_stats.compute_infer.count).toBe(6);
      expect(s.inference_stats.compute_infer.ns).toBeGreaterThan(0);
      expect((await fetch(`${url}/v2/models/nope/stats`)).status).toBe(404);
      const models = (await (await fetch(`${url}/models`)).json()) as any;
      expect(models.models).toContainEqual({ name: 'counted', version: null, endpoint: '/counted', state: 'idle' });
      const meta = (await (await fetch(`${url}/v2/models/counted`)).json()) as any;
      expect(meta.parameters.state).toBe('idle');
    } finally {
      await server.stop();
    }
  });
});
