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
 * Exit codes: 0 the run completed (rejected rows, if any, are in the rejects
 * file and counted in the summary); 1 the run failed and wrote no output;
 * 2 the command line or the endpoint module is wrong.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { Presets, SingleBar } from 'cli-progress';

import { Endpoint } from '../endpoint';
import type { ScoreOptions, ScoreProgress } from '../score';
import { Server, type ServerOptions } from '../server';

export const SCORE_USAGE = `usage: redesmyn score --endpoint <module>#<export> --input FILE --output FILE
                      [--batch-size N] [--columns a,b] [--rejects FILE] [--param name=value ...]
       redesmyn score --repository DIR --model NAME [--version V] [--venv DIR] --input FILE --output FILE [...]`;

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
        input: { type: 'string' },
        output: { type: 'string' },
        'batch-size': { type: 'string' },
        columns: { type: 'string' },
        rejects: { type: 'string' },
        param: { type: 'string', multiple: true },
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
  for (const required of ['input', 'output'] as const) {
    if (!values[required]) throw new UsageError(`--${required} is required`);
  }
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
  const source: Source =
    values.repository !== undefined
      ? { repository: values.repository, model: values.model as string, version: values.version, venv: values.venv }
      : { endpoint: values.endpoint as string };
  return {
    source,
    input: values.input as string,
    output: values.output as string,
    batchSize,
    columns: values.columns
      ?.split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
    rejects: values.rejects,
    params,
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
  const tty = io.err.isTTY === true;
  const bar = tty ? terminalProgress(io.err as NodeJS.WriteStream) : undefined;
  let lastLine = 0;
  const options: ScoreOptions = {
    input: args.input,
    output: args.output,
    params: args.params,
    progressIntervalMs: tty ? 200 : 1000,
    onProgress: (p) => {
      if (bar) return bar.update(p);
      if (p.elapsedMs - lastLine < 5000) return;
      lastLine = p.elapsedMs;
      const of = p.totalRows === undefined ? '' : ` of ${p.totalRows}`;
      io.err.write(`scoring: ${p.rows}${of} rows, ${p.rejected} rejected, ${Math.round(p.rowsPerSecond)} rows/s\n`);
    },
  };
  if (args.batchSize !== undefined) options.batchSize = args.batchSize;
  if (args.columns !== undefined) options.columns = args.columns;
  if (args.rejects !== undefined) options.rejects = args.rejects;
  try {
    await server.serve();
    const s = await endpoint.score(options);
    bar?.stop();
    const rejects = s.rejected > 0 && s.rejects ? ` (${s.rejected} rejected, see ${s.rejects})` : ', 0 rejected';
    io.out(
      `scored ${s.scored} of ${s.rows} rows${rejects} in ${seconds(s.elapsedMs)}, ` +
        `${Math.round(s.rowsPerSecond)} rows/s -> ${s.output}`,
    );
    return 0;
  } catch (error) {
    bar?.stop();
    io.err.write(`redesmyn score: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await server.stop();
  }
}
