import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py, type ScoreProgress } from '../src';

const root = join(__dirname, '..');
const venvPython = join(root, '.venv/bin/python');
const python = { venv: join(root, '.venv'), path: [join(root, 'examples/iris')] };

const Iris = new Schema({
  sepal_length: Schema.f64(),
  sepal_width: Schema.f64(),
  petal_length: Schema.f64(),
  petal_width: Schema.f64(),
});

/** Runs Python in the venv with `dir` as its working directory; returns its stdout. */
function py3(dir: string, script: string): string {
  return execFileSync(venvPython, ['-c', script], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 });
}

/** Reads `file` (any scoring format) and checks its `species` against the iris model's own predict on its features. */
const CHECK = (file: string) => `
import json, sys, joblib, numpy as np, polars as pl
f = ${JSON.stringify(file)}
df = (pl.read_parquet(f) if f.endswith(".parquet") else pl.read_csv(f) if f.endswith(".csv")
      else pl.read_ndjson(f) if f.endswith(".ndjson") else pl.read_ipc(f))
m = joblib.load(${JSON.stringify(join(root, 'examples/iris/models/iris/1/1/model.joblib'))})
names = np.array(["setosa", "versicolor", "virginica"])
X = df.select(["sepal_length", "sepal_width", "petal_length", "petal_width"]).to_numpy()
expected = names[m.predict(X)]
print(json.dumps({"rows": df.height, "columns": df.columns,
  "mismatches": int((df["prediction"].to_numpy() != expected).sum()), "ids": df["id"].head(3).to_list()}))`;

// 20 000 iris rows (the 150 of the set, tiled and jittered), with an id;
// the CSV copy has two planted bad rows: data rows 6 and 10.
const MAKE = `
import numpy as np, polars as pl
from sklearn.datasets import load_iris
X, _ = load_iris(return_X_y=True)
rng = np.random.default_rng(7)
X = np.tile(X, (134, 1))[:20000] + rng.normal(0, 0.05, (20000, 4))
df = pl.DataFrame({"id": np.arange(20000), "sepal_length": X[:, 0], "sepal_width": X[:, 1],
                   "petal_length": X[:, 2], "petal_width": X[:, 3]})
df.write_parquet("iris.parquet", row_group_size=5000)
csv = df.with_columns(pl.col("sepal_length").cast(pl.String), pl.col("petal_width").cast(pl.String))
csv = csv.with_columns(
    pl.when(pl.col("id") == 5).then(pl.lit("abc")).otherwise(pl.col("sepal_length")).alias("sepal_length"),
    pl.when(pl.col("id") == 9).then(None).otherwise(pl.col("petal_width")).alias("petal_width"))
csv.write_csv("iris.csv")
`;

describe('scoring files through an endpoint', () => {
  let dir: string;
  let server: Server;
  const iris = new Endpoint({ path: '/iris', schema: Iris, batch: { maxSize: 4096, maxDelayMs: 2 }, handler: py.handler('iris_handlers:predict') });
  // A TypeScript handler: petal area.
  const area = new Endpoint({
    path: '/area',
    schema: Iris,
    handler: (b) => {
      const out = new Float64Array(b.length);
      for (let i = 0; i < b.length; i++) out[i] = b.columns.petal_length[i] * b.columns.petal_width[i];
      return out;
    },
  });
  // Fails every batch holding the row with petal_length 999 (twice: then its rows are rejected).
  const picky = new Endpoint({
    path: '/picky',
    schema: Iris,
    batch: { maxDelayMs: 0 },
    handler: (b) => {
      if (b.columns.petal_length.includes(999)) throw new Error('cannot score 999');
      return Array.from(b.columns.petal_length, (x) => x + 1);
    },
  });

  const pickyWhole = new Endpoint({
    path: '/picky-whole',
    schema: Iris,
    batch: { maxDelayMs: 0, isolatePoison: false },
    handler: (b) => {
      if (b.columns.petal_length.includes(999)) throw new Error('cannot score 999');
      return Array.from(b.columns.petal_length, (x) => x + 1);
    },
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redesmyn-score-'));
    py3(dir, MAKE);
    server = new Server({ host: '127.0.0.1', port: 0, python });
    server.register(iris).register(area).register(picky).register(pickyWhole);
    await server.serve();
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("scores a Parquet file with the Python iris model exactly as the model's own predict", async () => {
    const seen: ScoreProgress[] = [];
    const output = join(dir, 'out.parquet');
    const summary = await iris.score({ input: join(dir, 'iris.parquet'), output, batchSize: 1000, onProgress: (p) => seen.push(p), progressIntervalMs: 5 });
    expect(summary).toMatchObject({ rows: 20000, scored: 20000, rejected: 0, totalRows: 20000, output });
    expect(summary.rejects).toBeUndefined();
    expect(seen.at(-1)?.rows).toBe(20000);
    const check = JSON.parse(py3(dir, CHECK(output)));
    expect(check).toEqual({
      rows: 20000,
      columns: ['id', 'sepal_length', 'sepal_width', 'petal_length', 'petal_width', 'prediction'],
      mismatches: 0,
      ids: [0, 1, 2],
    });
    expect(existsSync(join(dir, 'out.parquet.rejects.csv'))).toBe(false);
  });

  it('scores a CSV with planted bad rows: the rest is predicted, the bad rows are rejected with row number and reason', async () => {
    const output = join(dir, 'out.csv');
    const rejects = join(dir, 'bad.csv');
    const summary = await iris.score({ input: join(dir, 'iris.csv'), output, rejects, batchSize: 3000 });
    expect(summary).toMatchObject({ rows: 20000, scored: 19998, rejected: 2, rejects });
    const check = JSON.parse(py3(dir, CHECK(output)));
    expect(check.rows).toBe(19998);
    expect(check.mismatches).toBe(0);
    const lines = readFileSync(rejects, 'utf8').trim().split('\n');
    expect(lines).toEqual([
      'row,reason',
      expect.stringMatching(/^6,"field 'sepal_length': cannot read .*abc.* as f64"$/),
      `10,"field 'petal_width': missing value"`,
    ]);
  });

  it('scores with a TypeScript handler into NDJSON and Arrow, keeping only the chosen columns', async () => {
    const output = join(dir, 'area.ndjson');
    const summary = await area.score({ input: join(dir, 'iris.parquet'), output, columns: ['id'], batchSize: 777 });
    expect(summary.scored).toBe(20000);
    const rows = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: number; prediction: number });
    expect(Object.keys(rows[0])).toEqual(['id', 'prediction']);
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 20000 }, (_, i) => i));
    const expected = JSON.parse(
      py3(dir, `import polars as pl, json; d = pl.read_parquet("iris.parquet"); print(json.dumps((d["petal_length"] * d["petal_width"]).to_list()))`),
    ) as number[];
    expect(rows.map((r) => r.prediction)).toEqual(expected);

    const arrow = join(dir, 'area.arrow');
    await area.score({ input: join(dir, 'iris.csv'), output: arrow, columns: ['id'] });
    const back = JSON.parse(py3(dir, `import polars as pl, json; d = pl.read_ipc("area.arrow"); print(json.dumps([d.height, d.columns]))`));
    expect(back).toEqual([19998, ['id', 'prediction']]);
  });

  it('bisects a failing request: only the row that fails alone is rejected, with the handler message', async () => {
    const input = join(dir, 'picky.csv');
    const lines = ['sepal_length,sepal_width,petal_length,petal_width'];
    for (let i = 0; i < 50; i++) lines.push(`1,2,${i === 23 ? 999 : i},4`);
    writeFileSync(input, lines.join('\n') + '\n');
    const summary = await picky.score({ input, output: join(dir, 'picky.out.csv'), batchSize: 10 });
    expect(summary).toMatchObject({ rows: 50, scored: 49, rejected: 1 });
    expect(summary.retried).toBeGreaterThanOrEqual(1);
    const rejects = readFileSync(summary.rejects!, 'utf8').trim().split('\n');
    expect(rejects).toHaveLength(2);
    expect(rejects[1]).toMatch(/^24,"the handler failed on this row: .*cannot score 999/);
    const out = readFileSync(join(dir, 'picky.out.csv'), 'utf8').trim().split('\n');
    expect(out[0]).toBe('sepal_length,sepal_width,petal_length,petal_width,prediction');
    expect(out).toHaveLength(50);
    // Every other row scored, in order.
    expect(out.slice(1).map((l) => Number(l.split(',')[2]))).toEqual(Array.from({ length: 50 }, (_, i) => i).filter((i) => i !== 23));
  });

  it('without poison isolation, retries a failing request once, then rejects all its rows and goes on', async () => {
    const input = join(dir, 'picky.csv');
    const summary = await pickyWhole.score({ input, output: join(dir, 'picky-whole.out.csv'), batchSize: 10 });
    expect(summary).toMatchObject({ rows: 50, scored: 40, rejected: 10 });
    expect(summary.retried).toBeGreaterThanOrEqual(1);
    const rejects = readFileSync(summary.rejects!, 'utf8').trim().split('\n');
    expect(rejects.slice(1).map((l) => Number(l.split(',')[0]))).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
    expect(rejects[1]).toContain('cannot score 999');
    expect(readFileSync(join(dir, 'picky-whole.out.csv'), 'utf8').trim().split('\n')).toHaveLength(41);
  });

  it('fails a file the schema cannot read without leaving an output', async () => {
    const input = join(dir, 'wrong.csv');
    writeFileSync(input, 'a,b\n1,2\n');
    await expect(iris.score({ input, output: join(dir, 'wrong.out.parquet') })).rejects.toThrow(/no column 'sepal_length'/);
    expect(readdirSync(dir).filter((f) => f.startsWith('wrong.out') || f.startsWith('.wrong.out'))).toEqual([]);
  });
});

/** A module the CLI loads: a TypeScript handler, slow when SLOW is set. */
const MODULE = (slow: boolean) => `
import { Endpoint, Schema } from ${JSON.stringify(join(root, 'src/index.ts'))};
export const noop = new Endpoint({
  path: '/noop',
  schema: new Schema({ x: Schema.f64() }),
  handler: async (b) => {
    ${slow ? 'await new Promise((r) => setTimeout(r, 30));' : ''}
    return b.columns.x;
  },
});
`;

/** Runs scoreCommand in a tsx child; resolves with its exit code, output and peak RSS (bytes). */
function cli(args: string[], onStart?: (child: ReturnType<typeof spawn>) => void) {
  const code = `
const mod = await import(${JSON.stringify(join(root, 'src/cli/score.ts'))});
const scoreCommand = mod.scoreCommand ?? mod.default.scoreCommand;
const code = await scoreCommand(${JSON.stringify(args)});
process.stdout.write('maxrss ' + process.resourceUsage().maxRSS * 1024 + '\\n');
process.exit(code);`;
  return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; maxRss: number }>((resolve) => {
    // `node --import tsx`, not the tsx command, whose own child a SIGKILL would leave running.
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    onStart?.(child);
    child.on('exit', (code, signal) => {
      const m = /maxrss (\d+)/.exec(stdout);
      resolve({ code, signal, stdout, stderr, maxRss: m ? Number(m[1]) : 0 });
    });
  });
}

describe('redesmyn score (scoreCommand)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'redesmyn-score-cli-'));
    writeFileSync(join(dir, 'fast.ts'), MODULE(false));
    writeFileSync(join(dir, 'slow.ts'), MODULE(true));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('scores 3 000 000 rows (about 800 MB decoded) in bounded memory', async () => {
    // Each row: an id, x, and a distinct 250-character note; written by Polars' streaming engine.
    py3(
      dir,
      `import polars as pl
pl.LazyFrame().select(pl.int_range(0, 3_000_000, dtype=pl.Int64).alias("id")).with_columns(
  (pl.col("id") * 0.5).alias("x"),
  pl.concat_str([pl.col("id").cast(pl.String).str.zfill(10)] * 25).alias("note"),
).sink_parquet("big.parquet", row_group_size=100_000)`,
    );
    const decoded = 3_000_000 * (8 + 8 + 250);
    const r = await cli(['--endpoint', `${join(dir, 'fast.ts')}#noop`, '--input', join(dir, 'big.parquet'), '--output', join(dir, 'big.out.parquet'), '--columns', 'id', '--batch-size', '50000']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^scored 3000000 of 3000000 rows, 0 rejected in [\d.]+ s, \d+ rows\/s -> .*big\.out\.parquet$/m);
    console.log(`scored 3M rows (${(decoded / 1e6).toFixed(0)} MB decoded): peak RSS ${(r.maxRss / 1e6).toFixed(0)} MB; ${r.stdout.split('\n')[0]}`);
    expect(r.maxRss).toBeGreaterThan(0);
    expect(r.maxRss).toBeLessThan(decoded / 2);
    const back = JSON.parse(py3(dir, `import polars as pl, json; d = pl.read_parquet("big.out.parquet"); print(json.dumps([d.height, d.columns, d["prediction"][2999999]]))`));
    expect(back).toEqual([3_000_000, ['id', 'prediction'], 1_499_999.5]);
  });

  it('leaves no file under the final name when killed mid-run, and a rerun scores every row', async () => {
    const lines = ['x'];
    for (let i = 0; i < 200_000; i++) lines.push(String(i));
    writeFileSync(join(dir, 'slow.csv'), lines.join('\n') + '\n');
    const output = join(dir, 'slow.out.csv');
    const r = await cli(['--endpoint', `${join(dir, 'slow.ts')}#noop`, '--input', join(dir, 'slow.csv'), '--output', output, '--batch-size', '1000'], (child) => {
      // Kill once the temporary output exists: the run is writing.
      const timer = setInterval(() => {
        if (readdirSync(dir).some((f) => f.startsWith('.slow.out.csv.'))) {
          clearInterval(timer);
          child.kill('SIGKILL');
        }
      }, 20);
      child.on('exit', () => clearInterval(timer));
    });
    expect(r.signal).toBe('SIGKILL');
    expect(existsSync(output)).toBe(false);
    // Restarted cleanly: the same command, run again, scores every row once.
    const again = await cli(['--endpoint', `${join(dir, 'fast.ts')}#noop`, '--input', join(dir, 'slow.csv'), '--output', output, '--batch-size', '1000']);
    expect(again.code).toBe(0);
    const rows = readFileSync(output, 'utf8').trim().split('\n');
    expect(rows).toHaveLength(200_001);
    expect(rows[0]).toBe('x,prediction');
    expect(rows[200_000]).toBe('199999.0,199999.0');
  });

  it('answers bad usage with exit code 2 and a failed run with 1', async () => {
    const usage = await cli(['--input', 'x.csv']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--endpoint \(or --repository with --model\) is required/);
    const missing = await cli(['--endpoint', `${join(dir, 'fast.ts')}#nope`, '--input', 'a.csv', '--output', 'b.csv']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/exports no Endpoint named 'nope'/);
    writeFileSync(join(dir, 'y.csv'), 'y\n1\n');
    const failed = await cli(['--endpoint', `${join(dir, 'fast.ts')}#noop`, '--input', join(dir, 'y.csv'), '--output', join(dir, 'y.out.csv')]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/no column 'x'/);
    expect(existsSync(join(dir, 'y.out.csv'))).toBe(false);
  });

  it('scores through one model of a repository (--repository, --model, --version), loading only that model', async () => {
    const repo = join(dir, 'repo');
    const model = (name: string, settings: object) => {
      mkdirSync(join(repo, name), { recursive: true });
      writeFileSync(join(repo, name, 'model-settings.json'), JSON.stringify(settings));
    };
    model('triple', { runtime: 'typescript', parameters: { uri: './model.mjs' }, inputs: [{ name: 'x', datatype: 'FP64', shape: [-1] }] });
    writeFileSync(join(repo, 'triple', 'model.mjs'), 'export function predict(batch) { return Float64Array.from(batch.columns.x, (v) => v * 3); }\n');
    const columns = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
    model('iris', { runtime: 'sklearn', parameters: { uri: 'model.joblib' }, inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }], columns, versionPolicy: { latest: { num_versions: 2 } } });
    for (const v of ['1', '2']) {
      mkdirSync(join(repo, 'iris', v));
      copyFileSync(join(root, 'examples/iris/models/iris/1/1/model.joblib'), join(repo, 'iris', v, 'model.joblib'));
    }
    // Would fail to load; scoring another model never reads it.
    model('broken', { runtime: 'sklearn', parameters: { uri: 'missing.joblib' } });
    writeFileSync(join(dir, 'xs.csv'), 'x\n1\n2.5\n-4\n');
    const triple = await cli(['--repository', repo, '--model', 'triple', '--input', join(dir, 'xs.csv'), '--output', join(dir, 'xs.out.csv')]);
    expect(triple.stderr).toBe('');
    expect(triple.code).toBe(0);
    expect(readFileSync(join(dir, 'xs.out.csv'), 'utf8')).toBe('x,prediction\n1.0,3.0\n2.5,7.5\n-4.0,-12.0\n');

    py3(dir, `import polars as pl\npl.DataFrame({"sepal_length": [5.1, 6.7, 6.3], "sepal_width": [3.5, 3.0, 2.9], "petal_length": [1.4, 5.0, 5.6], "petal_width": [0.2, 1.7, 1.8]}).write_parquet("flowers.parquet")`);
    const iris = await cli(['--repository', repo, '--model', 'iris', '--version', '1', '--venv', join(root, '.venv'), '--input', join(dir, 'flowers.parquet'), '--output', join(dir, 'flowers.out.parquet')]);
    expect(iris.stderr).toBe('');
    expect(iris.code).toBe(0);
    const check = py3(
      dir,
      `import json, joblib, polars as pl
df = pl.read_parquet("flowers.out.parquet")
m = joblib.load(${JSON.stringify(join(root, 'examples/iris/models/iris/1/1/model.joblib'))})
print(json.dumps([df.columns[-1], df[df.columns[-1]].to_list(), m.predict(df.select(${JSON.stringify(columns)}).to_numpy()).tolist()]))`,
    );
    const [, got, expected] = JSON.parse(check) as [string, number[], number[]];
    expect(got).toEqual(expected);

    const args = (...more: string[]) => ['--repository', repo, ...more, '--input', join(dir, 'xs.csv'), '--output', join(dir, 'never.csv')];
    const unknown = await cli(args('--model', 'nope'));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/has no model named 'nope' \(its model folders: broken, iris, triple\)/);
    const version = await cli(args('--model', 'iris', '--version', '9', '--venv', join(root, '.venv')));
    expect(version.code).toBe(2);
    expect(version.stderr).toMatch(/model 'iris' has no version '9' \(served versions: 2, 1\)/);
    const broken = await cli(args('--model', 'broken'));
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/model 'broken' failed to load: .*parameters\.uri/);
    const both = await cli(args('--model', 'iris', '--endpoint', 'x.ts'));
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --endpoint or --repository, not both/);
    expect(existsSync(join(dir, 'never.csv'))).toBe(false);
  });
});
