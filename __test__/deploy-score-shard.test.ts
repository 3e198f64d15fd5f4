// `redesmyn score --shard K/N` as an Indexed Job runs it: the built CLI,
// four processes at once with JOB_COMPLETION_INDEX 0-3 (`--shards 4`), over
// a folder of CSV files scored by a TypeScript model of a repository. Their
// parts together equal one unsharded run, file for file and row for row; a
// shard that failed is rerun alone; bad shard specs stop with a message.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const cli = join(root, 'dist', 'cli.js');
const FILES = 7;
let dir: string;
let repo: string;
let input: string;

function score(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, 'score', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, JOB_COMPLETION_INDEX: '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

/** Every part of an output folder (rejects files too), by name. */
function parts(folder: string): Record<string, string> {
  return Object.fromEntries(readdirSync(folder).filter((f) => !f.startsWith('.')).sort().map((f) => [f, readFileSync(join(folder, f), 'utf8')]));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-shard-'));
  repo = join(dir, 'models');
  mkdirSync(join(repo, 'triple'), { recursive: true });
  writeFileSync(
    join(repo, 'triple', 'model-settings.json'),
    JSON.stringify({ runtime: 'typescript', parameters: { uri: 'model.mjs' }, inputs: [{ name: 'x', datatype: 'FP64', shape: [-1] }] }),
  );
  writeFileSync(join(repo, 'triple', 'model.mjs'), 'export function predict(batch) { return Float64Array.from(batch.columns.x, (v) => v * 3); }\n');
  input = join(dir, 'input');
  mkdirSync(input);
  for (let f = 0; f < FILES; f++) {
    const lines = ['id,x'];
    for (let i = 0; i < 500 + f * 37; i++) lines.push(`${f}-${i},${i % 11 === 3 ? 'abc' : (i * 0.5 - f).toString()}`);
    writeFileSync(join(input, `part-${String(f).padStart(2, '0')}.csv`), `${lines.join('\n')}\n`);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = () => ['--repository', repo, '--model', 'triple', '--input', input, '--batch-size', '64'];

describe('sharded scoring', () => {
  it('4 shards as 4 processes (JOB_COMPLETION_INDEX 0-3) equal one unsharded run, row for row', async () => {
    const whole = await score([...base(), '--output', join(dir, 'whole')]);
    expect(whole.stderr).toBe('');
    expect(whole.code).toBe(0);
    expect(whole.stdout).toMatch(new RegExp(`${FILES} of ${FILES} files scored`));
    const shards = await Promise.all([0, 1, 2, 3].map((k) => score([...base(), '--output', join(dir, 'sharded'), '--shards', '4'], { JOB_COMPLETION_INDEX: String(k) })));
    for (const [k, s] of shards.entries()) {
      expect(s.code, s.stderr).toBe(0);
      // Shard k takes files k, k+4, ...
      const mine = Array.from({ length: FILES }, (_, i) => i).filter((i) => i % 4 === k);
      for (const i of mine) expect(s.stdout).toContain(`shard ${k}/4: scored`);
      expect(s.stdout.match(/-> .*part-\d+\.csv/g)?.length).toBe(mine.length);
    }
    const a = parts(join(dir, 'whole'));
    const b = parts(join(dir, 'sharded'));
    // Every input file has its part and its rejects file (rows with 'abc').
    expect(Object.keys(a).filter((f) => !f.includes('rejects'))).toHaveLength(FILES);
    expect(Object.keys(a).filter((f) => f.includes('rejects'))).toHaveLength(FILES);
    expect(Object.keys(b)).toEqual(Object.keys(a));
    for (const name of Object.keys(a)) expect(b[name], name).toBe(a[name]);
    // And the predictions are the model's.
    const first = a['part-00.csv'].trim().split('\n');
    expect(first[0]).toBe('id,x,prediction');
    expect(first[1]).toBe('0-0,0.0,0.0');
    expect(first[2]).toBe('0-1,0.5,1.5');
  }, 120_000);

  it('a shard that failed is rerun alone and completes the set', async () => {
    const broken = join(dir, 'broken-input');
    mkdirSync(broken);
    for (const f of readdirSync(input)) writeFileSync(join(broken, f), readFileSync(join(input, f)));
    // part-02.csv (shard 2 of 4) lacks the model's column: its run fails and writes nothing.
    writeFileSync(join(broken, 'part-02.csv'), 'id,y\n1,2\n');
    const args = (k: number) => ['--repository', repo, '--model', 'triple', '--input', broken, '--batch-size', '64', '--output', join(dir, 'rerun'), '--shard', `${k}/4`];
    const runs = await Promise.all([0, 1, 2, 3].map((k) => score(args(k))));
    expect(runs.map((r) => r.code)).toEqual([0, 0, 1, 0]);
    expect(runs[2].stderr).toContain('part-02.csv');
    expect(runs[2].stderr).toMatch(/shard 2\/4: 1 of 2 files failed; run the same command again/);
    expect(Object.keys(parts(join(dir, 'rerun')))).not.toContain('part-02.csv');
    // The data is fixed; only shard 2 runs again.
    writeFileSync(join(broken, 'part-02.csv'), readFileSync(join(input, 'part-02.csv')));
    const again = await score(args(2));
    expect(again.code, again.stderr).toBe(0);
    const whole = parts(join(dir, 'whole'));
    const rerun = parts(join(dir, 'rerun'));
    expect(Object.keys(rerun)).toEqual(Object.keys(whole));
    for (const name of Object.keys(whole)) expect(rerun[name], name).toBe(whole[name]);
  }, 120_000);

  it('a shard that no file falls to says so and exits 0', async () => {
    const few = join(dir, 'few');
    mkdirSync(few);
    writeFileSync(join(few, 'only.csv'), 'id,x\n1,1\n');
    const r = await score(['--repository', repo, '--model', 'triple', '--input', few, '--output', join(dir, 'few-out'), '--shard', '3/4']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/shard 3\/4: no input file falls to this shard/);
  }, 60_000);

  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ['K not below N', ['--shard', '5/4'], {}, /--shard 5\/4: K must be at least 0 and below N = 4/],
    ['no K/N shape', ['--shard', '2-4'], {}, /--shard expects K\/N \(shard K of N, counting from 0\), got '2-4'/],
    ['zero shards', ['--shard', '0/0'], {}, /K must be at least 0 and below N = 0/],
    ['--shards without JOB_COMPLETION_INDEX', ['--shards', '4'], {}, /--shards N takes this shard's number from JOB_COMPLETION_INDEX, which is not set/],
    ['a JOB_COMPLETION_INDEX beyond --shards', ['--shards', '4'], { JOB_COMPLETION_INDEX: '4' }, /JOB_COMPLETION_INDEX 4 is not below --shards 4/],
    ['a JOB_COMPLETION_INDEX that is no number', ['--shards', '4'], { JOB_COMPLETION_INDEX: 'x' }, /JOB_COMPLETION_INDEX expects a shard number >= 0, got 'x'/],
  ];
  for (const [what, extra, env, message] of bad) {
    it(`bad shard spec: ${what}`, async () => {
      const r = await score([...base(), '--output', join(dir, 'never'), ...extra], env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }
});
