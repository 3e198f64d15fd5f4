// examples/streaming/server.ts run as a user runs it (tsx, the built
// package): the TypeScript and Python text models, word by word over SSE.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';

const root = join(__dirname, '..');
let child: ChildProcess;
let url: string;

beforeAll(async () => {
  child = spawn(join(root, 'node_modules/.bin/tsx'), ['examples/streaming/server.ts'], {
    cwd: root,
    env: { ...process.env, PORT: '0', WORD_DELAY_MS: '20' },
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
    child.kill('SIGTERM');
    await exited;
  }
});

async function frames(path: string, prompt: string) {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ prompt }),
  });
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  return (await res.text())
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => JSON.parse(frame.slice('data: '.length)));
}

it.each(['/generate/ts', '/generate/py'])('%s streams each word, then the end of the row', async (path) => {
  expect(await frames(path, 'the quick brown fox')).toEqual([
    { row: 0, prediction: 'the' },
    { row: 0, prediction: ' quick' },
    { row: 0, prediction: ' brown' },
    { row: 0, prediction: ' fox' },
    { row: 0, done: true },
  ]);
});
