#!/usr/bin/env node
// The baseline: examples/quickstart.ts as users run it, driven by wrk.
// Uses whatever addon the root holds (`npm run build` gives a debug build,
// `npm run build:native:release && npm run build:ts` a release one) and
// prints req/s, p50 and p99 for each concurrency.
//
//   npm run bench:quickstart                    # 64 connections, 5 s
//   npm run bench:quickstart -- -c 1,16,64 -d 10
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BUILD, ROOT } from './lib/config.mjs';
import { freePort, startServer, stopServer, waitReady } from './lib/proc.mjs';
import { runWrk } from './lib/wrk.mjs';
import { ensureWrk } from './setup.mjs';

const { values } = parseArgs({
  options: { c: { type: 'string', default: '64' }, d: { type: 'string', default: '5' } },
});
const levels = values.c.split(',').map(Number);
const seconds = Number(values.d);

ensureWrk();
mkdirSync(BUILD, { recursive: true });
const body = join(tmpdir(), 'redesmyn-quickstart-body.json');
writeFileSync(body, '[{"a":1.5,"b":2.25}]');
const port = await freePort();
const server = startServer({
  cmd: join(ROOT, 'node_modules', '.bin', 'tsx'),
  args: ['examples/quickstart.ts'],
  cwd: ROOT,
  env: { ...process.env, PORT: String(port) },
  logFile: join(BUILD, 'quickstart.log'),
});
try {
  await waitReady(server, `http://127.0.0.1:${port}/health/ready`);
  const url = `http://127.0.0.1:${port}/predictions/sum`;
  await runWrk({ url, bodyFile: body, connections: 16, seconds: 1 }); // warm-up
  console.log('connections  req/s      p50 ms  p99 ms  errors  mean batch');
  for (const connections of levels) {
    const r = await runWrk({ url, bodyFile: body, connections, seconds });
    const cols = [
      String(connections).padEnd(11),
      r.rps.toFixed(0).padStart(7),
      (r.latency_us.p50 / 1000).toFixed(2).padStart(9),
      (r.latency_us.p99 / 1000).toFixed(2).padStart(7),
      String(r.errorCount).padStart(7),
      (r.meanBatch ?? 0).toFixed(1).padStart(11),
    ];
    console.log(cols.join(' '));
  }
} finally {
  await stopServer(server);
}
