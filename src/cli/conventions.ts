/**
 * What `redesmyn serve` takes from the place it runs in: KServe's
 * arguments (`--model_name`, `--model_dir`, `--http_port`, `--grpc_port`,
 * `--model_format`), the environment KServe and MLServer set
 * (`MLSERVER_MODEL_NAME`, `MLSERVER_MODEL_URI`, `MLSERVER_MODELS_DIR`,
 * `MLSERVER_HTTP_PORT`, `MLSERVER_GRPC_PORT`, `MLSERVER_HOST`,
 * `MLSERVER_MODEL_IMPLEMENTATION`, `MLSERVER_LOAD_MODELS_AT_STARTUP`) and
 * redesmyn's own (`REDESMYN_MANAGEMENT_TOKEN`, `REDESMYN_DRAIN_SECONDS`),
 * and what the model folder holds: a repository of model folders, one
 * model folder (a `model-settings.json` at its root, as KServe's storage
 * initializer leaves it at `/mnt/models`), only an artifact whose format
 * the runtime names, or nothing (models come later by API).
 *
 * Precedence: the command line, then the environment, then the folder's
 * `settings.json`, then the defaults. A bad value is a {@link ConventionError}
 * naming the option or variable; the CLI prints it and exits 2.
 */
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join, resolve } from 'node:path';

import { MLSERVER_RUNTIMES } from '../repository/runtimes';

export class ConventionError extends Error {}

/** KServe's model format names (and redesmyn's runtime names) to the runtime that serves them. */
export const MODEL_FORMATS: Record<string, string> = {
  sklearn: 'sklearn',
  'scikit-learn': 'sklearn',
  xgboost: 'xgboost',
  lightgbm: 'lightgbm',
  onnx: 'onnx',
  tensorflow: 'tensorflow',
  keras: 'tensorflow',
  mlflow: 'mlflow',
  typescript: 'typescript',
};

/** The files each runtime reads as its artifact, by extension. */
const ARTIFACTS: Record<string, string[]> = {
  sklearn: ['.joblib', '.pkl', '.pickle'],
  xgboost: ['.json', '.ubj'],
  lightgbm: ['.txt', '.bst'],
  onnx: ['.onnx'],
  tensorflow: ['.keras', '.h5'],
  typescript: ['.mjs', '.js'],
};

/** Extensions that name one format alone (a `.json` or `.txt` could be several). */
const UNAMBIGUOUS: Record<string, string> = {
  '.joblib': 'sklearn',
  '.pkl': 'sklearn',
  '.pickle': 'sklearn',
  '.ubj': 'xgboost',
  '.onnx': 'onnx',
  '.keras': 'tensorflow',
  '.h5': 'tensorflow',
  '.mjs': 'typescript',
};

/** The values `redesmyn serve` read from its command line that the conventions complete. */
export interface ServeArgs {
  dir?: string;
  /** The folder came as `redesmyn serve DIR`: a repository, unless a model name or format says one model. */
  repositoryOnly?: boolean;
  modelName?: string;
  modelFormat?: string;
  port?: string;
  grpcPort?: string;
  host?: string;
  drainSeconds?: string;
}

export interface ServePlan {
  /** The folder `registerRepository` reads (a generated one for a single model). */
  repository: string;
  /** The folder the user gave. */
  source: string;
  /** How the folder was read. */
  layout: 'repository' | 'model-folder' | 'artifact' | 'empty';
  /** The single model's name, when one. */
  modelName?: string;
  /** The generated folder to remove at exit (a single model's), when one. */
  generated?: string;
  host?: string;
  port?: number;
  grpcPort?: number;
  /** false: start with no model loaded (the repository API loads them). */
  loadAtStartup: boolean;
  managementToken?: string;
  /** How long a stopping server keeps answering before it closes (ms). */
  drainMs: number;
}

function port(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value)) throw new ConventionError(`${name} expects a non-negative integer, got '${value}'`);
  if (n > 65535) throw new ConventionError(`${name} expects a port number (0-65535), got '${value}'`);
  return n;
}

function bool(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^(true|1|yes|on)$/i.test(value)) return true;
  if (/^(false|0|no|off)$/i.test(value)) return false;
  throw new ConventionError(`${name} expects true or false, got '${value}'`);
}

function modelFolderNames(dir: string): string[] {
  return readdirSync(dir).filter((e) => !e.startsWith('.') && statSync(join(dir, e)).isDirectory() && existsSync(join(dir, e, 'model-settings.json')));
}

/** The runtime a format names, or an error listing the formats served. */
export function runtimeOfFormat(format: string, from: string): string {
  const runtime = MODEL_FORMATS[format.toLowerCase()] ?? MLSERVER_RUNTIMES[format];
  if (runtime === undefined) {
    throw new ConventionError(`${from}: unknown model format '${format}'; redesmyn serves ${[...new Set(Object.keys(MODEL_FORMATS))].join(', ')} (or MLServer's ${Object.keys(MLSERVER_RUNTIMES).join(', ')})`);
  }
  return runtime;
}

/** `MLmodel`'s flavour with a file redesmyn's runtimes read: the runtime and the file. */
function mlflowArtifact(dir: string): { runtime: string; uri: string } {
  const file = join(dir, 'MLmodel');
  if (!existsSync(file)) throw new ConventionError(`model format mlflow: '${dir}' has no MLmodel file`);
  const text = readFileSync(file, 'utf8');
  // A flavour is a two-space key under `flavors:`; its file is one of its keys.
  const flavours: Record<string, { key: string; runtime: string }> = {
    sklearn: { key: 'pickled_model', runtime: 'sklearn' },
    xgboost: { key: 'data', runtime: 'xgboost' },
    lightgbm: { key: 'data', runtime: 'lightgbm' },
  };
  const block = text.split(/^flavors:\s*$/m)[1] ?? '';
  for (const [flavour, { key, runtime }] of Object.entries(flavours)) {
    const at = block.match(new RegExp(`^  ${flavour}:\\s*\\n((?:    .*\\n?)*)`, 'm'));
    const value = at?.[1].match(new RegExp(`^    ${key}:\\s*(\\S+)`, 'm'))?.[1];
    if (value) return { runtime, uri: resolve(dir, value.replace(/^['"]|['"]$/g, '')) };
  }
  throw new ConventionError(`model format mlflow: ${file} has none of the flavours redesmyn serves (${Object.keys(flavours).join(', ')})`);
}

/** The one artifact of `runtime` in `dir` (a SavedModel folder for tensorflow). */
function findArtifact(dir: string, runtime: string, files: string[]): string {
  if (runtime === 'tensorflow') {
    if (existsSync(join(dir, 'saved_model.pb'))) return dir;
    // TF Serving's layout: numbered version folders, the highest served.
    const versions = readdirSync(dir)
      .filter((e) => /^\d+$/.test(e) && existsSync(join(dir, e, 'saved_model.pb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(dir, versions[0]);
  }
  const wanted = ARTIFACTS[runtime] ?? [];
  const found = files.filter((f) => wanted.includes(extname(f).toLowerCase()));
  if (found.length === 1) return join(dir, found[0]);
  const what = found.length === 0 ? `no ${runtime} artifact (${wanted.join(', ')})` : `several ${runtime} artifacts (${found.join(', ')}); keep one, or add a model-settings.json naming it`;
  throw new ConventionError(`'${dir}' holds ${what}; its files: ${files.join(', ') || 'none'}`);
}

/** A temporary repository holding one model folder named `name`. */
function repositoryOf(name: string): { root: string; folder: string } {
  const root = mkdtempSync(join(process.env.REDESMYN_TMPDIR ?? tmpdir(), 'redesmyn-serve-'));
  return { root, folder: join(root, name) };
}

/**
 * Reads the conventions: throws a {@link ConventionError} naming the
 * variable or option at fault.
 */
export function servePlan(args: ServeArgs, env: NodeJS.ProcessEnv, settings: { management?: { token: string } } = {}): ServePlan {
  const httpPort = port(args.port, '--port') ?? port(env.MLSERVER_HTTP_PORT, 'MLSERVER_HTTP_PORT');
  const grpcPort = port(args.grpcPort, '--grpc-port') ?? port(env.MLSERVER_GRPC_PORT, 'MLSERVER_GRPC_PORT');
  const loadAtStartup = bool(env.MLSERVER_LOAD_MODELS_AT_STARTUP, 'MLSERVER_LOAD_MODELS_AT_STARTUP') ?? true;
  const drain = args.drainSeconds ?? env.REDESMYN_DRAIN_SECONDS;
  const drainName = args.drainSeconds !== undefined ? '--drain-seconds' : 'REDESMYN_DRAIN_SECONDS';
  if (drain !== undefined && drain !== '' && !/^\d+(\.\d+)?$/.test(drain)) throw new ConventionError(`${drainName} expects seconds (a number >= 0), got '${drain}'`);
  const drainMs = drain ? Math.round(Number(drain) * 1000) : 0;
  const token = env.REDESMYN_MANAGEMENT_TOKEN;
  if (token !== undefined && token !== '' && token.length < 16) throw new ConventionError('REDESMYN_MANAGEMENT_TOKEN expects at least 16 characters');
  const managementToken = token || undefined;
  const managed = managementToken !== undefined || settings.management !== undefined;

  // The folder: the command line, else KServe's single model, else MLServer's models folder.
  const fromEnv = env.MLSERVER_MODEL_URI ? 'MLSERVER_MODEL_URI' : env.MLSERVER_MODELS_DIR ? 'MLSERVER_MODELS_DIR' : undefined;
  const source = args.dir ?? (fromEnv ? (env[fromEnv] as string) : '.');
  const from = args.repositoryOnly ? 'model repository' : args.dir !== undefined ? 'model folder' : (fromEnv ?? 'model folder');
  if (!existsSync(source)) throw new ConventionError(`${from} '${source}' does not exist`);
  if (!statSync(source).isDirectory()) throw new ConventionError(`${from} '${source}' is not a folder`);
  try {
    accessSync(source, constants.R_OK | constants.X_OK);
  } catch {
    const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
    throw new ConventionError(`${from} '${source}' cannot be read by this process${uid}: give it read access (a volume's fsGroup, or chmod o+rx)`);
  }
  const modelName = args.modelName ?? (env.MLSERVER_MODEL_NAME || undefined);
  if (modelName !== undefined && !/^[A-Za-z0-9][\w.-]*$/.test(modelName)) {
    throw new ConventionError(`${args.modelName !== undefined ? '--model_name' : 'MLSERVER_MODEL_NAME'} expects a model name (letters, digits, '.', '_', '-'), got '${modelName}'`);
  }
  const formatFrom = args.modelFormat ? '--model_format' : 'MLSERVER_MODEL_IMPLEMENTATION';
  const format = args.modelFormat || env.MLSERVER_MODEL_IMPLEMENTATION || undefined;
  const base: Omit<ServePlan, 'repository' | 'layout'> = {
    source,
    host: args.host ?? (env.MLSERVER_HOST || undefined),
    port: httpPort,
    grpcPort,
    loadAtStartup,
    managementToken,
    drainMs,
  };

  if (!loadAtStartup && !managed) {
    throw new ConventionError(
      'MLSERVER_LOAD_MODELS_AT_STARTUP=false leaves the models to the repository API (POST /v2/repository/models/{name}/load), ' +
        'which is part of the management API: set REDESMYN_MANAGEMENT_TOKEN (16 characters at least) or management in settings.json',
    );
  }
  // `redesmyn serve DIR` alone serves a repository, as it always has; a
  // folder that KServe or MLServer names (or a model name or format given)
  // may also be one model folder or one artifact.
  const single = !args.repositoryOnly || modelName !== undefined || format !== undefined;
  const isModelFolder = single && existsSync(join(source, 'model-settings.json'));
  const folders = isModelFolder ? [] : modelFolderNames(source);
  if (folders.length > 0) {
    if (format !== undefined) runtimeOfFormat(format, formatFrom);
    return { ...base, repository: source, layout: 'repository' };
  }
  if (!single) {
    if (managed) return { ...base, repository: source, layout: 'empty' };
    throw new ConventionError(
      `model repository '${source}' has no model folders (subfolders with a model-settings.json); ` +
        'to serve the folder itself as one model (a model-settings.json or one artifact), give it as --model_dir (or give --model_name / --model_format), ' +
        'or turn the management API on (REDESMYN_MANAGEMENT_TOKEN) to load models by API',
    );
  }
  const files = readdirSync(source).filter((e) => !e.startsWith('.') && e !== 'settings.json');
  if (isModelFolder) {
    // One model folder: served under its settings' name, or the name KServe gives.
    const file = join(source, 'model-settings.json');
    let settings: Record<string, unknown>;
    try {
      settings = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new ConventionError(`${file}: ${(error as Error).message}`);
    }
    const name = modelName ?? (typeof settings.name === 'string' ? settings.name : basename(resolve(source)));
    const { root, folder } = repositoryOf(name);
    // The name KServe routes by wins: then a folder whose entries link to the original, with only the settings' name changed.
    if (typeof settings.name === 'string' && settings.name !== name) {
      // The artifact by its own path: a file reached through a link would lie outside the generated folder.
      const parameters = (typeof settings.parameters === 'object' && settings.parameters !== null ? settings.parameters : {}) as Record<string, unknown>;
      const uri = typeof parameters.uri === 'string' ? resolve(source, parameters.uri) : undefined;
      return servedCopy(base, root, name, source, { ...settings, name, parameters: uri === undefined ? parameters : { ...parameters, uri } });
    }
    symlinkSync(resolve(source), folder);
    return { ...base, repository: root, layout: 'model-folder', modelName: name, generated: root };
  }
  if (files.length === 0) {
    if (!managed) {
      throw new ConventionError(
        `model folder '${source}' is empty: nothing to serve. Put a model there (a model-settings.json, model folders, or one artifact with --model_format), ` +
          'or turn the management API on (REDESMYN_MANAGEMENT_TOKEN) to load models by API',
      );
    }
    return { ...base, repository: source, layout: 'empty' };
  }
  // Only an artifact: the format comes from the runtime (KServe's modelFormat), else an extension that names one.
  let runtime: string;
  if (format !== undefined) runtime = runtimeOfFormat(format, formatFrom);
  else if (files.includes('MLmodel')) runtime = 'mlflow';
  else {
    const guessed = new Set(files.map((f) => UNAMBIGUOUS[extname(f).toLowerCase()]).filter((r) => r !== undefined));
    if (files.includes('saved_model.pb')) guessed.add('tensorflow');
    if (guessed.size !== 1) {
      throw new ConventionError(
        `model folder '${source}' has no model folders (subfolders with a model-settings.json), no model-settings.json, and its files (${files.join(', ')}) do not say which format they are: ` +
          'give --model_format (KServe: the InferenceService\'s modelFormat) or add a model-settings.json',
      );
    }
    runtime = [...guessed][0] as string;
  }
  let uri: string;
  if (runtime === 'mlflow') ({ runtime, uri } = mlflowArtifact(resolve(source)));
  else uri = findArtifact(resolve(source), runtime, files);
  if (runtime === 'onnx') {
    throw new ConventionError(`model format onnx needs the model's inputs declared: add a model-settings.json beside ${basename(uri)} with "runtime": "onnx" and "inputs"`);
  }
  if (runtime === 'python') {
    throw new ConventionError(`${formatFrom} '${format}' is a custom Python class: add a model-settings.json naming it as "implementation"`);
  }
  const name = modelName ?? basename(resolve(source));
  const { root } = repositoryOf(name);
  const plan = servedCopy(base, root, name, source, { name, runtime, parameters: { uri } });
  return { ...plan, layout: 'artifact' };
}

/** A generated model folder `<root>/<name>` with `settings`, its other entries links into `source`. */
function servedCopy(base: Omit<ServePlan, 'repository' | 'layout'>, root: string, name: string, source: string, settings: Record<string, unknown>): ServePlan {
  const folder = join(root, name);
  mkdirSync(folder, { recursive: true });
  for (const entry of readdirSync(source)) {
    if (entry === 'model-settings.json' || entry === 'settings.json') continue;
    symlinkSync(resolve(source, entry), join(folder, entry));
  }
  writeFileSync(join(folder, 'model-settings.json'), JSON.stringify(settings, null, 2));
  return { ...base, repository: root, layout: 'model-folder', modelName: name, generated: root };
}
