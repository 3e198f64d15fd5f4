import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py } from '../src';
import { post } from './helpers';

const root = join(__dirname, '..');
const python = { venv: join(root, '.venv'), path: [join(root, 'examples/iris'), join(__dirname, 'python')] };

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});
const A = new Schema({ a: Schema.f64() });

async function serve(endpoints: Endpoint<any, any>[]) {
  const server = new Server({ host: '127.0.0.1', port: 0, python });
  for (const e of endpoints) server.register(e);
  await server.serve();
  return { server, url: `http://127.0.0.1:${server.port}` };
}

describe('Python handlers in the same process', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    ({ server, url } = await serve([
      new Endpoint({ path: '/iris', schema: Iris, batch: { maxSize: 64, maxDelayMs: 10 }, handler: py.handler('iris_handlers:predict') }),
      new Endpoint({ path: '/fail', schema: A, handler: py.handler('test_handlers:fail') }),
      new Endpoint({ path: '/short', schema: A, handler: py.handler('test_handlers:short') }),
      new Endpoint({ path: '/slow', schema: A, batch: { maxDelayMs: 1 }, handler: py.handler('test_handlers:slow') }),
      new Endpoint({ path: '/named/{name}', schema: A, handler: py.handler('test_handlers:with_params') }),
      new Endpoint({ path: '/numpy', schema: A, handler: py.handler('test_handlers:as_numpy') }),
      new Endpoint({ path: '/list', schema: A, handler: py.handler('test_handlers:as_list') }),
      new Endpoint({ path: '/object', schema: A, handler: py.handler('test_handlers:not_a_column') }),
      new Endpoint({ path: '/ts', schema: A, batch: { maxDelayMs: 1 }, handler: (b) => Array.from(b.columns.a, (a) => a + 1) }),
    ]));
  });
  afterAll(() => server.stop());

  it("predicts iris exactly as scikit-learn's own predict, for all 150 rows sent concurrently", async () => {
    const script = `
import json, joblib, numpy as np
from sklearn.datasets import load_iris
X, _ = load_iris(return_X_y=True)
m = joblib.load("examples/iris/models/iris/1/1/model.joblib")
names = np.array(["setosa", "versicolor", "virginica"])
print(json.dumps({"X": X.tolist(), "y": names[m.predict(X)].tolist()}))`;
    const { X, y } = JSON.parse(execFileSync(join(root, '.venv/bin/python'), ['-c', script], { cwd: root, encoding: 'utf8' }));
    const replies = await Promise.all(
      (X as number[][]).map(([sepal_length, sepal_width, petal_length, petal_width]) =>
        post(`${url}/iris`, [{ sepal_length, sepal_width, petal_length, petal_width }]),
      ),
    );
    expect(replies.map((r) => r.status)).toEqual(Array(150).fill(200));
    expect(replies.map((r) => r.body.predictions[0])).toEqual(y);
    const batchSizes = replies.map((r) => Number(r.headers.get('x-batch-size')));
    expect(Math.max(...batchSizes)).toBeGreaterThan(1);
  });

  it('fails a batch with 500 and the exception, then serves the next request', async () => {
    const res = await post(`${url}/fail`, [{ a: 1 }, { a: 2 }]);
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('ValueError: cannot score 2 rows');
    const ok = await post(`${url}/iris`, [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }]);
    expect(ok.status).toBe(200);
    expect(ok.body.predictions).toEqual(['setosa']);
  });

  it('fails a wrong-length result with a clear 500', async () => {
    const res = await post(`${url}/short`, [{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect(res.status).toBe(500);
    expect(res.body.error).toMatch(/returned 1 predictions for a batch of 3 rows/);
  });

  it('fails a result polars cannot read with a clear 500', async () => {
    const res = await post(`${url}/object`, [{ a: 1 }]);
    expect(res.status).toBe(500);
    expect(res.body.error).toMatch(/returned a object, which polars cannot turn into a column/);
  });

  it('accepts numpy arrays and lists, and passes path parameters', async () => {
    expect((await post(`${url}/numpy`, [{ a: 1.5 }, { a: 2 }])).body.predictions).toEqual([3, 4]);
    expect((await post(`${url}/list`, [{ a: 1 }, { a: 2 }])).body.predictions).toEqual(['row 0', 'row 1']);
    expect((await post(`${url}/named/ada`, [{ a: 1 }])).body.predictions).toEqual(['ada']);
  });

  it('a slow Python handler delays neither a TypeScript endpoint nor Node timers', async () => {
    const slow = post(`${url}/slow`, [{ a: 1 }]);
    await new Promise((r) => setTimeout(r, 20)); // the Python call is under way
    const t0 = performance.now();
    const timer = new Promise<number>((r) => setTimeout(() => r(performance.now() - t0), 10));
    const ts = await post(`${url}/ts`, [{ a: 1 }]);
    const tsElapsed = performance.now() - t0;
    expect(ts.body.predictions).toEqual([2]);
    expect(tsElapsed).toBeLessThan(150);
    expect(await timer).toBeLessThan(150);
    expect((await slow).body.predictions).toEqual([1]);
  });
});

describe('every dtype reaches Python with its polars dtype', () => {
  const All = new Schema({
    b: Schema.bool(),
    i8: Schema.i8(),
    i16: Schema.i16(),
    i32: Schema.i32(),
    i64: Schema.i64(),
    u8: Schema.u8(),
    u16: Schema.u16(),
    u32: Schema.u32(),
    u64: Schema.u64(),
    f32: Schema.f32(),
    f64: Schema.f64().nullable(),
    s: Schema.str().nullable(),
    list: Schema.list('i64'),
    emb: Schema.array('f32', 2).nullable(),
  });
  let server: Server;
  let url: string;
  beforeAll(async () => {
    ({ server, url } = await serve([
      new Endpoint({ path: '/dtypes', schema: All, handler: py.handler('test_handlers:dtypes') }),
      new Endpoint({ path: '/nulls', schema: All, handler: py.handler('test_handlers:null_counts') }),
      new Endpoint({ path: '/echo', schema: All, handler: py.handler('test_handlers:echo') }),
    ]));
  });
  afterAll(() => server.stop());

  const body = `[
    {"b": true, "i8": -8, "i16": -16, "i32": -32, "i64": 9007199254740993, "u8": 8, "u16": 16, "u32": 32,
     "u64": 18446744073709551615, "f32": 0.5, "f64": null, "s": "ünïcødé", "list": [1, 2], "emb": null},
    {"b": false, "i8": 8, "i16": 16, "i32": 32, "i64": -1, "u8": 0, "u16": 0, "u32": 0,
     "u64": 0, "f32": 1.5, "f64": 2.5, "s": null, "list": [], "emb": [1, 2]}
  ]`;

  it('maps each schema type to the matching polars dtype', async () => {
    const res = await post(`${url}/dtypes`, body);
    expect(res.status).toBe(200);
    expect(res.body.predictions[0]).toBe(
      'b=Boolean,i8=Int8,i16=Int16,i32=Int32,i64=Int64,u8=UInt8,u16=UInt16,u32=UInt32,u64=UInt64,' +
        'f32=Float32,f64=Float64,s=String,list=List(Int64),emb=Array(Float32, shape=(2,))',
    );
  });

  it('keeps nulls', async () => {
    const res = await post(`${url}/nulls`, body);
    expect(res.body.predictions[0]).toBe('b=0,i8=0,i16=0,i32=0,i64=0,u8=0,u16=0,u32=0,u64=0,f32=0,f64=1,s=1,list=0,emb=1');
  });

  it('round-trips values exactly', async () => {
    const res = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain('"i64":9007199254740993');
    expect(text).toContain('"u64":18446744073709551615');
    const [r0, r1] = JSON.parse(text).predictions;
    expect(r0).toMatchObject({ b: true, i8: -8, f32: 0.5, f64: null, s: 'ünïcødé', list: [1, 2], emb: null });
    expect(r1).toMatchObject({ b: false, u64: 0, f64: 2.5, s: null, list: [], emb: [1, 2] });
  });
});

describe('a wrong Python reference fails at register, naming it', () => {
  it.each([
    ['no_such_module:predict', /could not import Python module 'no_such_module'.*ModuleNotFoundError/],
    ['test_handlers:no_such_function', /Python module 'test_handlers' has no attribute 'no_such_function'/],
    ['test_handlers:NOT_CALLABLE', /'test_handlers:NOT_CALLABLE' is not callable/],
  ])('%s', (target, message) => {
    const server = new Server({ port: 0, python });
    expect(() => server.register(new Endpoint({ path: '/x', schema: A, handler: py.handler(target) }))).toThrow(message);
  });
});
