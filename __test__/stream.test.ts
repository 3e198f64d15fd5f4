// Streaming endpoints over real HTTP: Server-Sent Events read by raw fetch
// and by httpx-sse (a real SSE client, from the venv scripts/v2-clients.mjs
// makes), batching while streaming, clients that leave or never read,
// handlers that throw, stop() with open streams, and predictStream().
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, PredictionError, Schema, Server } from '../src';
import { ensureClients } from '../scripts/v2-clients.mjs';
import { serve } from './helpers';

const run = promisify(execFile);
const Prompt = new Schema({ prompt: Schema.str() });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Batch sizes the word handler was called with, and when it yielded each step. */
const batches: number[] = [];
const yieldedAt: number[] = [];
/** Generators of the `/endless` endpoint that were closed (their `finally` ran). */
let endlessClosed = 0;
let endlessPulls = 0;
let bigPulls = 0;

/** Splits each row's prompt into words and yields them one step at a time, ending each row after its last word. */
async function* words(batch: { length: number; columns: { prompt: string[] } }, delayMs: number) {
  batches.push(batch.length);
  const rows = batch.columns.prompt.map((p) => p.split(/\s+/).filter(Boolean));
  const longest = Math.max(0, ...rows.map((r) => r.length));
  for (let step = 0; step < longest; step++) {
    await sleep(delayMs);
    yieldedAt.push(Date.now());
    yield {
      chunks: rows.map((r) => r[step] ?? null),
      done: rows.flatMap((r, i) => (r.length === step + 1 ? [i] : [])),
    };
  }
}

const wordsEndpoint = new Endpoint({
  path: '/words',
  name: 'words',
  schema: Prompt,
  stream: true,
  batch: { maxSize: 8, maxDelayMs: 150 },
  handler: (batch) => words(batch, 60),
});

const endless = new Endpoint({
  path: '/endless',
  schema: Prompt,
  stream: true,
  async *handler(batch) {
    try {
      for (let i = 0; ; i++) {
        endlessPulls++;
        await sleep(20);
        yield Array.from({ length: batch.length }, () => `tick ${i}`);
      }
    } finally {
      endlessClosed++;
    }
  },
});

const failing = new Endpoint({
  path: '/failing',
  schema: Prompt,
  stream: true,
  async *handler(batch) {
    yield Array.from({ length: batch.length }, () => 'one');
    await sleep(30);
    yield Array.from({ length: batch.length }, () => 'two');
    throw new Error('the model broke');
  },
});

const big = new Endpoint({
  path: '/big',
  schema: Prompt,
  stream: true,
  async *handler(batch) {
    const chunk = 'x'.repeat(64 * 1024);
    for (;;) {
      bigPulls++;
      yield Array.from({ length: batch.length }, () => chunk);
    }
  },
});

let server: Server;
let url: string;
let sse: string;
let triton: string;

beforeAll(async () => {
  ({ sse, triton } = ensureClients());
  ({ server, url } = await serve([wordsEndpoint, endless, failing, big], { grpcPort: 0 }));
});

afterAll(async () => {
  await server?.stop();
});

interface Received {
  data: unknown;
  at: number;
}

/** POSTs and reads Server-Sent Events with fetch, noting when each arrived. */
async function readEvents(path: string, body: unknown, options: { stopAfter?: number; base?: string } = {}) {
  const controller = new AbortController();
  const res = await fetch(`${options.base ?? url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const events: Received[] = [];
  if (!res.body || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
    return { res, events, json: await res.json() };
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        expect(frame.startsWith('data: ')).toBe(true);
        events.push({ data: JSON.parse(frame.slice(6)), at: Date.now() });
      }
      if (options.stopAfter !== undefined && events.length >= options.stopAfter) {
        controller.abort();
        break;
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  }
  return { res, events, json: undefined };
}

describe('Server-Sent Events', () => {
  it('streams each word as its own event, spaced in time, then the row end', async () => {
    const { res, events } = await readEvents('/words', { prompt: 'the quick brown fox' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(events.map((e) => e.data)).toEqual([
      { row: 0, prediction: 'the' },
      { row: 0, prediction: 'quick' },
      { row: 0, prediction: 'brown' },
      { row: 0, prediction: 'fox' },
      { row: 0, done: true },
    ]);
    // The first word arrived before the handler had yielded the last one.
    expect(events[0].at).toBeLessThan(yieldedAt[yieldedAt.length - 1]);
  });

  it('is read by a real SSE client (httpx-sse), chunks arriving as they are made', async () => {
    const script = join(__dirname, 'v2-clients', 'sse_stream.py');
    const { stdout } = await run(sse, [script, `${url}/words`, JSON.stringify({ prompt: 'one two three' })], { timeout: 60_000 });
    const out = JSON.parse(stdout) as { content_type: string; events: { data: unknown; t: number }[] };
    expect(out.content_type).toBe('text/event-stream; charset=utf-8');
    expect(out.events.map((e) => e.data)).toEqual([
      { row: 0, prediction: 'one' },
      { row: 0, prediction: 'two' },
      { row: 0, prediction: 'three' },
      { row: 0, done: true },
    ]);
    // Three steps 60 ms apart: the client saw them apart, not all at the end.
    expect(out.events[2].t - out.events[0].t).toBeGreaterThan(0.05);
  });

  it('serves 8 concurrent prompts in one handler call, each client getting only its own words in order', async () => {
    batches.length = 0;
    const prompts = Array.from({ length: 8 }, (_, i) => Array.from({ length: i + 1 }, (_, w) => `c${i}w${w}`).join(' '));
    const results = await Promise.all(prompts.map((prompt) => readEvents('/words', { prompt })));
    expect(batches).toEqual([8]);
    results.forEach(({ events }, i) => {
      const chunks = events.filter((e) => 'prediction' in (e.data as object)).map((e) => (e.data as { prediction: string }).prediction);
      expect(chunks.join(' ')).toBe(prompts[i]);
      expect(events[events.length - 1].data).toEqual({ row: 0, done: true });
    });
    // Rows of different lengths finished at different times.
    const ends = results.map(({ events }) => events[events.length - 1].at);
    expect(ends[7] - ends[0]).toBeGreaterThan(200);
  });

  it('gives each row of a multi-record request its own chunks and end', async () => {
    const { events } = await readEvents('/words', [{ prompt: 'a b' }, { prompt: 'c' }]);
    expect(events.map((e) => e.data)).toEqual([
      { row: 0, prediction: 'a' },
      { row: 1, prediction: 'c' },
      { row: 1, done: true },
      { row: 0, prediction: 'b' },
      { row: 0, done: true },
    ]);
  });

  it('answers errors before the first chunk as ordinary JSON', async () => {
    const { res, json } = await readEvents('/words', { prompt: 3 });
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect((json as { error: string }).error).toMatch(/prompt/);
  });

  it('sends the chunks made before a throw, then an error event, and keeps serving', async () => {
    const { events } = await readEvents('/failing', { prompt: 'x' });
    expect(events.map((e) => e.data)).toEqual([
      { row: 0, prediction: 'one' },
      { row: 0, prediction: 'two' },
      { error: 'Error: the model broke' },
    ]);
    const again = await readEvents('/words', { prompt: 'still here' });
    expect(again.events.map((e) => e.data)).toContainEqual({ row: 0, done: true });
  });
});

describe('V2 generate', () => {
  const sseClient = (path: string, body: unknown) =>
    run(sse, [join(__dirname, 'v2-clients', 'sse_stream.py'), `${url}${path}`, JSON.stringify(body)], { timeout: 60_000 }).then(
      ({ stdout }) => JSON.parse(stdout) as { status: number; content_type: string; events: { data: unknown; t: number }[] },
    );

  it('generate_stream answers a text_input body with text_output events, as Triton does', async () => {
    const out = await sseClient('/v2/models/words/generate_stream', { text_input: 'v2 text stream', parameters: {} });
    expect(out.content_type).toBe('text/event-stream; charset=utf-8');
    expect(out.events.map((e) => e.data)).toEqual(
      ['v2', 'text', 'stream'].map((w) => ({ model_name: 'words', model_version: '', text_output: w })),
    );
    expect(out.events[2].t - out.events[0].t).toBeGreaterThan(0.05);
  });

  it('generate_stream answers a V2 tensor body with one InferenceResponse per chunk, as MLServer does', async () => {
    const out = await sseClient('/v2/models/words/generate_stream', {
      id: 'req-1',
      inputs: [{ name: 'prompt', datatype: 'BYTES', shape: [1], data: ['tensor words'] }],
    });
    expect(out.events.map((e) => e.data)).toEqual(
      ['tensor', 'words'].map((w) => ({
        model_name: 'words',
        id: 'req-1',
        outputs: [{ name: 'output-0', datatype: 'BYTES', shape: [1], data: [w] }],
      })),
    );
  });

  it('generate answers once with every chunk, in the shape sent', async () => {
    const text = await fetch(`${url}/v2/models/words/generate`, { method: 'POST', body: JSON.stringify({ text_input: 'a b c' }) });
    expect(await text.json()).toEqual({ model_name: 'words', model_version: '', text_output: 'abc' });
    const tensors = await fetch(`${url}/v2/models/words/generate`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'prompt', datatype: 'BYTES', shape: [1], data: ['x y'] }] }),
    });
    expect(((await tensors.json()) as { outputs: unknown[] }).outputs).toEqual([
      { name: 'output-0', datatype: 'BYTES', shape: [2], data: ['x', 'y'] },
    ]);
  });

  it('answers errors before the first chunk as V2 JSON errors, and errors after it in-band', async () => {
    const missing = await fetch(`${url}/v2/models/nope/generate_stream`, { method: 'POST', body: '{"text_input": "x"}' });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toMatch(/nope/);
    // The generate specification's code for input that does not validate.
    const bad = await fetch(`${url}/v2/models/words/generate_stream`, { method: 'POST', body: '{"prompt": "x"}' });
    expect(bad.status).toBe(422);
    const failed = await sseClient('/v2/models/failing/generate_stream', { text_input: 'x' });
    expect(failed.events.map((e) => e.data)).toEqual([
      { model_name: 'failing', model_version: '', text_output: 'one' },
      { model_name: 'failing', model_version: '', text_output: 'two' },
      { error: 'Error: the model broke' },
    ]);
  });
});

describe('gRPC ModelStreamInfer', () => {
  it("streams several requests on one tritonclient stream, each by its id, with errors in-band", async () => {
    const script = join(__dirname, 'v2-clients', 'triton_stream.py');
    const prompts = ['alpha beta gamma', 'one two', 'solo'];
    const { stdout } = await run(triton, [script, `127.0.0.1:${server.grpcPort}`, 'words', 'failing', ...prompts], {
      timeout: 60_000,
    });
    const out = JSON.parse(stdout) as {
      responses: Record<string, { chunks: string[]; final: boolean }>;
      errors: string[];
      order: string[];
    };
    prompts.forEach((prompt, i) => {
      expect(out.responses[`p${i}`]).toEqual({ chunks: prompt.split(' '), final: true });
    });
    expect(out.errors).toEqual(['Error: the model broke']);
    // The requests ran together: their responses interleave on the stream.
    expect(out.order.indexOf('p1')).toBeLessThan(out.order.lastIndexOf('p0'));
  });
});

describe('cancellation and flow control', () => {
  it("closes the generator (its finally runs) when its only client leaves after the first chunk", async () => {
    const before = endlessClosed;
    const { events } = await readEvents('/endless', { prompt: 'x' }, { stopAfter: 1 });
    expect(events).toHaveLength(1);
    await expect.poll(() => endlessClosed, { timeout: 5_000 }).toBe(before + 1);
    const pulls = endlessPulls;
    await sleep(200);
    expect(endlessPulls).toBe(pulls);
  });

  it('keeps streaming to the other rows of a batch when one client leaves', async () => {
    const leaving = readEvents('/words', { prompt: 'a b c d e f' }, { stopAfter: 1 });
    const staying = readEvents('/words', { prompt: 'one two three four five six' });
    const [left, stayed] = await Promise.all([leaving, staying]);
    expect(left.events).toHaveLength(1);
    const words = stayed.events.filter((e) => 'prediction' in (e.data as object)).map((e) => (e.data as { prediction: string }).prediction);
    expect(words).toEqual(['one', 'two', 'three', 'four', 'five', 'six']);
  });

  it('does not pull the generator for a client that never reads: memory stays bounded, others are served', async () => {
    const socket = connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.pause(); // never read
    const body = JSON.stringify({ prompt: 'x' });
    socket.write(`POST /big HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    await expect.poll(() => bigPulls, { timeout: 5_000 }).toBeGreaterThan(0);
    // Let the socket buffers and the stream's buffer fill: pulls stop growing
    // (on a loaded machine this takes longer; a server that never pauses
    // never gets there).
    let settled = false;
    for (let i = 0, last = -1; i < 60 && !settled; i++) {
      settled = bigPulls === last;
      last = bigPulls;
      await sleep(250);
    }
    expect(settled).toBe(true);
    const rss: number[] = [];
    const pulls: number[] = [];
    for (let i = 0; i < 10; i++) {
      rss.push(process.memoryUsage().rss);
      pulls.push(bigPulls);
      await sleep(100);
    }
    // Paused: no step pulled while the client reads nothing, and no growth
    // beyond noise (64 KiB per step would add 64 MiB in 1 000 steps).
    expect(pulls[pulls.length - 1]).toBe(pulls[0]);
    expect(Math.max(...rss) - rss[0]).toBeLessThan(32 * 1024 * 1024);
    // Everything buffered for it fits in socket buffers and 16 steps.
    expect(bigPulls * 64 * 1024).toBeLessThan(64 * 1024 * 1024);
    const other = await readEvents('/words', { prompt: 'unaffected' });
    expect(other.events.map((e) => e.data)).toContainEqual({ row: 0, prediction: 'unaffected' });
    socket.destroy();
  });
});

describe('metrics', () => {
  it('count open streams, time to the first chunk and chunks per stream', async () => {
    await readEvents('/words', { prompt: 'counted words' });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/redesmyn_streams_open\{endpoint="\/words"\} 0/);
    expect(text).toMatch(/redesmyn_stream_first_chunk_seconds_count\{endpoint="\/words"\} [1-9]/);
    expect(text).toMatch(/redesmyn_stream_chunks_sum\{endpoint="\/words"\} [1-9]/);
    expect(text).toMatch(/redesmyn_requests_total\{endpoint="\/words",status="200"\} [1-9]/);
  });
});

describe('in process', () => {
  it('predictStream yields the chunks and row ends as they come', async () => {
    const seen: unknown[] = [];
    for await (const event of wordsEndpoint.predictStream({ prompt: 'in process' })) seen.push(event);
    expect(seen).toEqual([
      { row: 0, prediction: 'in' },
      { row: 0, prediction: 'process' },
      { row: 0, done: true },
    ]);
  });

  it('predictStream throws PredictionError for bad input and for a failure mid-stream', async () => {
    await expect(async () => {
      for await (const _ of wordsEndpoint.predictStream({ prompt: 1 } as never)) void _;
    }).rejects.toMatchObject({ status: 422 });
    const seen: unknown[] = [];
    const failure = await (async () => {
      try {
        for await (const event of failing.predictStream({ prompt: 'x' })) seen.push(event);
      } catch (error) {
        return error;
      }
    })();
    expect(failure).toBeInstanceOf(PredictionError);
    expect((failure as PredictionError).status).toBe(500);
    expect(seen).toHaveLength(2);
  });

  it('leaving a predictStream loop early closes the generator', async () => {
    const before = endlessClosed;
    for await (const _ of endless.predictStream({ prompt: 'x' })) break;
    await expect.poll(() => endlessClosed, { timeout: 5_000 }).toBe(before + 1);
  });
});

describe('stop()', () => {
  it('ends open streams with a final error event and resolves', async () => {
    let closed = 0;
    const slow = new Endpoint({
      path: '/slow',
      schema: Prompt,
      stream: true,
      async *handler() {
        try {
          for (;;) {
            await sleep(20);
            yield ['tick'];
          }
        } finally {
          closed++;
        }
      },
    });
    // Open streams get half the stop timeout to finish before they are ended.
    const own = await serve([slow], { shutdownTimeoutMs: 600 });
    const reading = readEvents('/slow', { prompt: 'x' }, { base: own.url });
    await sleep(300);
    await own.server.stop();
    const { events } = await reading;
    expect(events.length).toBeGreaterThan(1);
    expect(events[events.length - 1].data).toEqual({ error: 'the server is shutting down' });
    await expect.poll(() => closed, { timeout: 5_000 }).toBe(1);
  });

  it('lets a stream that is open when it is called finish, within half the stop timeout', async () => {
    const short = new Endpoint({
      path: '/short',
      schema: Prompt,
      stream: true,
      async *handler() {
        for (let i = 0; i < 8; i++) {
          await sleep(100);
          yield [`t${i}`];
        }
      },
    });
    const own = await serve([short], { shutdownTimeoutMs: 10_000 });
    const reading = readEvents('/short', { prompt: 'x' }, { base: own.url });
    await sleep(250);
    const t0 = Date.now();
    await own.server.stop();
    const { events } = await reading;
    expect(events.map((e) => e.data)).toEqual([
      ...Array.from({ length: 8 }, (_, i) => ({ row: 0, prediction: `t${i}` })),
      { row: 0, done: true },
    ]);
    // It waited for the stream (about 0.55 s more), not for the whole 5 s.
    expect(Date.now() - t0).toBeLessThan(4_000);
  });
});
