// The README's main example, run as a user runs it (the iris server under
// tsx, importing the built package), and the README's requests against it.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { post } from './helpers';

const root = join(__dirname, '..');
let child: ChildProcess;
let url: string;

beforeAll(async () => {
  // `node --import tsx`: the server is this child itself, so a kill reaches it.
  child = spawn(process.execPath, ['--import', 'tsx', 'examples/iris/server.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', GRPC_PORT: '0', WORD_DELAY_MS: '20' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const m = line.match(/on (http:\/\/[\d.]+:\d+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`the example exited with ${code}`)));
  });
}, 60_000);

afterAll(async () => {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
});

it('answers the README requests', async () => {
  const iris = await post(`${url}/predictions/iris`, [
    { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
    { sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 },
  ]);
  expect(iris.status).toBe(200);
  expect(iris.body.predictions).toEqual(['setosa', 'virginica']);
  const variant = await post(`${url}/predictions/iris/1/2`, [{ sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 }]);
  expect(variant.status).toBe(200);
  expect(variant.body.predictions).toEqual(['virginica']);
  expect((await post(`${url}/predictions/iris/1/1`, [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }])).body.predictions).toEqual(['setosa']);
  const missing = await post(`${url}/predictions/iris/1/3`, [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }]);
  expect(missing.status).toBe(404);
  expect(missing.body.error).toBe('no model for run_id=1, model_id=3');
  const sum = await post(`${url}/predictions/sum`, [{ a: 1, b: 2 }]);
  expect(sum.body.predictions).toEqual([3]);
});

it("answers the README's V2 requests: iris classes, and a variant by parameters", async () => {
  const inputs = [{ name: 'input-0', shape: [2, 4], datatype: 'FP32', data: [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]] }];
  const iris = await fetch(`${url}/v2/models/iris/infer`, { method: 'POST', body: JSON.stringify({ inputs }) });
  expect(iris.status).toBe(200);
  expect(await iris.json()).toEqual({ model_name: 'iris', outputs: [{ name: 'output-0', datatype: 'INT64', shape: [2], data: [1, 1] }] });
  const variant = await post(`${url}/v2/models/iris-variants/infer`, { parameters: { run_id: '1', model_id: '2' }, inputs });
  expect(variant.status).toBe(200);
  expect(variant.body.outputs[0]).toEqual({ name: 'output-0', datatype: 'BYTES', shape: [2], data: ['versicolor', 'versicolor'] });
});

it('streams the V2 model text-stream-model word by word (generate_stream, SSE)', async () => {
  const res = await fetch(`${url}/v2/models/text-stream-model/generate_stream`, {
    method: 'POST',
    body: JSON.stringify({ text_input: 'hello streaming world' }),
  });
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const events = (await res.text())
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => JSON.parse(frame.slice('data: '.length)).text_output);
  expect(events).toEqual(['hello', ' streaming', ' world']);
  const once = await post(`${url}/v2/models/text-stream-model/generate`, { text_input: 'hello streaming world' });
  expect(once.body.text_output).toBe('hello streaming world');
});

it('stops on SIGTERM and exits by itself', async () => {
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
});
