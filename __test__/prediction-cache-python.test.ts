// The prediction cache in front of a real CPython handler with two outputs:
// every answer carries the number of the handler call that computed it.
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py } from '../src';
import { post } from './helpers';

const root = join(__dirname, '..');
let server: Server;
let url: string;

beforeAll(async () => {
  server = new Server({ host: '127.0.0.1', port: 0, workers: 2, python: { venv: join(root, '.venv'), path: [join(__dirname, 'python')] } });
  server.register(
    new Endpoint({
      path: '/counted',
      schema: new Schema({ x: Schema.f64() }),
      predictionCache: { maxEntries: 1000 },
      handler: py.handler('predcache_handlers:counted'),
    }),
  );
  await server.serve();
  url = `http://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server.stop();
});

it('answers seen rows from the cache and only the others from Python, in order', async () => {
  const first = await post(`${url}/counted`, [{ x: 1 }, { x: 2 }]);
  expect(first.body.predictions).toEqual([
    { double: 2, call: 1 },
    { double: 4, call: 1 },
  ]);
  const mixed = await post(`${url}/counted`, [{ x: 3 }, { x: 2 }, { x: 1 }, { x: 4 }]);
  expect(mixed.headers.get('x-cached-rows')).toBe('2');
  expect(mixed.headers.get('x-batch-size')).toBe('2');
  expect(mixed.body.predictions).toEqual([
    { double: 6, call: 2 },
    { double: 4, call: 1 },
    { double: 2, call: 1 },
    { double: 8, call: 2 },
  ]);
  const v2 = await post(`${url}/v2/models/counted/infer`, { inputs: [{ name: 'x', datatype: 'FP64', shape: [2], data: [4, 3] }] });
  expect(v2.status).toBe(200);
  expect(v2.headers.get('x-cached-rows')).toBe('2');
  expect(v2.body.outputs.map((o: { name: string; data: number[] }) => [o.name, o.data])).toEqual([
    ['double', [8, 6]],
    ['call', [2, 2]],
  ]);
});
