// "Any Python": the same built addon and bridge serve Python handlers from
// venvs of CPython 3.10, 3.11, 3.12 and 3.13 (one child Node process per
// version: a process embeds one Python), and refuse clearly the environments
// they cannot serve while the server's TypeScript endpoints keep serving.
// The environments come from scripts/pythons.mjs (cached; the first run
// installs requirements.txt into each venv).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loggedBuffer, post } from './helpers';
// @ts-expect-error: a plain ES module script without types
import { MINORS, setUp } from '../scripts/pythons.mjs';

const root = join(__dirname, '..');

interface Child {
  process: ChildProcess;
  /** The pid of the Node process serving (tsx runs the fixture in a child of its own). */
  pid: number;
  url: string;
  errors: string[];
  /** Everything the child logged on stderr so far (JSON lines at trace for redesmyn_python). */
  logs: () => string[];
  stop: () => Promise<void>;
}

/** A server in its own Node process, embedding the environment `spec`. */
function startChild(spec: Record<string, string>): Promise<Child> {
  const child = spawn(join(root, 'node_modules/.bin/tsx'), [join(__dirname, 'fixtures/python-env.ts')], {
    cwd: root,
    env: { ...process.env, PY_ENV: JSON.stringify(spec), REDESMYN_LOG: 'warn,redesmyn_python=trace', VIRTUAL_ENV: '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the child did not start:\n${stderr.join('\n')}`)), 90_000);
    child.once('exit', (code) => reject(new Error(`the child exited (${code}):\n${stderr.join('\n')}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      const { port, errors, pid } = JSON.parse(line);
      resolve({
        process: child,
        pid,
        url: `http://127.0.0.1:${port}`,
        errors,
        logs: () => stderr,
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.removeAllListeners('exit');
            child.once('exit', () => done());
            child.stdin!.write('stop\n');
          }),
      });
    });
  });
}

/** The distinct files mapped into process `pid`. */
function librariesMapped(pid: number): string[] {
  const files = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/).slice(5).join(' '))
    .filter((f) => f.startsWith('/'));
  return [...new Set(files)];
}

let envs: any;
beforeAll(() => {
  envs = setUp();
}, 1_800_000);


describe.each(MINORS as string[])('CPython %s, same addon and bridge', (minor) => {
  let child: Child | undefined;
  beforeAll(async () => {
    const v = envs.versions[minor];
    if (!v.error) child = await startChild({ venv: v.venv, models: v.models });
  }, 120_000);
  afterAll(() => child?.stop());

  it('has its environment (a missing Python is a failure, not a skip)', () => {
    expect(envs.versions[minor].error).toBeUndefined();
    expect(child).toBeDefined();
  });

  it('registers every Python endpoint, with its own libpython and the bridge loaded', () => {
    expect(child!.errors).toEqual([]);
    const mapped = librariesMapped(child!.pid);
    expect(mapped.filter((l) => /libpython/.test(l))).toEqual([expect.stringContaining(`libpython${minor}.so`)]);
    expect(mapped.filter((l) => /redesmyn_python_bridge/.test(l))).toEqual([join(root, 'libredesmyn_python_bridge.so')]);
  });

  it('runs its own interpreter, with ssl, hashlib, sqlite3, numpy and sklearn importing under Node', async () => {
    const res = await post(`${child!.url}/facts`, [{ a: 1 }]);
    expect(res.status).toBe(200);
    const facts = JSON.parse(res.body.predictions[0]);
    expect(facts.version).toBe(minor);
    expect(facts.prefix).toBe(envs.versions[minor].venv);
    expect(facts.executable).toBe(join(envs.versions[minor].venv, 'bin', 'python'));
    const sha = createHash('sha256').update('redesmyn').digest('hex');
    expect(facts.sha256).toBe(sha);
    expect(facts.openssl_sha256).toBe(sha);
    expect(facts.openssl).toMatch(/^OpenSSL 3\./);
    expect(facts.verify_mode).toBe('CERT_REQUIRED');
    expect(facts.sqlite).toBe(42);
    expect(facts.numpy).toMatch(/^2\./);
    expect(facts.polars).toMatch(/^2\./);
  });

  it('serves a handler, and a joblib model from a Python loader', async () => {
    expect((await post(`${child!.url}/add`, [{ a: 1 }, { a: 2.5 }])).body.predictions).toEqual([2, 3.5]);
    const iris = await post(`${child!.url}/iris/1/1`, [
      { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
      { sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 },
    ]);
    expect(iris.status).toBe(200);
    expect(iris.body.predictions).toEqual(['setosa', 'virginica']);
    expect((await post(`${child!.url}/ts`, [{ a: 1 }])).body.predictions).toEqual([2]);
  });

  it('hands a 1M-row float64 column to Python and takes it back without copying (same buffer address)', async () => {
    const rows = 1_000_000;
    const body = `[${Array.from({ length: rows }, (_, i) => `{"x":${i}.5}`).join(',')}]`;
    const before = child!.logs().length;
    const seen = await post(`${child!.url}/address`, body);
    expect(seen.status).toBe(200);
    const inPython = BigInt(seen.body.predictions[0]);
    const exported = loggedBuffer(child!.logs().slice(before), 'batch to Python');
    expect(exported).toMatch(/^x=0x[0-9a-f]+$/); // one chunk
    expect(BigInt(exported!.slice(2))).toBe(inPython);

    const beforeBack = child!.logs().length;
    const back = await post(`${child!.url}/same`, body);
    expect(back.status).toBe(200);
    expect(back.body.predictions[rows - 1]).toBe(rows - 1 + 0.5);
    const sent = loggedBuffer(child!.logs().slice(beforeBack), 'batch to Python');
    const returned = loggedBuffer(child!.logs().slice(beforeBack), 'predictions from Python');
    expect(sent).toMatch(/^x=0x[0-9a-f]+$/);
    expect(returned).toBe(sent);
  });
});

describe('environments that cannot work are refused clearly, and TypeScript endpoints keep serving', () => {
  it.each([
    ['old', /is Python 3\.9\.\d+; redesmyn needs CPython 3\.10 or later/],
    ['noPolars', /polars is not installed in the Python environment at .*bad-no-polars: run `.*bad-no-polars\/bin\/python -m pip install polars`/],
    ['mismatch', /the virtual environment .*bad-mismatch was made with Python 3\.11\.7, but its python \(.*\) runs Python 3\.12\.\d+; recreate it/],
    ['static', /has no shared libpython \(looked for .*\); .*apt install libpython3\.12.*--enable-shared/],
    ['freeThreaded', /is a free-threaded build of Python 3\.12\.\d+, which cannot load stable-ABI extensions/],
  ])('%s', async (name, message) => {
    const spec = envs.bad[name];
    expect(spec.error).toBeUndefined();
    const child = await startChild(spec);
    try {
      // Every Python registration fails with the same reason.
      expect(child.errors.length).toBe(4);
      for (const error of child.errors) expect(error).toMatch(message);
      expect(child.errors[0]).toMatch(/^the Python interpreter could not start: /);
      const ts = await post(`${child.url}/ts`, [{ a: 41 }]);
      expect(ts.status).toBe(200);
      expect(ts.body.predictions).toEqual([42]);
      // Nothing of Python was loaded into the process.
      expect(librariesMapped(child.pid).filter((l) => /libpython|redesmyn_python_bridge/.test(l))).toEqual([]);
    } finally {
      await child.stop();
    }
  });
});
