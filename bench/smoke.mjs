#!/usr/bin/env node
// Smoke run of the benchmark harness, for the test suite: redesmyn's no-op
// TypeScript handler against the actix-web echo, 2 s each at 16 connections,
// debug builds, nothing written to bench/results. Prints the table; exits 0
// when both served every request with a 2xx, whatever the timings.
//
//   node bench/smoke.mjs
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const r = spawnSync(process.execPath, [join(import.meta.dirname, 'run.mjs'), '--smoke', ...process.argv.slice(2)], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
