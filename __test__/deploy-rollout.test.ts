// A rolling restart with no error: two `redesmyn serve` replicas behind
// HAProxy (Debian's), which health-checks /v2/health/ready, while a load
// generator keeps 8 requests in flight. Each replica in turn gets SIGTERM
// (with a drain delay), exits 0, and is started again on its port; every
// request must be answered 200, none reset or refused. /v2/health/ready
// keeps answering 200 during the drain (the binding cannot turn it off yet,
// docs/deploy.md), so HAProxy learns of the stop from the closed listener:
// it retries what was refused or closed unanswered.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHostTools } from '../scripts/image.mjs';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
let dir: string;
let haproxy: ChildProcess | undefined;
const replicas: { port: number; child?: ChildProcess; exit?: Promise<number | null> }[] = [];
let front: number;

function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function start(replica: (typeof replicas)[number]): Promise<void> {
  const child = spawn(process.execPath, [cli, 'serve', join(dir, 'models'), '--port', String(replica.port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, REDESMYN_DRAIN_SECONDS: '1.5' },
  });
  child.stderr?.resume();
  replica.child = child;
  replica.exit = new Promise((done) => child.on('exit', (code) => done(code)));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${replica.port}/v2/health/ready`)).status === 200, `replica ${replica.port}`);
}

/** HAProxy's view of a server: UP or DOWN, from its stats CSV. */
async function state(port: number): Promise<string> {
  const csv = await (await fetch(`http://127.0.0.1:${front}/haproxy-stats;csv`)).text();
  const line = csv.split('\n').find((l) => l.startsWith(`redesmyn,r${port},`));
  return line?.split(',')[17] ?? 'missing';
}

beforeAll(async () => {
  ensureHostTools();
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-rollout-'));
  cpSync(join(root, 'examples', 'repository', 'sum-ts'), join(dir, 'models', 'sum-ts'), { recursive: true });
  for (let i = 0; i < 2; i++) replicas.push({ port: await freePort() });
  front = await freePort();
  for (const r of replicas) await start(r);
  const config = `
global
  maxconn 1000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
  option http-server-close
  # Refused connections (a stopped listener) and connections closed before any
  # byte of an answer (accepted in the backlog as the listener closed) are
  # retried on the other replica; a request reset mid-answer or timed out is
  # not, and fails the test.
  retry-on conn-failure empty-response
frontend web
  bind 127.0.0.1:${front}
  stats enable
  stats uri /haproxy-stats
  default_backend redesmyn
backend redesmyn
  balance roundrobin
  option httpchk GET /v2/health/ready
  http-check expect status 200
${replicas.map((r) => `  server r${r.port} 127.0.0.1:${r.port} check inter 200ms fall 1 rise 2`).join('\n')}
`;
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  const check = spawnSync('haproxy', ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
  expect(check.status, check.stderr).toBe(0);
  haproxy = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
  for (const r of replicas) await waitFor(async () => (await state(r.port)) === 'UP', `HAProxy to see ${r.port} up`);
}, 120_000);

afterAll(async () => {
  haproxy?.kill('SIGTERM');
  for (const r of replicas) if (r.child && r.child.exitCode === null) r.child.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('rolling restart behind HAProxy', () => {
  it('answers every request 200 while each replica in turn stops on SIGTERM and comes back', async () => {
    const counts = { ok: 0, other: 0, errors: 0 };
    const problems: string[] = [];
    let running = true;
    const body = JSON.stringify([{ a: 1, b: 2 }]);
    const worker = async () => {
      while (running) {
        try {
          const res = await fetch(`http://127.0.0.1:${front}/predictions/sum-ts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const json = (await res.json()) as { predictions?: number[] };
          if (res.status === 200 && json.predictions?.[0] === 3) counts.ok++;
          else {
            counts.other++;
            problems.push(`${res.status} ${JSON.stringify(json)}`);
          }
        } catch (error) {
          counts.errors++;
          problems.push(String((error as Error).cause ?? error));
        }
      }
    };
    const load = Array.from({ length: 8 }, worker);
    const exits: (number | null)[] = [];
    for (const r of replicas) {
      await new Promise((d) => setTimeout(d, 500));
      r.child?.kill('SIGTERM');
      exits.push(await r.exit!);
      await start(r);
      await waitFor(async () => (await state(r.port)) === 'UP', `HAProxy to see ${r.port} up again`);
    }
    await new Promise((d) => setTimeout(d, 500));
    running = false;
    await Promise.all(load);
    console.log(`rolling restart: ${counts.ok} answered 200, ${counts.other} other, ${counts.errors} errors`);
    expect(exits).toEqual([0, 0]);
    expect(problems.slice(0, 5)).toEqual([]);
    expect(counts.ok).toBeGreaterThan(500);
  }, 120_000);
});
