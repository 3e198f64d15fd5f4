// A/B traffic split over real HTTP: two versions of one model, each a
// TypeScript handler that counts the rows it sees. 10 000 requests with
// weights 0.9/0.1 land within ±2% of the weights; a routing key always
// reaches the same version; the x-model-version header, V2's
// model_version, the metrics and the handlers' own counts agree. The
// weights are set and checked through the management API on its own port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Endpoint, Schema, Server } from '../src';

const TOKEN = 'traffic-token-0123456789';
const counted: Record<string, number> = { '1': 0, '2': 0 };
let server: Server;
let url: string;
let admin: string;

function version(v: string) {
  return new Endpoint({
    path: `/ab/v${v}`,
    name: 'ab',
    version: v,
    schema: new Schema({ x: Schema.f64() }),
    batch: { maxSize: 64, maxDelayMs: 1 },
    handler: (batch) => {
      counted[v] += batch.length;
      return Float64Array.from(batch.columns.x, (x) => x + Number(v) * 1000);
    },
  });
}

beforeAll(async () => {
  server = new Server({ host: '127.0.0.1', port: 0, workers: 2, management: { token: TOKEN, port: 0 } });
  server.register(version('1')).register(version('2')).setTraffic('ab', { '1': 0.9, '2': 0.1 });
  await server.serve();
  url = `http://127.0.0.1:${server.port}`;
  admin = `http://127.0.0.1:${server.managementPort}`;
});

afterAll(async () => {
  await server?.stop();
});

async function ask(headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${url}/predictions/ab`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '[{"x": 1}]' });
  const body = await res.json();
  expect(res.status).toBe(200);
  const v = res.headers.get('x-model-version') as string;
  expect(body.predictions).toEqual([1 + Number(v) * 1000]);
  return v;
}

async function metricsByVersion(): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { headers: { accept: 'text/plain' } })).text();
  const family = parsePrometheusTextFormat(text).find((f: { name: string }) => f.name === 'redesmyn_model_requests_total');
  const out: Record<string, number> = {};
  for (const m of family?.metrics ?? []) if (m.labels.model === 'ab') out[m.labels.version] = Number(m.value);
  return out;
}

describe('A/B traffic split', () => {
  it('10 000 requests at 0.9/0.1 land within ±2% of the weights, and every count agrees', async () => {
    const before = { ...counted };
    const headers: Record<string, number> = { '1': 0, '2': 0 };
    const total = 10_000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < total) {
          next++;
          headers[await ask()]++;
        }
      }),
    );
    expect(headers['1'] + headers['2']).toBe(total);
    expect(headers['2'] / total).toBeGreaterThan(0.08);
    expect(headers['2'] / total).toBeLessThan(0.12);
    // What each version's handler counted is what the headers said.
    expect(counted['1'] - before['1']).toBe(headers['1']);
    expect(counted['2'] - before['2']).toBe(headers['2']);
    const metrics = await metricsByVersion();
    expect(metrics).toEqual({ '1': counted['1'], '2': counted['2'] });
  });

  it('a routing key always reaches the same version; keys spread by the weights', async () => {
    await setTraffic({ '1': 0.5, '2': 0.5 });
    const seen = new Map<string, string>();
    for (let k = 0; k < 200; k++) {
      const key = `user-${k}`;
      for (let i = 0; i < 3; i++) {
        const v = await ask({ 'x-routing-key': key });
        if (i === 0) seen.set(key, v);
        else expect(v, key).toBe(seen.get(key));
      }
    }
    const twos = [...seen.values()].filter((v) => v === '2').length;
    expect(twos).toBeGreaterThan(60);
    expect(twos).toBeLessThan(140);
    // V2 follows the same key to the same version and names it.
    for (const [key, v] of [...seen].slice(0, 20)) {
      const res = await fetch(`${url}/v2/models/ab/infer`, {
        method: 'POST',
        headers: { 'x-routing-key': key },
        body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP64', shape: [1], data: [1] }] }),
      });
      const body = await res.json();
      expect(body.model_version).toBe(v);
      expect(res.headers.get('x-model-version')).toBe(v);
    }
  });

  it('weights are checked, and a weight of 0 takes a version out of rotation', async () => {
    for (const bad of [{ '1': -0.5 }, { '3': 1 }, { '1': 0, '2': 0 }]) {
      const res = await fetch(`${admin}/models/ab/traffic`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(bad) });
      expect(res.status, JSON.stringify(bad)).toBe(400);
    }
    await setTraffic({ '1': 0, '2': 1 });
    for (let i = 0; i < 50; i++) expect(await ask()).toBe('2');
    const view = await (await fetch(`${admin}/models/ab`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(view.traffic).toEqual({ '1': 0, '2': 1 });
    expect(view.traffic_shares).toEqual({ '1': 0, '2': 1 });
    // Fixed version paths stay on their version.
    const pinned = await fetch(`${url}/ab/v1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"x": 1}]' });
    expect(pinned.headers.get('x-model-version')).toBe('1');
    // The management routes live on their own port only.
    expect((await fetch(`${url}/models/ab`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    expect(() => server.setTraffic('ab', { '3': 1 })).toThrow(/version '3'/);
  });
});

async function setTraffic(weights: Record<string, number>) {
  const res = await fetch(`${admin}/models/ab/traffic`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(weights) });
  expect(res.status).toBe(200);
}
