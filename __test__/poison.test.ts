// Poison isolation: a request that makes its batch fail fails alone. Real
// servers over HTTP; the handlers fail for one value (a TypeScript throw, a
// Python exception, a Python worker that segfaults or exits), and many
// concurrent one-row requests share batches with it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py } from '../src';
import { post, type Reply } from './helpers';

const root = join(__dirname, '..');
const python = { venv: join(root, '.venv'), path: [join(__dirname, 'python')] };
const A = new Schema({ a: Schema.f64() });
// Waits for company, so concurrent requests share batches.
const batch = { maxDelayMs: 20, maxSize: 64 };

const ts = new Endpoint({
  path: '/ts',
  schema: A,
  batch,
  handler: ({ columns }) => {
    if (columns.a.includes(666)) throw new Error('six six six');
    return columns.a.map((a) => a * 2);
  },
});
const tsWhole = new Endpoint({
  path: '/ts-whole',
  schema: A,
  batch: { ...batch, isolatePoison: false },
  handler: ({ columns }) => {
    if (columns.a.includes(666)) throw new Error('six six six');
    return columns.a.map((a) => a * 2);
  },
});
const pyInProcess = new Endpoint({ path: '/py', schema: A, batch, handler: py.handler('worker_handlers:poison', { workers: 0 }) });
const pyWorkers = new Endpoint({ path: '/py-workers', schema: A, batch, handler: py.handler('worker_handlers:poison', { workers: 2 }) });

let server: Server;
let url: string;

beforeAll(async () => {
  server = new Server({ host: '127.0.0.1', port: 0, python });
  server.register(ts).register(tsWhole).register(pyInProcess).register(pyWorkers);
  await server.serve();
  url = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server?.stop();
});

/** One one-row request per value, all at once. */
async function together(path: string, values: number[]): Promise<Reply[]> {
  return Promise.all(values.map((a) => post(`${url}${path}`, [{ a }])));
}

async function metric(name: string, endpoint: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{endpoint="${endpoint}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** Checks that every innocent value got `2a` and every guilty one a 500 with `message`. */
function expectOnlyGuiltyFail(values: number[], replies: Reply[], guilty: Record<number, RegExp>) {
  values.forEach((a, i) => {
    const reply = replies[i];
    if (guilty[a]) {
      expect(reply.status, `a=${a}`).toBe(500);
      expect(reply.body.error).toMatch(guilty[a]);
    } else {
      expect(reply.status, `a=${a}: ${JSON.stringify(reply.body)}`).toBe(200);
      expect(reply.body.predictions).toEqual([2 * a]);
    }
  });
}

describe('a request that fails its batch fails alone', () => {
  it('with a TypeScript handler that throws: the others of its batch are answered, the poison counted', async () => {
    const values = Array.from({ length: 40 }, (_, i) => (i === 7 || i === 23 || i === 31 ? 666 : i));
    const replies = await together('/ts', values);
    expectOnlyGuiltyFail(values, replies, { 666: /^Error: six six six$/ });
    expect(await metric('redesmyn_poison_requests_total', '/ts')).toBe(3);
    expect(await metric('redesmyn_isolation_calls_total', '/ts')).toBeGreaterThan(0);
  });

  it('with a Python handler that raises in-process', async () => {
    // In-process: only the raising value (13 would segfault, 3 exit, this very process).
    const values = Array.from({ length: 30 }, (_, i) => (i % 13 === 5 ? 7 : 100 + i));
    const replies = await together('/py', values);
    expectOnlyGuiltyFail(values, replies, { 7: /seven is not allowed/ });
  });

  it('with Python workers that segfault or exit on a record: the innocent are answered', async () => {
    const values = Array.from({ length: 40 }, (_, i) => (i === 4 ? 13 : i === 29 ? 3 : 100 + i));
    const replies = await together('/py-workers', values);
    expectOnlyGuiltyFail(values, replies, { 13: /signal 11/, 3: /exit|code 3/ });
  });

  it('fails the whole batch when isolatePoison is false', async () => {
    const values = Array.from({ length: 20 }, (_, i) => (i === 10 ? 666 : i));
    const replies = await together('/ts-whole', values);
    // Requests batched with the poison fail with it (at least one innocent did share its batch).
    const innocentFailed = replies.filter((r, i) => values[i] !== 666 && r.status === 500);
    expect(innocentFailed.length).toBeGreaterThan(0);
    expect(await metric('redesmyn_poison_requests_total', '/ts-whole')).toBe(0);
  });
});
