// Python streaming handlers (generators and async generators) through the
// bridge, over Server-Sent Events: batching, early row ends, a client that
// leaves (the generator's `finally` runs), and a handler that raises.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py } from '../src';
import { serve } from './helpers';
import { ensureClients } from '../scripts/v2-clients.mjs';

const root = join(__dirname, '..');
const Prompt = new Schema({ prompt: Schema.str() });
const log = join(mkdtempSync(join(tmpdir(), 'redesmyn-stream-')), 'python.log');
process.env.REDESMYN_STREAM_LOG = log;
const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);

let server: Server;
let url: string;

const stream = (path: string, handler: string, batch = {}) =>
  new Endpoint({ path, schema: Prompt, stream: true, batch, handler: py.handler(`stream_handlers:${handler}`) });

beforeAll(async () => {
  ({ server, url } = await serve(
    [
      stream('/words', 'words', { maxSize: 8, maxDelayMs: 150 }),
      stream('/words-async', 'words_async'),
      stream('/endless', 'endless'),
      stream('/endless-async', 'endless_async'),
      stream('/failing', 'failing'),
    ],
    { grpcPort: 0, python: { venv: join(root, '.venv'), path: [join(__dirname, 'python')] } },
  ));
});

afterAll(async () => {
  await server?.stop();
});

/** POSTs and reads the SSE frames with fetch; aborts after `stopAfter` events. */
async function events(path: string, body: unknown, stopAfter?: number) {
  const controller = new AbortController();
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const out: unknown[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        out.push(JSON.parse(buffer.slice(6, end)));
        buffer = buffer.slice(end + 2);
      }
      if (stopAfter !== undefined && out.length >= stopAfter) {
        controller.abort();
        break;
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  }
  return out;
}

const words = (out: unknown[]) =>
  out.filter((e) => 'prediction' in (e as object)).map((e) => (e as { prediction: string }).prediction);

describe('Python streaming handlers', () => {
  it('serve 8 concurrent prompts from one generator call, each client getting its own words', async () => {
    const prompts = Array.from({ length: 8 }, (_, i) => Array.from({ length: i + 1 }, (_, w) => `p${i}w${w}`).join(' '));
    const before = lines().filter((l) => l.startsWith('batch')).length;
    const results = await Promise.all(prompts.map((prompt) => events('/words', { prompt })));
    results.forEach((out, i) => {
      expect(words(out).join(' ')).toBe(prompts[i]);
      expect(out[out.length - 1]).toEqual({ row: 0, done: true });
    });
    expect(lines().filter((l) => l.startsWith('batch')).slice(before)).toEqual(['batch 8']);
  });

  it('stream from an async generator', async () => {
    const out = await events('/words-async', { prompt: 'async words here' });
    expect(out).toEqual([
      { row: 0, prediction: 'async' },
      { row: 0, prediction: 'words' },
      { row: 0, prediction: 'here' },
      { row: 0, done: true },
    ]);
  });

  it("close the generator (its finally runs) when the client leaves after the first chunk", async () => {
    expect(await events('/endless', { prompt: 'x' }, 1)).toHaveLength(1);
    await expect.poll(() => lines().includes('endless closed'), { timeout: 5_000 }).toBe(true);
    expect(await events('/endless-async', { prompt: 'x' }, 1)).toHaveLength(1);
    await expect.poll(() => lines().includes('endless_async closed'), { timeout: 5_000 }).toBe(true);
  });

  it('stream over V2 generate_stream in both body shapes', async () => {
    expect(await events('/v2/models/words/generate_stream', { text_input: 'py gen' })).toEqual([
      { model_name: 'words', model_version: '', text_output: 'py' },
      { model_name: 'words', model_version: '', text_output: 'gen' },
    ]);
    const tensors = await events('/v2/models/words/generate_stream', {
      inputs: [{ name: 'prompt', datatype: 'BYTES', shape: [1], data: ['py tensors'] }],
    });
    expect(tensors.map((e) => (e as { outputs: { data: string[] }[] }).outputs[0].data)).toEqual([['py'], ['tensors']]);
  });

  it('stream over gRPC ModelStreamInfer to tritonclient, several requests on one stream', async () => {
    const { triton } = ensureClients();
    const script = join(__dirname, 'v2-clients', 'triton_stream.py');
    const { stdout } = await promisify(execFile)(
      triton,
      [script, `127.0.0.1:${server.grpcPort}`, 'words', 'failing', 'python over grpc', 'two words'],
      { timeout: 60_000 },
    );
    const out = JSON.parse(stdout);
    expect(out.responses).toEqual({
      p0: { chunks: ['python', 'over', 'grpc'], final: true },
      p1: { chunks: ['two', 'words'], final: true },
    });
    expect(out.errors).toEqual(['ValueError: the model broke']);
  });

  it('send the chunks before a raise, then an error event, and keep serving', async () => {
    expect(await events('/failing', { prompt: 'x' })).toEqual([
      { row: 0, prediction: 'one' },
      { row: 0, prediction: 'two' },
      { error: 'ValueError: the model broke' },
    ]);
    expect(words(await events('/words', { prompt: 'still serving' }))).toEqual(['still', 'serving']);
  });
});
