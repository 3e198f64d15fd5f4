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
  child = spawn(join(root, 'node_modules/.bin/tsx'), ['examples/iris/server.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0' },
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

it('stops on SIGTERM and exits by itself', async () => {
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
});
