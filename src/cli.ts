#!/usr/bin/env node
/**
 * `redesmyn serve [DIR]`: serves a model repository, one model folder or one
 * artifact (see README, "Serving a folder of models", and docs/deploy.md for
 * KServe's and MLServer's conventions, read in src/cli/conventions.ts);
 * `redesmyn score ...` scores a file (src/cli/score.ts, README "Scoring
 * files"). Exit codes of serve: 0 after a graceful stop (SIGINT/SIGTERM,
 * after the drain delay), 1 when the server fails, 2 for a bad command line
 * or environment variable, a missing, empty or invalid folder, or an
 * invalid root settings.json.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { isStoreUrl, keyValues } from './location';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `Usage: redesmyn serve [DIR] [options]
       redesmyn score --endpoint <module>#<export> --input FILE --output FILE [...]
       redesmyn score --repository DIR --model NAME --input FILE --output FILE [...]
       redesmyn --version

Serves DIR (default: $MLSERVER_MODEL_URI, else $MLSERVER_MODELS_DIR, else .):
  - a repository: every subfolder holding a model-settings.json (MLServer's
    layout) is a model;
  - with --model_dir (or $MLSERVER_MODEL_URI, or --model_name or
    --model_format given), also one model folder: a model-settings.json in
    the folder itself (KServe's /mnt/models), served under --model_name
    when given; or one artifact (model.joblib, model.json, model.txt,
    model.keras, a SavedModel, an MLflow MLmodel folder) whose format
    --model_format names;
  - an empty folder, when the management API is on (models come by API).
DIR/settings.json may set host, port, grpcPort, workers, parallel_workers
(Python worker processes per Python model), metrics, logLevel and management
({token, host?, port?}: the management API, whose changes are written back
into DIR); the environment wins over it, options over both.

Options:
  --host HOST        interface to listen on (default 127.0.0.1; $MLSERVER_HOST)
  --port N           HTTP port (default 8080; 0 picks a free one; $MLSERVER_HTTP_PORT)
  --grpc-port N      V2 gRPC port (default: off; 0 picks a free one; $MLSERVER_GRPC_PORT)
  --workers N        HTTP worker threads (default: one per CPU)
  --log-level LEVEL  error, warn (default), info, debug or trace
  --venv DIR         the Python virtual environment Python runtimes run in
                     (default: $VIRTUAL_ENV, else python3 on PATH)
  --watch            poll DIR: a newer version folder the version policy
                     selects takes over the unversioned routes once loaded
  --watch-interval MS  poll interval (default 1000)
  --store-option K=V   DIR may be a store URL (s3://bucket/models, gs://...,
                     az://container/models): an object_store option for it
                     (repeatable); credentials otherwise come from each
                     cloud's standard variables (docs/stores.md)
  --store-cache DIR  where a store repository is copied (default
                     $REDESMYN_STORE_CACHE, else <tmpdir>/redesmyn-repositories)
  --store-max-bytes N  refuse (before downloading) an object of the store
                     repository larger than N bytes
  --strict           exit (code 2) if any model fails to load, instead of
                     serving the others
  --drain-seconds S  on SIGTERM, keep answering S seconds before stopping
                     (default 0; $REDESMYN_DRAIN_SECONDS)
  -h, --help         this help
  -v, --version      the version of redesmyn

KServe's names: --model_name NAME ($MLSERVER_MODEL_NAME), --model_dir DIR,
--http_port N, --grpc_port N, --model_format F (sklearn, xgboost, lightgbm,
onnx, tensorflow, mlflow, typescript; $MLSERVER_MODEL_IMPLEMENTATION takes
MLServer's class names too). MLSERVER_LOAD_MODELS_AT_STARTUP=false starts
with no model loaded (POST /v2/repository/models/{name}/load loads one);
REDESMYN_MANAGEMENT_TOKEN turns the management API on.
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`redesmyn: ${message}\n`);
  process.exit(code);
}

function integer(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) fail(`--${option} expects a non-negative integer, got '${value}'\n\n${USAGE}`);
  return Number(value);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'score') {
    const { scoreCommand } = await import('./cli/score');
    process.exitCode = await scoreCommand(process.argv.slice(3));
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'grpc-port': { type: 'string' },
        workers: { type: 'string' },
        'log-level': { type: 'string' },
        venv: { type: 'string' },
        strict: { type: 'boolean' },
        watch: { type: 'boolean' },
        'watch-interval': { type: 'string' },
        'drain-seconds': { type: 'string' },
        'store-option': { type: 'string', multiple: true },
        'store-cache': { type: 'string' },
        'store-max-bytes': { type: 'string' },
        // KServe's argument names (underscores), and the same with dashes.
        model_name: { type: 'string' },
        'model-name': { type: 'string' },
        model_dir: { type: 'string' },
        'model-dir': { type: 'string' },
        model_format: { type: 'string' },
        'model-format': { type: 'string' },
        http_port: { type: 'string' },
        grpc_port: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    fail(`${(error as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return;
  }
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    if (!values.help) process.exitCode = 2;
    return;
  }
  const [command, positionalDir, ...rest] = positionals;
  if (command !== 'serve') fail(`unknown command '${command}'\n\n${USAGE}`);
  if (rest.length > 0) fail(`serve takes one folder, got ${positionals.length - 1}\n\n${USAGE}`);
  const modelDir = values.model_dir ?? values['model-dir'];
  if (positionalDir !== undefined && modelDir !== undefined && positionalDir !== modelDir) fail(`give the folder once: '${positionalDir}' and --model_dir '${modelDir}'`);

  const { servePlan, ConventionError } = await import('./cli/conventions');
  let folder = positionalDir ?? modelDir;
  // A repository in an object store: served from a local copy (settings.json included).
  let remote: import('./repository/remote').RemoteRepository | undefined;
  if (folder !== undefined && isStoreUrl(folder)) {
    let options: Record<string, string> = {};
    try {
      options = keyValues(values['store-option'], '--store-option');
    } catch (error) {
      fail((error as Error).message);
    }
    const { RemoteRepository } = await import('./repository/remote');
    try {
      remote = await RemoteRepository.open(folder, { options, cacheDir: values['store-cache'], maxBytes: integer(values['store-max-bytes'], 'store-max-bytes') });
    } catch (error) {
      fail((error as Error).message, 1);
    }
    folder = remote.dir;
    process.stderr.write(`${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: 'repository copied', url: remote.url, ...remote.firstSync })}\n`);
  }
  // settings.json of the folder given (or of the folder the environment names), read before the conventions use its management key.
  const settingsDir = folder ?? process.env.MLSERVER_MODEL_URI ?? process.env.MLSERVER_MODELS_DIR ?? '.';
  const { readServerSettings } = await import('./repository/settings');
  const rootSettings = join(settingsDir, 'settings.json');
  let settings;
  try {
    settings = existsSync(rootSettings) && statSync(rootSettings).isFile() ? readServerSettings(rootSettings) : {};
  } catch (error) {
    fail((error as Error).message);
  }
  let plan;
  try {
    plan = servePlan(
      {
        dir: folder,
        repositoryOnly: positionalDir !== undefined,
        modelName: values.model_name ?? values['model-name'],
        modelFormat: values.model_format ?? values['model-format'],
        port: values.port ?? values.http_port,
        grpcPort: values['grpc-port'] ?? values.grpc_port,
        host: values.host,
        drainSeconds: values['drain-seconds'],
      },
      process.env,
      settings,
    );
  } catch (error) {
    if (error instanceof ConventionError) fail(error.message);
    throw error;
  }
  const generated = plan.generated;
  // Links and a settings file of our own: removed however the process ends (the model's files are only linked).
  if (generated !== undefined) process.on('exit', () => rmSync(generated, { recursive: true, force: true }));
  const logLevel = values['log-level'] ?? settings.logLevel;
  if (logLevel !== undefined && !/^(error|warn|info|debug|trace)$/.test(logLevel)) fail(`--log-level expects error, warn, info, debug or trace, got '${logLevel}'`);

  // Loaded after the checks above: `--help` and bad command lines answer without the native addon.
  const { Server } = await import('./server');
  const management = plan.managementToken !== undefined ? { ...settings.management, token: plan.managementToken } : settings.management;
  const server = new Server({
    host: plan.host ?? settings.host,
    port: plan.port ?? settings.port ?? 8080,
    grpcPort: plan.grpcPort ?? settings.grpcPort,
    workers: integer(values.workers, 'workers') ?? settings.workers,
    metrics: settings.metrics,
    log: logLevel === undefined ? undefined : { level: logLevel },
    python: { venv: values.venv, workers: settings.pythonWorkers },
    management,
    telemetry: settings.telemetry,
  });
  // Handlers first: a signal that came before them would end the process by its default action, with no drain.
  let serving = false;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second signal during the drain: stop now (what was accepted is still answered).
      process.stderr.write(`${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: `${signal}: stopping now` })}\n`);
      drained?.();
      return;
    }
    stopping = true;
    if (!serving) {
      // Stopped while loading: nothing was accepted yet.
      process.stderr.write(`${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: `${signal} before serving: exiting` })}\n`);
      process.exit(0);
    }
    if (plan.drainMs > 0) {
      // Not ready at once: load balancers and Kubernetes endpoints stop sending new requests.
      server.drain();
      process.stderr.write(`${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: `${signal}: draining`, drainMs: plan.drainMs })}\n`);
      // Requests keep being answered while the load balancer takes this replica out.
      await new Promise<void>((done) => {
        drained = done;
        setTimeout(done, plan.drainMs);
      });
    }
    process.stderr.write(`${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: `${signal}: stopping` })}\n`);
    await server.stop();
    process.exit(0);
  };
  let drained: (() => void) | undefined;
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  let index;
  try {
    const intervalMs = integer(values['watch-interval'], 'watch-interval');
    index = await server.registerRepository(plan.repository, {
      watch: values.watch ? { intervalMs } : false,
      remote,
      // Models left to the repository API start unloaded.
      models: plan.loadAtStartup ? undefined : [],
    });
  } catch (error) {
    fail((error as Error).message);
  }
  for (const model of index) {
    const line =
      model.state === 'ready'
        ? { level: 'INFO', target: 'redesmyn::repository', message: 'model ready', model: model.name, version: model.version, runtime: model.runtime, path: model.path }
        : { level: 'ERROR', target: 'redesmyn::repository', message: 'model failed', model: model.name, version: model.version, runtime: model.runtime, reason: model.reason };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  }
  const failed = index.filter((m) => m.state === 'failed');
  if (values.strict && failed.length > 0) fail(`${failed.length} model(s) failed to load (--strict)`);
  if (index.length > 0 && failed.length === index.length) fail(`no model of '${plan.source}' could be served (${failed.map((m) => `${m.name}: ${m.reason}`).join('; ')})`, 2);
  if (index.length === 0 && plan.loadAtStartup && management === undefined) {
    fail(`model folder '${plan.source}' has no model folders (subfolders with a model-settings.json) and no management API to load models later`);
  }

  try {
    await server.serve();
  } catch (error) {
    fail(`could not start: ${(error as Error).message}`, 1);
  }
  serving = true;
  const ready = index.filter((m) => m.state === 'ready').length;
  process.stderr.write(
    `${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: 'serving', models: ready, failed: failed.length, layout: plan.layout, port: server.port, grpcPort: server.grpcPort })}\n`,
  );
}

main().catch((error: unknown) => fail(error instanceof Error ? (error.stack ?? error.message) : String(error), 1));
