// `redesmyn serve` over a model repository, run as a user runs it: a child
// process of the built CLI, real HTTP (native JSON and V2) and gRPC
// (tritonclient), models made at set-up by the real libraries
// (__test__/repository/make_models.py in the venv scripts/runtimes-venv.mjs
// makes), compared with each library's own predict on the same rows.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureRuntimesVenv } from '../scripts/runtimes-venv.mjs';
import { ensureClients } from '../scripts/v2-clients.mjs';
import { onnxruntimeLibrary } from '../bench/setup.mjs';
import { post, until } from './helpers';
import { cli, serveCli } from './support/cli';

const run = promisify(execFile);
const root = join(__dirname, '..');
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];

interface Served {
  child: ChildProcess;
  http: string;
  grpc: string;
  log: () => string;
  exit: Promise<number | null>;
}

/** Starts `redesmyn serve <dir>` and waits for its "serving" line. */
async function serve(dir: string, venv: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Served> {
  const s = await serveCli(['serve', dir, '--port', '0', '--grpc-port', '0', '--venv', venv, ...extra], { ...process.env, ...env });
  return { ...s, http: s.url };
}

function records(rows: number[][], names = COLUMNS) {
  return rows.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]])));
}

let dir: string;
let venv: string;
let expected: Record<string, any>;
let served: Served;
let triton: string;

beforeAll(async () => {
  ({ venv } = ensureRuntimesVenv());
  triton = ensureClients().triton;
  dir = mkdtempSync(join(tmpdir(), 'redesmyn-repo-'));
  await run(join(venv, 'bin', 'python'), [join(__dirname, 'repository', 'make_models.py'), dir], { timeout: 120_000 });
  expected = (await import(join(dir, 'expected.json'), { with: { type: 'json' } })).default;
  served = await serve(dir, venv);
}, 300_000);

afterAll(async () => {
  if (served && served.child.exitCode === null) {
    served.child.kill('SIGTERM');
    expect(await served.exit).toBe(0);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('redesmyn serve: built-in runtimes answer what their library predicts', () => {
  for (const model of ['iris-sklearn', 'iris-proba', 'iris-xgboost', 'iris-lightgbm', 'iris-keras', 'iris-savedmodel']) {
    it(`${model}: native JSON and V2 REST`, async () => {
      const native = await post(`${served.http}/predictions/${model}`, records(expected.rows));
      expect(native.status).toBe(200);
      const want = expected[model] as number[] | number[][];
      const close = (got: unknown, exp: unknown) => {
        if (Array.isArray(exp)) {
          expect((got as unknown[]).length).toBe(exp.length);
          exp.forEach((e, i) => close((got as unknown[])[i], e));
        } else expect(got as number).toBeCloseTo(exp as number, 5);
      };
      close(native.body.predictions, want);

      const v2 = await post(`${served.http}/v2/models/${model}/infer`, {
        inputs: [{ name: 'input-0', datatype: 'FP64', shape: [expected.rows.length, 4], data: expected.rows.flat() }],
      });
      expect(v2.status).toBe(200);
      const output = v2.body.outputs[0];
      expect(output.shape[0]).toBe(expected.rows.length);
      close(output.data, want.flat());
    });
  }

  it('custom Python class (MLModel shape) and TypeScript module', async () => {
    const py = await post(`${served.http}/predictions/custom-python`, [{ x: 2 }, { x: -1.5 }]);
    expect(py.body.predictions).toEqual([6, -4.5]);
    const ts = await post(`${served.http}/predictions/custom-ts`, [{ a: 2, b: 3 }, { a: 0.5, b: 4 }]);
    expect(ts.body.predictions).toEqual([106, 102]);
  });

  it("MLServer's sklearn example folder serves unchanged (inputs taken from the model)", async () => {
    const digits = expected.digits as number[][];
    const v2 = await post(`${served.http}/v2/models/mnist-svm/infer`, {
      inputs: [{ name: 'predict', datatype: 'FP64', shape: [digits.length, 64], data: digits.flat() }],
    });
    expect(v2.status).toBe(200);
    expect(v2.body.outputs[0].name).toBe('predict');
    expect(v2.body.outputs[0].data).toEqual(expected['mnist-svm']);
    const meta = await (await fetch(`${served.http}/v2/models/mnist-svm`)).json();
    expect(meta.inputs).toEqual([{ name: 'input-0', datatype: 'FP64', shape: [-1, 64] }]);
    expect(meta.outputs).toEqual([{ name: 'predict', datatype: 'INT64', shape: [-1] }]);
  });

  it('gRPC (tritonclient): infer and metadata list the declared inputs and outputs', async () => {
    const { stdout } = await run(
      triton,
      [join(__dirname, 'repository', 'grpc_infer.py'), served.grpc, 'iris-sklearn', 'input-0', 'FP64', JSON.stringify(expected.rows)],
      { timeout: 60_000 },
    );
    const r = JSON.parse(stdout);
    expect(r.ready).toBe(true);
    expect(r.outputs.predict).toEqual(expected['iris-sklearn']);
    expect(r.metadata.outputs).toEqual([{ name: 'predict', datatype: 'INT64', shape: ['-1'] }]);
    expect(r.metadata.inputs).toEqual([{ name: 'input-0', datatype: 'FP64', shape: ['-1', '4'] }]);
  });

  it('V2 metadata over REST: the declared inputs and outputs', async () => {
    const meta = await (await fetch(`${served.http}/v2/models/iris-proba`)).json();
    expect(meta.inputs).toEqual([{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }]);
    expect(meta.outputs).toEqual([{ name: 'predict_proba', datatype: 'FP64', shape: [-1, 3] }]);
  });
});

describe('redesmyn serve: versions', () => {
  const predict = async (path: string) => (await post(`${served.http}${path}`, records(expected.rows))).body.predictions;
  const v2 = async (path: string) =>
    (
      await post(`${served.http}${path}`, {
        inputs: [{ name: 'input-0', datatype: 'FP64', shape: [1, 4], data: expected.rows[0] }],
      })
    ).body.outputs[0].data;

  it('latest 2 of 3: versions 3 and 2 side by side, 1 not served, the unversioned routes serve 3', async () => {
    expect(await predict('/predictions/iris-versions/versions/3')).toEqual([0, 0, 0, 0]);
    expect(await predict('/predictions/iris-versions/versions/2')).toEqual([2, 2, 2, 2]);
    expect(await predict('/predictions/iris-versions')).toEqual([0, 0, 0, 0]);
    expect((await post(`${served.http}/predictions/iris-versions/versions/1`, records(expected.rows))).status).toBe(404);
    expect(await v2('/v2/models/iris-versions/versions/2/infer')).toEqual([2]);
    expect(await v2('/v2/models/iris-versions/versions/3/infer')).toEqual([0]);
    expect(await v2('/v2/models/iris-versions/infer')).toEqual([0]);
    expect((await fetch(`${served.http}/v2/models/iris-versions/versions/2/ready`)).status).toBe(200);
    expect((await fetch(`${served.http}/v2/models/iris-versions/versions/1/ready`)).status).toBe(404);
  });

  it('all versions with defaultVersion 1; a version that fails to load leaves the others serving', async () => {
    expect(await v2('/v2/models/iris-pinned/versions/1/infer')).toEqual([1]);
    expect(await v2('/v2/models/iris-pinned/versions/2/infer')).toEqual([2]);
    expect(await v2('/v2/models/iris-pinned/infer')).toEqual([1]);
    const line = served
      .log()
      .split('\n')
      .find((l) => l.includes('"model failed"') && l.includes('"model":"iris-pinned"'));
    expect(JSON.parse(line ?? '{}')).toMatchObject({ version: '3', reason: expect.stringMatching(/iris-pinned\/3\/model.joblib' does not exist/) });
  });
});

describe('redesmyn serve: a bad model fails alone, with the file, the key and what was expected', () => {
  const failed = (model: string) => {
    const line = served
      .log()
      .split('\n')
      .find((l) => l.includes('"model failed"') && l.includes(`"model":"${model}"`));
    return line ? (JSON.parse(line).reason as string) : undefined;
  };

  it('unknown runtime, missing artifact, malformed JSON, unknown key, wrong type, load raising', async () => {
    expect(failed('bad-runtime')).toMatch(/bad-runtime\/model-settings.json: 'runtime': unknown runtime "tensorflow-magic"; expected one of sklearn/);
    expect(failed('bad-artifact')).toMatch(/'parameters.uri': expected an existing file; '.*missing.joblib' does not exist/);
    expect(failed('bad-json')).toMatch(/bad-json\/model-settings.json: malformed JSON/);
    expect(failed('bad-key')).toMatch(/'max_batch_sise': unknown key; expected one of: name, implementation/);
    expect(failed('bad-type')).toMatch(/'max_batch_size': expected a positive integer, got "four"/);
    expect(failed('bad-policy')).toMatch(/bad-policy\/model-settings.json: 'versionPolicy': expected \{"latest": \{"num_versions": N\}\}, \{"all": \{\}\} or \{"specific": \{"versions": \[1, 2\]\}\}, got \{"newest":2\}/);
    expect(failed('bad-load')).toMatch(/load failed: RuntimeError: weights are corrupt/);
    // Not served, and the good ones still are.
    expect((await post(`${served.http}/predictions/bad-load`, [{ x: 1 }])).status).toBe(404);
    expect((await fetch(`${served.http}/v2/models/bad-key/ready`)).status).toBe(404);
    expect((await post(`${served.http}/predictions/iris-sklearn`, records(expected.rows))).status).toBe(200);
  });

  it('a pipeline with an unknown model, a cycle or an input no step gives is refused naming the step and the column', async () => {
    expect(failed('bad-pipeline-unknown')).toMatch(/bad-pipeline-unknown\/model-settings.json: 'steps': pipeline 'bad-pipeline-unknown': step 'missing': no model named 'no-such-model'/);
    expect(failed('bad-pipeline-cycle')).toMatch(/'steps': pipeline 'bad-pipeline-cycle': steps form a cycle: (a -> b -> a|b -> a -> b)/);
    expect(failed('bad-pipeline-mismatch')).toMatch(
      /'steps': pipeline 'bad-pipeline-mismatch': step 'second': input 'b' reads 'c', which is neither a pipeline input nor an output of a step listed before it/,
    );
    // The good pipeline over the same model serves: (1 * 2 + 100) * 2 + 100.
    expect((await post(`${served.http}/predictions/ts-twice`, [{ a: 1, b: 2 }])).body.predictions).toEqual([304]);
  });

  it('a missing Python package is named, with the pip command', async () => {
    const bare = mkdtempSync(join(tmpdir(), 'redesmyn-bare-'));
    try {
      // A venv without xgboost: the runtimes venv's base Python, which has none of the runtimes' libraries.
      const { stdout } = await run(join(venv, 'bin', 'python'), ['-c', 'import sys; print(sys.base_prefix)']);
      await run(join(stdout.trim(), 'bin', 'python3'), ['-m', 'venv', join(bare, 'venv')]);
      const r = await run(process.execPath, [cli, 'serve', dir, '--port', '0', '--venv', join(bare, 'venv'), '--strict']).catch((e) => e);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/iris-xgboost\/model-settings.json: the Python package 'polars' is missing; install it with: pip install polars/);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });
});

describe('redesmyn serve --watch: hot reload of a new version', () => {
  it('a broken new version leaves the old one serving; a good one takes over once loaded; no request fails meanwhile', async () => {
    const hot = mkdtempSync(join(tmpdir(), 'redesmyn-hot-'));
    const settings = { runtime: 'sklearn', parameters: { uri: 'model.joblib' }, inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }], columns: COLUMNS };
    mkdirSync(join(hot, 'hot', '1'), { recursive: true });
    writeFileSync(join(hot, 'hot', 'model-settings.json'), JSON.stringify(settings));
    cpSync(join(dir, 'iris-pinned', '1', 'model.joblib'), join(hot, 'hot', '1', 'model.joblib'));
    const s = await serve(hot, venv, ['--watch', '--watch-interval', '200']);
    // Four clients in a loop, each request after the previous answer.
    let running = true;
    const seen: { status: number; value: unknown }[][] = [[], [], [], []];
    const clients = seen.map(async (log) => {
      while (running) {
        const r = await post(`${s.http}/predictions/hot`, records([expected.rows[0]]));
        log.push({ status: r.status, value: r.body?.predictions?.[0] });
      }
    });
    const current = async () => (await post(`${s.http}/predictions/hot`, records([expected.rows[0]]))).body.predictions[0];
    const reached = (what: () => Promise<boolean>) => until(what, 30_000, 100);
    try {
      expect(await current()).toBe(1);
      // Version 2: its file is not a model. Dropped in whole (renamed into place).
      mkdirSync(join(hot, 'staging-2'));
      writeFileSync(join(hot, 'staging-2', 'model.joblib'), 'not a joblib file');
      renameSync(join(hot, 'staging-2'), join(hot, 'hot', '2'));
      await reached(async () => s.log().includes('new version failed'));
      const failed = JSON.parse(s.log().split('\n').find((l) => l.includes('new version failed')) ?? '{}');
      expect(failed).toMatchObject({ model: 'hot', version: '2', serving: '1', reason: expect.stringMatching(/load failed/) });
      expect(await current()).toBe(1);
      // Version 3: a good model answering 2.
      mkdirSync(join(hot, 'staging-3'));
      cpSync(join(dir, 'iris-pinned', '2', 'model.joblib'), join(hot, 'staging-3', 'model.joblib'));
      renameSync(join(hot, 'staging-3'), join(hot, 'hot', '3'));
      await reached(async () => (await current()) === 2);
      expect(await current()).toBe(2);
      expect(s.log()).toMatch(/"message":"default version moved","model":"hot","from":"1","version":"3"/);
      // The new version has its own routes now; the policy (latest 1) unloads the old one.
      expect((await post(`${s.http}/predictions/hot/versions/3`, records([expected.rows[0]]))).body.predictions).toEqual([2]);
      await reached(async () => s.log().includes('"message":"version removed","model":"hot","version":"1"'));
      expect((await post(`${s.http}/predictions/hot/versions/1`, records([expected.rows[0]]))).status).toBe(404);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      running = false;
      await Promise.all(clients);
      s.child.kill('SIGTERM');
      expect(await s.exit).toBe(0);
      rmSync(hot, { recursive: true, force: true });
    }
    for (const log of seen) {
      expect(log.length).toBeGreaterThan(0);
      expect(log.filter((r) => r.status !== 200)).toEqual([]);
      // Each client sees 1 until the switch, then 2 only.
      const first2 = log.findIndex((r) => r.value === 2);
      expect(first2).toBeGreaterThan(-1);
      expect(log.slice(0, first2).every((r) => r.value === 1)).toBe(true);
      expect(log.slice(first2).every((r) => r.value === 2)).toBe(true);
    }
  });
});

describe('examples/repository, as the README runs it', () => {
  it('train.py, then every runtime of the example answers', async () => {
    const example = join(root, 'examples', 'repository');
    // As a user with every library in one venv would: the ONNX export first
    // (skl2onnx lives in its own test venv), then the rest, which rewrites
    // the scikit-learn files with the serving venv's own scikit-learn.
    await run(ensureClients().onnx, [join(example, 'train.py')], { timeout: 120_000 });
    await run(join(venv, 'bin', 'python'), [join(example, 'train.py')], { timeout: 120_000 });
    const s = await serve(example, venv, [], { ORT_DYLIB_PATH: onnxruntimeLibrary() });
    try {
      const iris = { sepal_length: 6.8, sepal_width: 2.8, petal_length: 4.8, petal_width: 1.4 };
      const argmax = (p: number[]) => p.indexOf(Math.max(...p));
      expect(s.log()).not.toMatch(/model failed/);
      expect(s.log()).toMatch(/"models":12,"failed":0/);
      expect((await post(`${s.http}/predictions/iris`, [iris])).body.predictions).toEqual([1]);
      expect((await post(`${s.http}/predictions/iris/versions/1`, [iris])).body.predictions).toEqual([1]);
      expect((await post(`${s.http}/predictions/iris-xgboost`, [iris])).body.predictions).toEqual([1]);
      expect(argmax((await post(`${s.http}/predictions/iris-lightgbm`, [iris])).body.predictions[0] as number[])).toBe(1);
      const onnxAnswer = (await post(`${s.http}/predictions/iris-onnx`, [iris])).body.predictions[0] as { label: number; probabilities: number[] };
      expect(onnxAnswer.label).toBe(1);
      expect(argmax(onnxAnswer.probabilities)).toBe(1);
      expect(argmax((await post(`${s.http}/predictions/iris-keras`, [iris])).body.predictions[0] as number[])).toBe(1);
      const v2 = await post(`${s.http}/v2/models/iris-keras/infer`, {
        inputs: [{ name: 'input-0', datatype: 'FP64', shape: [1, 4], data: [6.8, 2.8, 4.8, 1.4] }],
      });
      expect(argmax(v2.body.outputs[0].data as number[])).toBe(1);
      expect((await post(`${s.http}/predictions/scaled`, [{ x: 2 }])).body.predictions).toEqual([5]);
      expect((await post(`${s.http}/predictions/sum-ts`, [{ a: 1, b: 2 }])).body.predictions).toEqual([3]);

      // The pipeline (TypeScript features -> ONNX -> Python rule) answers as its models served alone, by hand.
      const flowers = [iris, { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }, { sepal_length: 7.7, sepal_width: 2.6, petal_length: 6.9, petal_width: 2.3 }];
      const mm = flowers.map((f) => Object.fromEntries(Object.entries(f).map(([k, v]) => [`${k}_mm`, Math.round(v * 10)])));
      const labels = ((await post(`${s.http}/predictions/iris-onnx`, flowers)).body.predictions as { label: number }[]).map((p) => p.label);
      const species = ['setosa', 'versicolor', 'virginica'];
      const byHand = labels.map((label, i) => ((flowers[i].petal_length < 2.5) === (label === 0) ? species[label] : `review:${species[label]}`));
      const piped = await post(`${s.http}/predictions/iris-pipeline`, mm);
      expect(piped.status).toBe(200);
      expect(piped.body.predictions).toEqual(byHand);
      const meta = await fetch(`${s.http}/v2/models/iris-pipeline`).then((r) => r.json());
      expect(meta.inputs.map((t: { name: string }) => t.name)).toEqual(Object.keys(mm[0]));
      expect(meta.outputs).toEqual([{ name: 'decision', datatype: 'BYTES', shape: [-1] }]);
      // The ensemble: scikit-learn, XGBoost and ONNX vote.
      const alone = await Promise.all(
        ['iris/versions/2', 'iris-xgboost'].map(async (m) => (await post(`${s.http}/predictions/${m}`, flowers)).body.predictions as number[]),
      );
      const votes = flowers.map((_, i) => {
        const ballots = [alone[0][i], alone[1][i], labels[i]].map(Number);
        return ballots.find((b) => ballots.filter((x) => x === b).length >= 2) ?? ballots[0];
      });
      expect((await post(`${s.http}/predictions/iris-vote`, flowers)).body.predictions).toEqual(votes);
    } finally {
      s.child.kill('SIGTERM');
      expect(await s.exit).toBe(0);
    }
  });
});

describe('redesmyn CLI', () => {
  it("settings.json: MLServer's keys apply, a wrong one stops start-up naming the file and key", async () => {
    const repo = mkdtempSync(join(tmpdir(), 'redesmyn-settings-'));
    try {
      cpSync(join(dir, 'custom-ts'), join(repo, 'custom-ts'), { recursive: true });
      writeFileSync(join(repo, 'settings.json'), JSON.stringify({ host: '127.0.0.1', http_port: 'eighty' }));
      const bad = await run(process.execPath, [cli, 'serve', repo]).catch((e) => e);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/settings.json: 'http_port': expected a port number 0-65535, got "eighty"/);
      // grpc_port from the file turns gRPC on (the command line sets no gRPC port here).
      writeFileSync(join(repo, 'settings.json'), JSON.stringify({ host: '127.0.0.1', http_port: 0, grpc_port: 0, parallel_workers: 1, debug: false }));
      const child = spawn(process.execPath, [cli, 'serve', repo], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const line = await new Promise<string>((done, fail) => {
        child.stderr.on('data', (c: Buffer) => {
          out += c.toString();
          const l = out.split('\n').find((x) => x.includes('"message":"serving"'));
          if (l) done(l);
        });
        child.on('exit', (code) => fail(new Error(`exited ${code}: ${out}`)));
      });
      const { port, grpcPort } = JSON.parse(line);
      expect(grpcPort).toBeGreaterThan(0);
      expect((await post(`http://127.0.0.1:${port}/predictions/custom-ts`, [{ a: 1, b: 1 }])).body.predictions).toEqual([101]);
      const exit = new Promise((done) => child.on('exit', done));
      child.kill('SIGINT');
      expect(await exit).toBe(0);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });

  it("parallel_workers (MLServer's): worker processes for Python models, from settings.json or model-settings.json", async () => {
    const repo = mkdtempSync(join(tmpdir(), 'redesmyn-parallel-'));
    try {
      cpSync(join(dir, 'iris-sklearn'), join(repo, 'iris-sklearn'), { recursive: true });
      cpSync(join(dir, 'iris-sklearn'), join(repo, 'iris-one'), { recursive: true });
      const one = join(repo, 'iris-one', 'model-settings.json');
      const settings = JSON.parse(readFileSync(one, 'utf8')) as Record<string, unknown>;
      writeFileSync(one, JSON.stringify({ ...settings, name: 'iris-one', parallel_workers: 1 }));
      writeFileSync(join(repo, 'settings.json'), JSON.stringify({ parallel_workers: 2 }));
      const s = await serve(repo, venv);
      try {
        const answer = await post(`${s.http}/predictions/iris-sklearn`, records(expected.rows.slice(0, 3)));
        expect(answer.status).toBe(200);
        expect(answer.body.predictions).toEqual(expected['iris-sklearn'].slice(0, 3));
        expect((await post(`${s.http}/predictions/iris-one`, records(expected.rows.slice(0, 3)))).status).toBe(200);
        const metrics = await (await fetch(`${s.http}/metrics`)).text();
        expect(metrics).toMatch(/redesmyn_workers_alive\{endpoint="\/predictions\/iris-sklearn[^"]*"\} 2/);
        expect(metrics).toMatch(/redesmyn_workers_alive\{endpoint="\/predictions\/iris-one[^"]*"\} 1/);
      } finally {
        s.child.kill('SIGTERM');
        expect(await s.exit).toBe(0);
      }
      writeFileSync(one, JSON.stringify({ ...settings, name: 'iris-one', parallel_workers: -1 }));
      const bad = await run(process.execPath, [cli, 'serve', repo, '--port', '0', '--venv', venv, '--strict']).catch((e) => e);
      expect(`${bad.stdout}${bad.stderr}`).toMatch(/iris-one\/model-settings.json: 'parallel_workers': expected an integer >= 0, got -1/);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });

  it('--version, --help, and exit code 2 for a missing or empty folder', async () => {
    const pkg = (await import(join(root, 'package.json'), { with: { type: 'json' } })).default;
    expect((await run(process.execPath, [cli, '--version'])).stdout.trim()).toBe(pkg.version);
    expect((await run(process.execPath, [cli, '--help'])).stdout).toMatch(/Usage: redesmyn serve \[DIR\]/);
    const missing = await run(process.execPath, [cli, 'serve', join(dir, 'nope')]).catch((e) => e);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/model repository '.*nope' does not exist/);
    const empty = await run(process.execPath, [cli, 'serve', join(dir, 'custom-python')]).catch((e) => e);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/has no model folders/);
    const badPort = await run(process.execPath, [cli, 'serve', dir, '--port', 'http']).catch((e) => e);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/--port expects a non-negative integer, got 'http'/);
  });
});
