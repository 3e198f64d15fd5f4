/**
 * `redesmyn score`: scores a file through an endpoint, as `endpoint.score()`
 * does, from the command line.
 *
 * ```
 * redesmyn score (--endpoint <module>#<export> | --repository DIR --model NAME [--version V])
 *   --input FILE --output FILE
 *   [--batch-size N] [--columns a,b] [--rejects FILE] [--param name=value ...]
 * ```
 *
 * With `--repository`, the model comes from a model repository as
 * `redesmyn serve DIR` would serve it (`--venv`, else $VIRTUAL_ENV, else
 * python3 on PATH, is the Python of Python runtimes): its default version,
 * or `--version`. Only that model is loaded.
 *
 * The module exports a configured `Endpoint` under `<export>` (default
 * `default`); if it also exports `serverOptions`, the server is made with
 * them (a Python endpoint names its `python` environment there). The
 * server listens on an ephemeral loopback port for the run's length.
 *
 * Several `--input`s, or a folder, score into the folder `--output`, one
 * part per input file (same name, own rejects file). `--shard K/N` (or
 * `--shards N` with K from `JOB_COMPLETION_INDEX`, as a Kubernetes Indexed
 * Job sets it) scores only the files whose position in that sorted list is
 * K modulo N, so N processes share a data set with no coordinator, and the
 * parts of all shards are those of one unsharded run. Each part is written
 * under a temporary name and renamed, so a failed shard is rerun alone.
 *
 * Exit codes: 0 the run completed (rejected rows, if any, are in the rejects
 * file and counted in the summary); 1 the run (or a part of it) failed and
 * wrote no output for it; 2 the command line or the endpoint module is wrong.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { Presets, SingleBar } from 'cli-progress';

import { Endpoint } from '../endpoint';
import { isStoreUrl, joinLocation, keyValues } from '../location';
import type { ScoreOptions, ScoreProgress } from '../score';
import { Server, type ServerOptions } from '../server';

export const SCORE_USAGE = `usage: redesmyn score --endpoint <module>#<export> --input FILE --output FILE
                      [--batch-size N] [--columns a,b] [--rejects FILE] [--param name=value ...]
       redesmyn score --repository DIR --model NAME [--version V] [--venv DIR] --input FILE --output FILE [...]
       redesmyn score ... --input DIR|FILE [--input FILE ...] --output DIR [--shard K/N | --shards N]

Several inputs (or a folder of .csv, .parquet, .ndjson/.jsonl, .arrow/.ipc/.feather
files) score into the folder --output, one part per input file under its own
name, with its own rejects file. --shard K/N scores every N-th of those files
from the K-th (0 <= K < N): N processes score one data set with no coordinator.
--shards N takes K from $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
--input and --output also take store URLs (s3://, gs://, az://, abfs://,
https://ACCOUNT.blob.core.windows.net/...; plain http(s):// for inputs only):
credentials come from each cloud's standard variables, or from
--store-option KEY=VALUE (object_store's option names, repeatable).`;

/** Input formats by extension, for the files of an input folder. */
const SCORED_EXTENSIONS = ['.csv', '.parquet', '.ndjson', '.jsonl', '.arrow', '.ipc', '.feather'];

/** This process's share of the inputs: files `i` with `i % count === index`. */
export interface Shard {
  index: number;
  count: number;
}

/**
 * `--shard K/N`, or `--shards N` with K from `JOB_COMPLETION_INDEX`; undefined
 * without either. A bad value is a UsageError naming the option or variable.
 */
export function shardOf(shard: string | undefined, shards: string | undefined, env: NodeJS.ProcessEnv): Shard | undefined {
  if (shard !== undefined && shards !== undefined) throw new UsageError('give --shard K/N or --shards N, not both');
  let index: number;
  let count: number;
  if (shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(shard);
    if (!m) throw new UsageError(`--shard expects K/N (shard K of N, counting from 0), got '${shard}'`);
    [index, count] = [Number(m[1]), Number(m[2])];
    if (count < 1 || index >= count) throw new UsageError(`--shard ${shard}: K must be at least 0 and below N = ${count} (shards 0/${count} to ${Math.max(count - 1, 0)}/${count})`);
    return { index, count };
  }
  if (shards === undefined) return undefined;
  if (!/^\d+$/.test(shards) || Number(shards) < 1) throw new UsageError(`--shards expects a number of shards >= 1, got '${shards}'`);
  count = Number(shards);
  const k = env.JOB_COMPLETION_INDEX;
  if (k === undefined || k === '') throw new UsageError('--shards N takes this shard\'s number from JOB_COMPLETION_INDEX, which is not set (give --shard K/N instead)');
  if (!/^\d+$/.test(k)) throw new UsageError(`JOB_COMPLETION_INDEX expects a shard number >= 0, got '${k}'`);
  index = Number(k);
  if (index >= count) throw new UsageError(`JOB_COMPLETION_INDEX ${index} is not below --shards ${count} (the Job's completions must equal --shards)`);
  return { index, count };
}

/** The input files, in a fixed order every shard computes alike; whether they score into a folder. */
function inputFiles(inputs: string[]): { files: string[]; folder: boolean } {
  const files: string[] = [];
  let folder = inputs.length > 1;
  for (const input of inputs) {
    if (isStoreUrl(input)) {
      files.push(input); // an object: read by the core, which names it if it is missing
      continue;
    }
    if (!existsSync(input)) throw new UsageError(`--input '${input}' does not exist`);
    if (statSync(input).isDirectory()) {
      folder = true;
      const found = readdirSync(input)
        .filter((f) => !f.startsWith('.') && SCORED_EXTENSIONS.includes(path.extname(f).toLowerCase()) && statSync(path.join(input, f)).isFile())
        .sort();
      if (found.length === 0) throw new UsageError(`--input '${input}' holds no file to score (${SCORED_EXTENSIONS.join(', ')})`);
      files.push(...found.map((f) => path.join(input, f)));
    } else files.push(input);
  }
  return { files, folder };
}

/** Where the command writes: replaceable in tests. */
export interface ScoreIo {
  out: (line: string) => void;
  err: NodeJS.WriteStream | { write: (text: string) => unknown; isTTY?: boolean };
}

class UsageError extends Error {}

/** Where the endpoint comes from: a module's export, or a model of a repository. */
type Source = { endpoint: string } | { repository: string; model: string; version?: string; venv?: string };

// A real dynamic import, kept as such when TypeScript compiles to CommonJS,
// so ES modules and (under tsx) TypeScript modules load.
const importModule = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<Record<string, unknown>>;

function isEndpoint(value: unknown): value is Endpoint {
  if (value instanceof Endpoint) return true;
  const v = value as { path?: unknown; schema?: unknown; bind?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.path === 'string' && typeof v.bind === 'function';
}

async function loadEndpoint(spec: string): Promise<{ endpoint: Endpoint; serverOptions: ServerOptions }> {
  const hash = spec.lastIndexOf('#');
  const file = hash > 0 ? spec.slice(0, hash) : spec;
  const name = hash > 0 ? spec.slice(hash + 1) : 'default';
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(pathToFileURL(path.resolve(file)).href);
  } catch (error) {
    throw new UsageError(`cannot load '${file}': ${error instanceof Error ? error.message : String(error)}`);
  }
  // A CommonJS module seen from import() keeps its exports under `default` too.
  const fromDefault = mod.default as Record<string, unknown> | undefined;
  const endpoint = mod[name] ?? (typeof fromDefault === 'object' && fromDefault !== null ? fromDefault[name] : undefined);
  if (!isEndpoint(endpoint)) throw new UsageError(`'${file}' exports no Endpoint named '${name}'`);
  const options = (mod.serverOptions ?? fromDefault?.serverOptions ?? {}) as ServerOptions;
  return { endpoint, serverOptions: options };
}

function parse(argv: string[]) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        endpoint: { type: 'string' },
        repository: { type: 'string' },
        model: { type: 'string' },
        version: { type: 'string' },
        venv: { type: 'string' },
        input: { type: 'string', multiple: true },
        shard: { type: 'string' },
        shards: { type: 'string' },
        output: { type: 'string' },
        'batch-size': { type: 'string' },
        columns: { type: 'string' },
        rejects: { type: 'string' },
        param: { type: 'string', multiple: true },
        'store-option': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) return undefined;
  if (values.endpoint !== undefined && values.repository !== undefined) throw new UsageError('give --endpoint or --repository, not both');
  if (values.endpoint === undefined && values.repository === undefined) throw new UsageError('--endpoint (or --repository with --model) is required');
  if (values.repository !== undefined && !values.model) throw new UsageError('--repository needs --model NAME');
  for (const only of ['model', 'version', 'venv'] as const) {
    if (values[only] !== undefined && values.repository === undefined) throw new UsageError(`--${only} goes with --repository`);
  }
  if (!values.input || values.input.length === 0) throw new UsageError('--input is required');
  if (!values.output) throw new UsageError('--output is required');
  const shard = shardOf(values.shard, values.shards, process.env);
  const batchSize = values['batch-size'] === undefined ? undefined : Number(values['batch-size']);
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0)) {
    throw new UsageError(`--batch-size must be a positive integer, got '${values['batch-size']}'`);
  }
  const params: Record<string, string> = {};
  for (const p of values.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param takes name=value, got '${p}'`);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }
  let storeOptions: Record<string, string>;
  try {
    storeOptions = keyValues(values['store-option'], '--store-option');
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const source: Source =
    values.repository !== undefined
      ? { repository: values.repository, model: values.model as string, version: values.version, venv: values.venv }
      : { endpoint: values.endpoint as string };
  return {
    source,
    inputs: values.input,
    output: values.output,
    shard,
    batchSize,
    columns: values.columns
      ?.split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
    rejects: values.rejects,
    params,
    storeOptions,
  };
}

/**
 * The endpoint of one model of a repository, on a server of the
 * repository's settings; exit code 2 when the folder or the model name is
 * wrong, 1 when the model is there but fails to load.
 */
async function repositoryEndpoint(source: Extract<Source, { repository: string }>): Promise<{ server: Server; endpoint: Endpoint } | { error: string; code: number }> {
  const { readServerSettings, modelFolders } = await import('../repository');
  const dir = path.resolve(source.repository);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { error: `model repository '${source.repository}' is not a folder`, code: 2 };
  try {
    // A broken settings.json is reported as `redesmyn serve` would, though scoring uses none of it.
    if (existsSync(path.join(dir, 'settings.json'))) readServerSettings(path.join(dir, 'settings.json'));
  } catch (error) {
    return { error: (error as Error).message, code: 2 };
  }
  const server = new Server({ host: '127.0.0.1', port: 0, metrics: false, python: source.venv === undefined ? undefined : { venv: source.venv } });
  let index;
  try {
    index = await server.registerRepository(dir, { models: [source.model] });
  } catch (error) {
    return { error: (error as Error).message, code: 1 };
  }
  if (index.length === 0) {
    const names = modelFolders(dir).map((f) => path.basename(f));
    return { error: `model repository '${source.repository}' has no model named '${source.model}' (its model folders: ${names.join(', ') || 'none'})`, code: 2 };
  }
  // Without --version: the model's default version (an unversioned model is its own default).
  const entry = index.find((m) => m.state === 'ready' && (source.version === undefined ? m.default !== false : m.version === source.version && m.path?.endsWith(`/versions/${m.version}`)));
  const endpoint = server.endpoints.find((e) => e.path === entry?.path) as Endpoint | undefined;
  if (!endpoint) {
    const failed = index.filter((m) => m.state === 'failed' && (source.version === undefined || m.version === source.version));
    if (failed.length > 0) return { error: failed.map((m) => `model '${m.name}'${m.version ? ` version ${m.version}` : ''} failed to load: ${m.reason}`).join('\n'), code: 1 };
    const versions = index.filter((m) => m.version !== undefined).map((m) => m.version);
    return { error: `model '${source.model}' has no version '${source.version}' (served versions: ${versions.join(', ') || 'none'})`, code: 2 };
  }
  return { server, endpoint };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Progress on a terminal: a bar with rows/s and ETA (a counter when the row count is unknown). */
function terminalProgress(stream: NodeJS.WriteStream): { update: (p: ScoreProgress) => void; stop: () => void } {
  let bar: SingleBar | undefined;
  return {
    update: (p) => {
      const rps = Math.round(p.rowsPerSecond).toLocaleString('en-US');
      if (!bar) {
        const format =
          p.totalRows === undefined
            ? 'scoring {value} rows | {rps} rows/s | {rejected} rejected'
            : 'scoring {bar} {percentage}% | {value}/{total} rows | {rps} rows/s | ETA {eta_formatted} | {rejected} rejected';
        bar = new SingleBar({ format, stream, etaBuffer: 20, hideCursor: true }, Presets.shades_classic);
        bar.start(p.totalRows ?? 0, p.rows, { rps, rejected: p.rejected });
      }
      bar.update(p.rows, { rps, rejected: p.rejected });
    },
    stop: () => bar?.stop(),
  };
}

/** Runs `redesmyn score` with `argv` (the arguments after `score`); resolves with the exit code. */
export async function scoreCommand(
  argv: string[],
  io: ScoreIo = { out: (line) => process.stdout.write(`${line}\n`), err: process.stderr },
): Promise<number> {
  let args;
  let loaded;
  try {
    args = parse(argv);
    if (!args) {
      io.out(SCORE_USAGE);
      return 0;
    }
    if ('endpoint' in args.source) loaded = await loadEndpoint(args.source.endpoint);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err.write(`redesmyn score: ${error.message}\n${SCORE_USAGE}\n`);
    return 2;
  }
  let server: Server;
  let endpoint: Endpoint;
  if (loaded) {
    server = new Server({ ...loaded.serverOptions, host: '127.0.0.1', port: 0, grpcPort: undefined });
    endpoint = loaded.endpoint;
    server.register(endpoint);
  } else {
    const found = await repositoryEndpoint(args.source as Extract<Source, { repository: string }>);
    if ('error' in found) {
      io.err.write(`redesmyn score: ${found.error}\n`);
      return found.code;
    }
    ({ server, endpoint } = found);
  }
  let plan: { input: string; output: string }[];
  try {
    const { files, folder } = inputFiles(args.inputs);
    const parts = folder || args.shard !== undefined;
    if (parts && args.rejects !== undefined) throw new UsageError('--rejects names one file; with several inputs each part has its own (<part>.rejects.csv)');
    if (parts && !isStoreUrl(args.output) && existsSync(args.output) && !statSync(args.output).isDirectory()) throw new UsageError(`--output '${args.output}' must be a folder when scoring several files or a shard`);
    const names = new Map<string, string>();
    for (const f of files) {
      const name = path.basename(f);
      if (parts && names.has(name)) throw new UsageError(`two inputs are named '${name}' (${names.get(name)} and ${f}); their parts would share one output`);
      names.set(name, f);
    }
    const mine = args.shard === undefined ? files : files.filter((_, i) => i % (args.shard as Shard).count === (args.shard as Shard).index);
    plan = parts ? mine.map((f) => ({ input: f, output: joinLocation(args.output, path.basename(f)) })) : [{ input: files[0], output: args.output }];
  } catch (error) {
    await server.stop();
    if (!(error instanceof UsageError)) throw error;
    io.err.write(`redesmyn score: ${error.message}\n${SCORE_USAGE}\n`);
    return 2;
  }
  const label = args.shard === undefined ? '' : `shard ${args.shard.index}/${args.shard.count}: `;
  if (plan.length === 0) {
    await server.stop();
    io.out(`${label}no input file falls to this shard (${args.inputs.join(', ')}); nothing to score`);
    return 0;
  }
  if ((plan.length > 1 || args.shard !== undefined) && !isStoreUrl(args.output)) mkdirSync(args.output, { recursive: true });
  const tty = io.err.isTTY === true;
  const failures: string[] = [];
  let totals = { rows: 0, scored: 0, rejected: 0, elapsedMs: 0 };
  try {
    await server.serve();
    for (const part of plan) {
      const bar = tty ? terminalProgress(io.err as NodeJS.WriteStream) : undefined;
      let lastLine = 0;
      const options: ScoreOptions = {
        input: part.input,
        output: part.output,
        storeOptions: args.storeOptions,
        params: args.params,
        progressIntervalMs: tty ? 200 : 1000,
        onProgress: (p) => {
          if (bar) return bar.update(p);
          if (p.elapsedMs - lastLine < 5000) return;
          lastLine = p.elapsedMs;
          const of = p.totalRows === undefined ? '' : ` of ${p.totalRows}`;
          io.err.write(`scoring ${part.input}: ${p.rows}${of} rows, ${p.rejected} rejected, ${Math.round(p.rowsPerSecond)} rows/s\n`);
        },
      };
      if (args.batchSize !== undefined) options.batchSize = args.batchSize;
      if (args.columns !== undefined) options.columns = args.columns;
      if (args.rejects !== undefined) options.rejects = args.rejects;
      try {
        const s = await endpoint.score(options);
        bar?.stop();
        const rejects = s.rejected > 0 && s.rejects ? ` (${s.rejected} rejected, see ${s.rejects})` : ', 0 rejected';
        io.out(`${label}scored ${s.scored} of ${s.rows} rows${rejects} in ${seconds(s.elapsedMs)}, ${Math.round(s.rowsPerSecond)} rows/s -> ${s.output}`);
        totals = { rows: totals.rows + s.rows, scored: totals.scored + s.scored, rejected: totals.rejected + s.rejected, elapsedMs: totals.elapsedMs + s.elapsedMs };
      } catch (error) {
        bar?.stop();
        // One part failing leaves no output under its name; the others go on, and the exit code says a rerun is needed.
        const message = `${part.input}: ${error instanceof Error ? error.message : String(error)}`;
        failures.push(message);
        io.err.write(`redesmyn score: ${message}\n`);
      }
    }
    if (plan.length > 1) {
      io.out(
        `${label}${plan.length - failures.length} of ${plan.length} files scored: ${totals.scored} of ${totals.rows} rows, ${totals.rejected} rejected, in ${seconds(totals.elapsedMs)} -> ${args.output}`,
      );
    }
    if (failures.length > 0) {
      io.err.write(`redesmyn score: ${label}${failures.length} of ${plan.length} files failed; run the same command again to score them (finished parts are rewritten alike)\n`);
      return 1;
    }
    return 0;
  } catch (error) {
    io.err.write(`redesmyn score: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await server.stop();
  }
}
