#!/usr/bin/env node
/**
 * `redesmyn serve [DIR]`: serves a model repository (see README, "Serving a
 * folder of models"); `redesmyn score ...` scores a file (src/cli/score.ts,
 * README "Scoring files"). Exit codes of serve: 0 after a graceful stop (SIGINT/SIGTERM),
 * 1 when the server fails, 2 for a bad command line, a missing or invalid
 * folder, or an invalid root settings.json.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `Usage: redesmyn serve [DIR] [options]
       redesmyn score --endpoint <module>#<export> --input FILE --output FILE [...]
       redesmyn score --repository DIR --model NAME --input FILE --output FILE [...]
       redesmyn --version

Serves every model folder of DIR (default: .): each subfolder holding a
model-settings.json (MLServer's layout). DIR/settings.json may set host,
port, grpcPort, workers, parallel_workers (Python worker processes per
Python model), metrics, logLevel and management ({token, host?, port?}: the
management API, whose changes are written back into DIR); options win over
it.

Options:
  --host HOST        interface to listen on (default 127.0.0.1)
  --port N           HTTP port (default 8080; 0 picks a free one)
  --grpc-port N      V2 gRPC port (default: off; 0 picks a free one)
  --workers N        HTTP worker threads (default: one per CPU)
  --log-level LEVEL  error, warn (default), info, debug or trace
  --venv DIR         the Python virtual environment Python runtimes run in
                     (default: $VIRTUAL_ENV, else python3 on PATH)
  --watch            poll DIR: a newer version folder the version policy
                     selects takes over the unversioned routes once loaded
  --watch-interval MS  poll interval (default 1000)
  --strict           exit (code 2) if any model fails to load, instead of
                     serving the others
  -h, --help         this help
  -v, --version      the version of redesmyn
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
  const [command, dir = '.', ...rest] = positionals;
  if (command !== 'serve') fail(`unknown command '${command}'\n\n${USAGE}`);
  if (rest.length > 0) fail(`serve takes one folder, got ${positionals.length - 1}\n\n${USAGE}`);
  if (!existsSync(dir)) fail(`model repository '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) fail(`model repository '${dir}' is not a folder`);

  // Loaded after the checks above: `--help` and bad command lines answer without the native addon.
  const { Server } = await import('./server');
  const { readServerSettings, modelFolders } = await import('./repository');
  const rootSettings = join(dir, 'settings.json');
  let settings;
  try {
    settings = existsSync(rootSettings) ? readServerSettings(rootSettings) : {};
  } catch (error) {
    fail((error as Error).message);
  }
  if (modelFolders(dir).length === 0) fail(`model repository '${dir}' has no model folders (subfolders with a model-settings.json)`);
  const logLevel = values['log-level'] ?? settings.logLevel;
  if (logLevel !== undefined && !/^(error|warn|info|debug|trace)$/.test(logLevel)) fail(`--log-level expects error, warn, info, debug or trace, got '${logLevel}'`);

  const server = new Server({
    host: values.host ?? settings.host,
    port: integer(values.port, 'port') ?? settings.port ?? 8080,
    grpcPort: integer(values['grpc-port'], 'grpc-port') ?? settings.grpcPort,
    workers: integer(values.workers, 'workers') ?? settings.workers,
    metrics: settings.metrics,
    log: logLevel === undefined ? undefined : { level: logLevel },
    python: { venv: values.venv, workers: settings.pythonWorkers },
    management: settings.management,
  });
  let index;
  try {
    const intervalMs = integer(values['watch-interval'], 'watch-interval');
    index = await server.registerRepository(dir, { watch: values.watch ? { intervalMs } : false });
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
  if (failed.length === index.length) fail('no model of the repository could be served', 2);

  try {
    await server.serve();
  } catch (error) {
    fail(`could not start: ${(error as Error).message}`, 1);
  }
  const ready = index.filter((m) => m.state === 'ready').length;
  process.stderr.write(
    `${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: 'serving', models: ready, failed: failed.length, port: server.port, grpcPort: server.grpcPort })}\n`,
  );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${JSON.stringify({ level: 'INFO', target: 'redesmyn::repository', message: `${signal}: stopping` })}\n`);
    await server.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => fail(error instanceof Error ? (error.stack ?? error.message) : String(error), 1));
