// Keeps the benchmark harness from rotting: one tiny scenario (redesmyn's
// no-op handler against the actix-web echo, a couple of seconds each, debug
// build). Asserts that it runs and reports, never how fast.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('runs the smoke scenario of npm run bench and prints its table', () => {
  const run = spawnSync(process.execPath, [join(__dirname, '..', 'bench', 'smoke.mjs')], {
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  expect(run.status, output).toBe(0);
  expect(output).toMatch(/\| actix-web JSON echo \(ceiling\) \| 16 \| [\d,]+ \|/);
  expect(output).toMatch(/\| redesmyn, no-op TS handler \| 16 \| [\d,]+ \|/);
  expect(output).toContain('smoke: ok');
}, 16 * 60_000);
