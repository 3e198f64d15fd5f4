import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');

/** Starts the fixture in its own Node process; resolves with its port and its exit. */
function startFixture(env: Record<string, string>) {
  const child = spawn(join(root, 'node_modules/.bin/tsx'), [join(__dirname, 'fixtures/serve-and-stop.ts')], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const messages: any[] = [];
  const port = new Promise<number>((resolve, reject) => {
    lines.on('line', (line) => {
      const msg = JSON.parse(line);
      messages.push(msg);
      if (msg.port) resolve(msg.port);
    });
    child.on('exit', () => reject(new Error('fixture exited before listening')));
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on('exit', (code) => resolve({ code, at: performance.now() })),
  );
  return { child, port, exited, messages };
}

describe('lifecycle', () => {
  it('serve then stop lets the process exit by itself within 2 s', async () => {
    const fixture = startFixture({ STOP_AFTER_MS: '100' });
    await fixture.port;
    const stopStarted = performance.now();
    const { code, at } = await fixture.exited;
    expect(code).toBe(0);
    expect(at - stopStarted).toBeLessThan(2000 + 100);
    expect(fixture.messages.some((m) => 'stopped' in m)).toBe(true);
  });

  it('stop() under load answers every accepted request, then exits', async () => {
    const fixture = startFixture({ STOP_ON_INPUT: '1', SLOW_MS: '20' });
    const port = await fixture.port;
    const results: (number | string)[] = [];
    let stopping = false;
    const requests = Array.from({ length: 200 }, (_, i) =>
      new Promise((r) => setTimeout(r, 2 * i))
        .then(() =>
          fetch(`http://127.0.0.1:${port}/p`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify([{ a: i }]),
          }),
        )
        .then(async (res) => {
          const body = await res.json();
          if (res.status === 200) expect(body.predictions).toEqual([i]);
          results.push(res.status);
          // Stop in the middle of the load.
          if (results.length === 50 && !stopping) {
            stopping = true;
            fixture.child.stdin!.write('stop\n');
          }
        })
        .catch((e) => results.push(String(e.cause?.code ?? e))),
    );
    await Promise.all(requests);
    const { code } = await fixture.exited;
    expect(code).toBe(0);
    // Every request either got its answer or was refused a connection:
    // none was accepted and then dropped.
    expect(results).toHaveLength(200);
    const answered = results.filter((r) => r === 200).length;
    const refused = results.filter((r) => r !== 200);
    expect(answered).toBeGreaterThanOrEqual(50);
    for (const r of refused) expect(String(r)).toMatch(/ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|503/);
  });

  it('an idle server uses next to no CPU', async () => {
    const fixture = startFixture({ STOP_AFTER_MS: '2500' });
    await fixture.port;
    const { readFileSync } = await import('node:fs');
    const ticks = () => {
      const stat = readFileSync(`/proc/${fixture.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(stat[11]) + Number(stat[12]); // utime + stime, in clock ticks
    };
    await new Promise((r) => setTimeout(r, 500));
    const before = ticks();
    await new Promise((r) => setTimeout(r, 1500));
    const used = ticks() - before; // ticks are 10 ms: 1.5 s of a busy core would be 150
    expect(used).toBeLessThan(15);
    await fixture.exited;
  });
});
