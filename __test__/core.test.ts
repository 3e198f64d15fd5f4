import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server } from '../src';
import { post, serve } from './helpers';

const Sum = new Schema({ a: Schema.f64(), b: Schema.f64() });

describe('dtypes round trip through a TypeScript handler', () => {
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
    f64: Schema.f64(),
    s: Schema.str(),
    ns: Schema.str().nullable(),
    nf: Schema.f64().nullable(),
    list: Schema.list('i32'),
    emb: Schema.array('f32', 3),
  });
  const seen: Record<string, string> = {};
  const echo = new Endpoint({
    path: '/echo',
    schema: All,
    handler: (batch) => {
      const c = batch.columns;
      for (const [k, v] of Object.entries(c)) seen[k] = Array.isArray(v) ? `Array<${v[0]?.constructor.name}>` : v.constructor.name;
      const nf = batch.nulls.nf;
      return {
        b: Array.from(c.b, (v) => v === 1),
        i8: c.i8,
        i16: c.i16,
        i32: c.i32,
        i64: c.i64,
        u8: c.u8,
        u16: c.u16,
        u32: c.u32,
        u64: c.u64,
        f32: c.f32,
        f64: c.f64,
        s: c.s,
        ns: c.ns,
        nf: Array.from(c.nf, (v, i) => (nf?.[i] ? null : v)),
        list: c.list.map((l) => (l ? Array.from(l) : null)),
        emb: c.emb.map((e) => (e ? Array.from(e) : null)),
        obj: c.s.map((text, i) => (i === 1 ? null : { i, text })),
      };
    },
  });
  let url: string;
  let server: Server;
  beforeAll(async () => ({ server, url } = await serve([echo])));
  afterAll(() => server.stop());

  it('answers every dtype, nulls, unicode and big integers exactly', async () => {
    const records = [
      {
        b: true, i8: -128, i16: -32768, i32: -2147483648, i64: '9007199254740993',
        u8: 255, u16: 65535, u32: 4294967295, u64: '18446744073709551615',
        f32: 1.5, f64: 0.1, s: 'héllo ✓ 日本 🚀', ns: null, nf: null, list: [1, 2, 3], emb: [0.5, 1, -2],
      },
      {
        b: false, i8: 127, i16: 32767, i32: 2147483647, i64: '-9223372036854775808',
        u8: 0, u16: 0, u32: 0, u64: 0,
        f32: -0.25, f64: 1e300, s: '', ns: 'x', nf: 2.5, list: [], emb: [0, 0, 0],
      },
    ];
    // Big integers must travel as JSON numbers, not strings.
    const body = JSON.stringify(records).replace(/"(-?\d{16,})"/g, '$1');
    const res = await post(`${url}/echo`, body);
    expect(res.body.error).toBeUndefined();
    expect(res.status).toBe(200);
    const text = JSON.stringify(res.body);
    expect(res.body.predictions).toHaveLength(2);
    const [p0, p1] = res.body.predictions;
    expect(p0.b).toBe(true);
    expect(p1.b).toBe(false);
    expect([p0.i8, p0.i16, p0.i32, p1.i8, p1.i16, p1.i32]).toEqual([-128, -32768, -2147483648, 127, 32767, 2147483647]);
    expect([p0.u8, p0.u16, p0.u32]).toEqual([255, 65535, 4294967295]);
    expect(p0.f32).toBe(1.5);
    expect(p0.f64).toBe(0.1);
    expect(p1.f64).toBe(1e300);
    expect(p0.s).toBe('héllo ✓ 日本 🚀');
    expect(p1.s).toBe('');
    expect(p0.ns).toBeNull();
    expect(p1.ns).toBe('x');
    expect(p0.nf).toBeNull();
    expect(p1.nf).toBe(2.5);
    expect(p0.list).toEqual([1, 2, 3]);
    expect(p1.list).toEqual([]);
    expect(p0.emb).toEqual([0.5, 1, -2]);
    // Values without a column type travel as JSON texts.
    expect(p0.obj).toEqual({ i: 0, text: 'héllo ✓ 日本 🚀' });
    expect(p1.obj).toBeNull();
    // Unicode travels unescaped and whole inside the answer's JSON.
    expect(text).toContain('"s":"héllo ✓ 日本 🚀"');
    // 64-bit integers keep every digit (they are BigInt64Array columns).
    const raw = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const rawText = await raw.text();
    expect(rawText).toContain('"i64":9007199254740993');
    expect(rawText).toContain('"i64":-9223372036854775808');
    expect(rawText).toContain('"u64":18446744073709551615');
    expect(seen).toMatchObject({
      b: 'Uint8Array', i8: 'Int8Array', i16: 'Int16Array', i32: 'Int32Array', i64: 'BigInt64Array',
      u8: 'Uint8Array', u16: 'Uint16Array', u32: 'Uint32Array', u64: 'BigUint64Array',
      f32: 'Float32Array', f64: 'Float64Array', s: 'Array<String>', list: 'Array<Int32Array>', emb: 'Array<Float32Array>',
    });
  });
});

describe('batching', () => {
  const sizes: number[] = [];
  const sum = new Endpoint({
    path: '/predictions/sum',
    schema: Sum,
    batch: { maxSize: 64, maxDelayMs: 20 },
    handler: (batch) => {
      sizes.push(batch.length);
      const { a, b } = batch.columns;
      const out = new Float64Array(batch.length);
      for (let i = 0; i < batch.length; i++) out[i] = a[i] + b[i];
      return out;
    },
  });
  const lone = new Endpoint({
    path: '/lone',
    schema: Sum,
    batch: { maxSize: 1000, maxDelayMs: 30 },
    handler: (batch) => Array.from(batch.columns.a),
  });
  let url: string;
  let server: Server;
  beforeAll(async () => ({ server, url } = await serve([sum, lone])));
  afterAll(() => server.stop());

  it('gives 200 concurrent clients their own predictions, in order, from shared batches', async () => {
    sizes.length = 0;
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const records = Array.from({ length: 1 + (i % 3) }, (_, j) => ({ a: i, b: j / 10 }));
        return post(`${url}/predictions/sum`, records).then((r) => ({ i, r, records }));
      }),
    );
    for (const { r, records } of replies) {
      expect(r.status).toBe(200);
      expect(r.body.predictions).toEqual(records.map((x) => x.a + x.b));
    }
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(sizes.every((s) => s <= 64)).toBe(true);
  });

  it('answers a lone request after maxDelayMs, without waiting for a full batch', async () => {
    await post(`${url}/lone`, { a: 1, b: 2 }); // warm up
    const started = performance.now();
    const res = await post(`${url}/lone`, { a: 1, b: 2 });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual([1]);
    // maxDelayMs is 30: the answer must not wait for the batch to fill.
    expect(elapsed).toBeLessThan(30 + 200);
    expect(elapsed).toBeGreaterThanOrEqual(25);
  });

  it('echoes x-request-id or generates one', async () => {
    const res = await post(`${url}/predictions/sum`, { a: 1, b: 2 }, { 'x-request-id': 'abc-123' });
    expect(res.body.id).toBe('abc-123');
    expect(res.headers.get('x-request-id')).toBe('abc-123');
    const gen = await post(`${url}/predictions/sum`, { a: 1, b: 2 });
    expect(gen.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(gen.headers.get('x-request-id')).toBe(gen.body.id);
  });
});

describe('bad input gets a JSON error and touches nothing else', () => {
  const sum = new Endpoint({
    path: '/predictions/sum',
    schema: Sum,
    batch: { maxDelayMs: 2 },
    handler: (batch) => Array.from(batch.columns.a, (a, i) => a + batch.columns.b[i]),
  });
  let url: string;
  let server: Server;
  beforeAll(async () => ({ server, url } = await serve([sum], { bodyLimit: 1024 * 1024 })));
  afterAll(() => server.stop());

  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const deepUnclosed = `[{"a": 1, "b": 2, "x": ${'['.repeat(100_000)}}]`;
  async function expectGood() {
    const good = await post(`${url}/predictions/sum`, [{ a: 1, b: 2 }]);
    expect(good.status).toBe(200);
    expect(good.body.predictions).toEqual([3]);
  }

  it.each([
    ['malformed JSON', '[{"a": 1, "b": ', 400, /malformed JSON/],
    ['empty body', '', 400, /empty/],
    ['a string where a number is expected', '[{"a": 1, "b": 2}, {"a": "x", "b": 2}]', 422, /expected f64/],
    ['a missing field', '[{"a": 1}]', 422, /missing field/],
    ['NaN', '[{"a": NaN, "b": 1}]', 400, /malformed JSON/],
    ['Infinity', '[{"a": Infinity, "b": 1}]', 400, /malformed JSON/],
    ['a number beyond f64', '[{"a": 1e999, "b": 1}]', 400, /malformed JSON/],
    ['deeply nested arrays', deep, 422, /expected a record object/],
    ['deeply nested, unbalanced JSON', deepUnclosed, 400, /malformed JSON/],
    ['a body that is not records', '42', 422, /array of records/],
    ['null for a field that is not nullable', '{"a": null, "b": 1}', 422, /not nullable/],
  ])('%s', async (_name, body, status, message) => {
    const res = await post(`${url}/predictions/sum`, body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.body.error).toMatch(message);
    expect(Array.isArray(res.body.details)).toBe(true);
    await expectGood();
  });

  it('skips unknown fields however deeply they nest', async () => {
    const body = `[{"a": 1, "b": 2, "x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}]`;
    const res = await post(`${url}/predictions/sum`, body);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual([3]);
  });

  it('names the record index and field in details', async () => {
    const res = await post(`${url}/predictions/sum`, '[{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "b": true}]');
    expect(res.status).toBe(422);
    expect(res.body.details).toEqual([{ record: 2, field: 'b', message: 'expected f64, found the boolean true' }]);
  });

  it('refuses a 10 MB body with 413', async () => {
    const big = JSON.stringify(Array.from({ length: 400_000 }, () => ({ a: 1.123456, b: 2.123456 })));
    expect(big.length).toBeGreaterThan(10_000_000);
    const res = await post(`${url}/predictions/sum`, big);
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/larger than/);
    await expectGood();
  });

  it('answers a wrong method with 405 and Allow', async () => {
    const res = await fetch(`${url}/predictions/sum`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect((await res.json()).error).toMatch(/not allowed/);
    await expectGood();
  });

  it('answers an unknown path with 404', async () => {
    const res = await post(`${url}/predictions/nope`, [{ a: 1, b: 2 }]);
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/no route/);
  });

  it('answers a wrong content type with 415', async () => {
    const res = await post(`${url}/predictions/sum`, 'a=1&b=2', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(415);
    expect(res.body.error).toMatch(/content type/);
    await expectGood();
  });

  it('answers an empty array with no predictions', async () => {
    const res = await post(`${url}/predictions/sum`, []);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual([]);
  });

  it('serves health routes as JSON', async () => {
    const live = await fetch(`${url}/health/live`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'live' });
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });
});

describe('handler failures fail their batch only', () => {
  const ok = new Endpoint({ path: '/ok', schema: Sum, handler: (b) => Array.from(b.columns.a) });
  const throwing = new Endpoint({
    path: '/throw',
    schema: Sum,
    handler: () => {
      throw new RangeError('no luck');
    },
  });
  const rejecting = new Endpoint({
    path: '/reject',
    schema: Sum,
    handler: async () => {
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('rejected later');
    },
  });
  const wrongLength = new Endpoint({ path: '/short', schema: Sum, handler: () => [1] });
  let url: string;
  let server: Server;
  beforeAll(async () => ({ server, url } = await serve([ok, throwing, rejecting, wrongLength])));
  afterAll(() => server.stop());

  it.each([
    ['/throw', /RangeError: no luck/],
    ['/reject', /Error: rejected later/],
    ['/short', /returned 1 predictions for a batch of 3 rows/],
  ])('%s gives 500 with the message', async (path, message) => {
    const records = [{ a: 1, b: 1 }, { a: 2, b: 2 }, { a: 3, b: 3 }];
    const [bad, good] = await Promise.all([post(`${url}${path}`, records), post(`${url}/ok`, records)]);
    expect(bad.status).toBe(500);
    expect(bad.body.error).toMatch(message);
    expect(good.status).toBe(200);
    expect(good.body.predictions).toEqual([1, 2, 3]);
  });
});
