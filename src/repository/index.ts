/**
 * A model repository: a folder of model folders, each with a
 * `model-settings.json` (MLServer's layout), turned into endpoints. Reading
 * settings is strict (settings.ts), the runtime comes from the table
 * (runtimes.ts), and Python models are loaded once at start-up in a child
 * process (python/redesmyn_runtimes/_preflight.py) so that a missing
 * package, a missing artifact or a load that raises marks only that model
 * failed, with the reason, while the others serve.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CacheConfig, FsClient } from '../cache';
import { isStoreUrl } from '../location';
import { Endpoint, type BatchOptions, type OutputTensor } from '../endpoint';
import { Pipeline } from '../pipeline';
import { py, RUNTIMES_PATH } from '../python';
import { onnx } from '../onnx';
import { Field, Schema, type Fields } from '../schema';
import { storeCacheDir } from './remote';
import { resolveRuntime, type Runtime } from './runtimes';
import { readModelSettings, SettingsError, type ModelSettings, type TensorSettings, type VersionPolicy } from './settings';

export { readServerSettings, readModelSettings, SettingsError } from './settings';
export type { ServerSettings, ModelSettings, TensorSettings, PredictionCacheSettings } from './settings';
export { MLSERVER_RUNTIMES, RUNTIMES } from './runtimes';

/** One model of a repository, as `registerRepository` found it. */
export interface RepositoryModel {
  name: string;
  /** The version folder served (`models/<name>/<version>/`), or `parameters.version` for an unversioned folder. */
  version?: string;
  /** Whether the unversioned routes (`/predictions/<name>`, `/v2/models/<name>`) serve this version. */
  default?: boolean;
  /** The runtime serving it (`sklearn`, `xgboost`, …), when known. */
  runtime?: string;
  folder: string;
  state: 'ready' | 'failed';
  /** Why it failed. */
  reason?: string;
  /** Its native path, `/predictions/<name>`, when ready. */
  path?: string;
}

/** What a model needs from the server to be served. */
export interface RepositoryHost {
  /** May return a promise (a model added while serving): it is awaited. */
  register(endpoint: Endpoint<Fields, string, unknown>): unknown;
  /** The Python the embedded interpreter runs (for the start-up check). */
  pythonExecutable(): string;
}

const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>;

const FIELD: Record<string, () => Field<unknown, unknown>> = {
  BOOL: Schema.bool,
  BYTES: Schema.str,
  INT8: Schema.i8,
  INT16: Schema.i16,
  INT32: Schema.i32,
  INT64: Schema.i64,
  UINT8: Schema.u8,
  UINT16: Schema.u16,
  UINT32: Schema.u32,
  UINT64: Schema.u64,
  FP32: Schema.f32,
  FP64: Schema.f64,
} as unknown as Record<string, () => Field<unknown, unknown>>;

/** The model folders of `dir`: its subfolders holding a `model-settings.json`, by name. */
export function modelFolders(dir: string): string[] {
  return readdirSync(dir)
    .filter((entry) => !entry.startsWith('.') && statSync(join(dir, entry)).isDirectory() && existsSync(join(dir, entry, 'model-settings.json')))
    .sort()
    .map((entry) => join(dir, entry));
}

/**
 * The schema of a model from its declared V2 inputs: one field per `[-1]`
 * (or `[-1, 1]`) input, or, for a single `[-1, F]` input (MLServer's
 * usual shape), F fields read in order (named by `columns`, else
 * `<input>_<i>`). Without declared inputs, `features` (what the model says
 * it takes) gives F FP64 fields.
 */
export function schemaOf(settings: ModelSettings, file: string, features?: { count: number; names?: string[] }): Schema<Fields> {
  let inputs: TensorSettings[] | undefined = settings.inputs;
  if (inputs === undefined || inputs.length === 0) {
    if (!features) throw new SettingsError(file, 'inputs', 'missing; expected a list of V2 tensors {name, datatype, shape} (this runtime cannot tell what its model takes)');
    inputs = [{ name: 'input-0', datatype: 'FP64', shape: [-1, features.count] }];
  }
  const fields: Record<string, Field<unknown, unknown>> = {};
  const field = (t: TensorSettings, at: string) => {
    const make = FIELD[t.datatype];
    if (!make) throw new SettingsError(file, `${at}.datatype`, `expected a V2 datatype, got ${JSON.stringify(t.datatype)}`);
    return make();
  };
  const last = (t: TensorSettings) => t.shape[t.shape.length - 1];
  if (inputs.length === 1 && inputs[0].shape.length === 2 && last(inputs[0]) > 1) {
    const t = inputs[0];
    const names = settings.columns ?? (settings.inputs ? undefined : features?.names);
    if (names && names.length !== last(t)) {
      throw new SettingsError(file, 'columns', `expected ${last(t)} names (the input's second dimension), got ${names.length}`);
    }
    for (let i = 0; i < last(t); i++) fields[names?.[i] ?? `${t.name}_${i}`] = field(t, 'inputs[0]');
  } else {
    inputs.forEach((t, i) => {
      if (!(t.shape.length === 1 || (t.shape.length === 2 && last(t) === 1))) {
        throw new SettingsError(file, `inputs[${i}].shape`, `expected [-1] or [-1, 1] per input, or one [-1, F] input; got ${JSON.stringify(t.shape)}`);
      }
      fields[t.name] = field(t, `inputs[${i}]`);
    });
  }
  return new Schema(fields as Fields);
}

/** A model's batching from its settings (MLServer's seconds as milliseconds). */
function batchOf(settings: ModelSettings): BatchOptions {
  return {
    maxSize: settings.maxBatchSize,
    maxDelayMs: settings.maxBatchTime === undefined ? undefined : settings.maxBatchTime * 1000,
    timeoutMs: settings.timeoutMs,
    maxQueue: settings.maxQueue,
    maxConcurrent: settings.maxConcurrent,
  };
}

/**
 * A pipeline of the repository: its `steps` name other models of it. Its
 * inputs are its declared `inputs`, else its first step's model's.
 */
function pipelineFactory(p: Planned, schemaOfModel?: (name: string) => Schema<Fields> | undefined): (path: string, version?: string) => Endpoint<Fields, string, unknown> {
  const { settings, file, model } = p;
  const steps = settings.steps ?? [];
  const first = steps[0]?.model;
  const declared = settings.inputs?.length ? schemaOf(settings, file) : undefined;
  // Made when registered: after every other model of the repository is ready.
  return (path: string, version?: string) => {
    const inputs = declared ?? (first !== undefined ? schemaOfModel?.(first) : undefined);
    if (inputs === undefined) {
      throw new SettingsError(file, 'inputs', first === undefined ? 'missing; a pipeline that begins with an ensemble declares its inputs' : `missing; its first step's model '${first}' is not a ready model of the repository`);
    }
    try {
      return new Pipeline({
        name: model.name,
        path,
        version,
        inputs,
        outputs: settings.outputs,
        steps: steps.map((s) => (s.combine !== undefined ? { name: s.name, combine: s.combine, of: s.of ?? [], weights: s.weights } : { name: s.name, model: s.model as string, version: s.version, inputs: s.inputs })),
        batch: batchOf(settings),
        predictionCache: settings.cache,
      }) as unknown as Endpoint<Fields, string, unknown>;
    } catch (error) {
      throw new SettingsError(file, 'steps', (error as Error).message);
    }
  };
}

/** The numbered version folders of a model folder, highest first. */
export function versionFolders(folder: string): number[] {
  return readdirSync(folder)
    .filter((entry) => /^\d+$/.test(entry) && statSync(join(folder, entry)).isDirectory())
    .map(Number)
    .sort((a, b) => b - a);
}

/** The versions a policy selects among `available` (highest first). */
export function selectVersions(available: number[], policy: VersionPolicy = { latest: { num_versions: 1 } }): number[] {
  if ('latest' in policy) return available.slice(0, policy.latest.num_versions);
  if ('all' in policy) return available;
  return available.filter((v) => policy.specific.versions.includes(v));
}

export interface Planned {
  model: RepositoryModel;
  /** Versioned models: the folder's number. */
  served?: string;
  settings: ModelSettings;
  file: string;
  runtime: Runtime;
  /** The artifact's absolute path (or the settings file, for custom classes). */
  artifact: string;
}

/**
 * Reads the settings that apply to one model (or one version folder of it),
 * fills `model`'s name and runtime, and resolves its artifact. Throws a
 * SettingsError saying what is wrong.
 */
export async function planVersion(model: RepositoryModel, parentFile: string, version: string | undefined): Promise<Planned> {
  const vdir = model.folder;
  // A version folder may carry its own model-settings.json; else the model's applies, its uri read from the version folder.
  const file = version !== undefined && existsSync(join(vdir, 'model-settings.json')) ? join(vdir, 'model-settings.json') : parentFile;
  const settings = readModelSettings(file);
  model.name = settings.name ?? model.name;
  if (version === undefined) model.version = settings.parameters.version;
  const runtime = resolveRuntime(settings);
  if ('error' in runtime) throw new SettingsError(file, runtime.key, runtime.error);
  model.runtime = runtime.name;
  let artifact = file;
  if (runtime.kind !== 'pipeline' && (runtime.kind !== 'python' || runtime.artifact === 'uri')) {
    if (settings.parameters.uri === undefined) throw new SettingsError(file, 'parameters.uri', "missing; expected the model file's path, relative to the model's folder");
    const uri = settings.parameters.uri;
    // A store URL: downloaded (once per version of the object) into the store cache.
    artifact = isStoreUrl(uri) ? await fetchArtifact(file, uri) : resolve(vdir, uri);
    if (!existsSync(artifact)) throw new SettingsError(file, 'parameters.uri', `expected an existing file; '${artifact}' does not exist`);
    if (runtime.name === 'tensorflow' && statSync(artifact).isDirectory()) {
      // A SavedModel is a folder; the artifact cache follows its graph file (a change to it reloads the model).
      artifact = join(artifact, 'saved_model.pb');
      if (!existsSync(artifact)) throw new SettingsError(file, 'parameters.uri', `expected a Keras file or a SavedModel folder; '${dirname(artifact)}' has no saved_model.pb`);
    }
  }
  return { model, served: version, settings, file, runtime, artifact };
}

/** The local copy of the object `uri` names (credentials from the cloud's standard variables). */
async function fetchArtifact(file: string, uri: string): Promise<string> {
  const { fetchObject } = require('../../binding') as typeof import('../../binding');
  const cacheDir = join(storeCacheDir(), 'artifacts');
  try {
    return await fetchObject({ url: uri, cacheDir });
  } catch (error) {
    throw new SettingsError(file, 'parameters.uri', (error as Error).message);
  }
}

/** The start-up check's request for one planned model. */
function checkSpec(p: Planned, id: string): object | undefined {
  if (p.runtime.kind !== 'python') return undefined;
  const r = p.runtime;
  return { id, module: r.module, handler: r.artifact === 'uri' ? r.handler : undefined, artifact: p.artifact, requires: r.requires };
}

export interface Checked {
  error?: string;
  features?: number | null;
  feature_names?: string[];
  output?: { datatype: string; width: number | null };
  /** The V2 inputs and outputs a runtime reports after load (an mlserver.MLModel's, an MLflow signature's). */
  inputs?: TensorSettings[];
  outputs?: TensorSettings[];
  /** An mlserver.MLModel with its own predict_stream: served as a streaming model. */
  stream?: boolean;
}

/** Loads one planned model in a child Python (what it takes and answers); undefined for non-Python runtimes. */
export async function checkPlanned(python: string, p: Planned): Promise<Checked | undefined> {
  const spec = checkSpec(p, '0');
  if (!spec) return undefined;
  return (await check(python, [spec]))['0'];
}

function check(python: string, specs: object[]): Promise<Record<string, Checked>> {
  return new Promise((done, fail) => {
    const child = execFile(
      python,
      ['-m', 'redesmyn_runtimes._preflight'],
      { env: { ...process.env, PYTHONPATH: [RUNTIMES_PATH, process.env.PYTHONPATH].filter(Boolean).join(':') }, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error) return fail(new Error(`the start-up check of the repository's Python models failed (${python}): ${stderr.trim() || error.message}`));
        try {
          const results = JSON.parse(stdout) as (Checked & { id: string })[];
          done(Object.fromEntries(results.map((r) => [r.id, r])));
        } catch {
          fail(new Error(`the start-up check printed no result: ${stderr.trim()}`));
        }
      },
    );
    child.stdin?.end(JSON.stringify(specs));
  });
}

/** Reads, checks and registers every model of `dir` on `host`; returns the index. */
/** A versioned model whose default version a hot reload may move to a newer version. */
export interface Followed {
  name: string;
  folder: string;
  parentFile: string;
  policy?: VersionPolicy;
  /** Pinned by `defaultVersion`: never moved. */
  pinned: boolean;
  /** The default version. */
  current: number;
  /** The versions served. */
  served: number[];
  plan: Planned;
  /** Versions that failed, by their folder's last change, not tried again until it changes. */
  failed: Map<number, number>;
}

export interface Registered {
  index: RepositoryModel[];
  followed: Followed[];
  /** Traffic weights by model name, from the settings. */
  traffic: Map<string, Record<string, number>>;
  /** The default version of each versioned model: what its unversioned routes serve without traffic weights. */
  defaults: Map<string, string>;
}

/**
 * Reads, checks and registers every model of `dir` (or only the folder
 * `only`, or only the models named in `models`) on `host`; returns the index.
 */
export async function registerRepository(host: RepositoryHost, dir: string, options: { only?: string; models?: readonly string[] } = {}): Promise<Registered> {
  const named = options.models;
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`model repository '${dir}' is not a folder`);
  const index: RepositoryModel[] = [];
  const planned: Planned[] = [];
  const traffic = new Map<string, Record<string, number>>();
  const versioning = new Map<string, { folder: string; parentFile: string; policy?: VersionPolicy; pinned: boolean }>();
  const folders = options.only === undefined ? modelFolders(root) : [join(root, options.only)];
  for (const folder of folders) {
    const parentFile = join(folder, 'model-settings.json');
    const folderName = folder.split('/').pop() as string;
    let versions: { dir: string; version?: string }[] = [{ dir: folder }];
    let defaultVersion: string | undefined;
    try {
      const parent = readModelSettings(parentFile);
      const available = versionFolders(folder);
      if (available.length > 0) {
        const selected = selectVersions(available, parent.versionPolicy);
        if (selected.length === 0) throw new SettingsError(parentFile, 'versionPolicy', `selects none of the version folders ${available.join(', ')}`);
        versions = selected.map((v) => ({ dir: join(folder, String(v)), version: String(v) }));
        defaultVersion = parent.defaultVersion;
        versioning.set(folder, { folder, parentFile, policy: parent.versionPolicy, pinned: defaultVersion !== undefined });
        if (defaultVersion !== undefined && !selected.map(String).includes(defaultVersion)) {
          throw new SettingsError(parentFile, 'defaultVersion', `expected one of the served versions ${selected.join(', ')}, got ${defaultVersion}`);
        }
        for (const version of Object.keys(parent.traffic ?? {})) {
          if (!selected.map(String).includes(version)) throw new SettingsError(parentFile, `traffic.${version}`, `expected one of the served versions ${selected.join(', ')}`);
        }
        if (parent.traffic) traffic.set(parent.name ?? folderName, parent.traffic);
      } else if (parent.versionPolicy !== undefined || parent.defaultVersion !== undefined || parent.traffic !== undefined) {
        const key = parent.versionPolicy !== undefined ? 'versionPolicy' : parent.defaultVersion !== undefined ? 'defaultVersion' : 'traffic';
        throw new SettingsError(parentFile, key, 'expected numbered version folders (<name>/1/, <name>/2/, …) beside it; there are none');
      }
    } catch (error) {
      if (!named || named.includes(folderName)) index.push({ name: folderName, folder, state: 'failed', reason: error instanceof Error ? error.message : String(error) });
      continue;
    }
    for (const { dir: vdir, version } of versions) {
      const model: RepositoryModel = { name: folderName, folder: vdir, state: 'failed', version };
      try {
        const plan = await planVersion(model, parentFile, version);
        // A model's name is known once its settings are read: `models` keeps the others out of the index and the check.
        if (named && !named.includes(model.name)) continue;
        index.push(model);
        if (version !== undefined) model.default = defaultVersion === undefined ? undefined : version === defaultVersion;
        planned.push(plan);
      } catch (error) {
        model.reason = error instanceof Error ? error.message : String(error);
        if (!named || named.includes(model.name)) index.push(model);
      }
    }
  }

  const python = planned.filter((p) => p.runtime.kind === 'python');
  const checked = python.length
    ? await check(
        host.pythonExecutable(),
        python.map((p, i) => checkSpec(p, String(i)) as object),
      )
    : {};

  /** Each ready model and how to make its endpoint at a path, with or without its version. */
  const ready: { plan: Planned; model: RepositoryModel; versioned: boolean; make: (path: string, version?: string) => Endpoint<Fields, string, unknown> }[] = [];
  for (const p of planned) {
    const { model, file, runtime } = p;
    try {
      const result = runtime.kind === 'python' ? checked[String(python.indexOf(p))] : undefined;
      if (result?.error) throw new Error(`${file}: ${result.error}`);
      const make = endpointFactory(p, result, (name) => ready.find((r) => r.model.name === name && r.plan.runtime.kind !== 'pipeline')?.make('/schema').schema);
      ready.push({ plan: p, model, make, versioned: p.served !== undefined });
    } catch (error) {
      model.reason = error instanceof Error ? error.message : String(error);
    }
  }

  // Versioned models: each version at its own routes; the default (the
  // settings' `defaultVersion` if it loaded, else the highest that did) is
  // what the unversioned ones reach: a pointer in the core's registry, not
  // a second copy of the model.
  const defaults = new Map<string, RepositoryModel>();
  for (const { model, versioned } of ready) {
    if (!versioned || model.default === false) continue;
    const current = defaults.get(model.name);
    if (model.default === true || !current || (current.default !== true && Number(model.version) > Number(current.version))) defaults.set(model.name, model);
  }
  const followed: Followed[] = [];
  const defaultOf = new Map<string, string>();
  // Pipelines last: their steps are the other models, found among those registered.
  ready.sort((a, b) => Number(a.plan.runtime.kind === 'pipeline') - Number(b.plan.runtime.kind === 'pipeline'));
  for (const { plan, model, make, versioned } of ready) {
    try {
      if (versioned) {
        const path = `/predictions/${model.name}/versions/${model.version}`;
        await host.register(make(path, model.version));
        model.path = path;
        model.default = defaults.get(model.name) === model;
        if (model.default) {
          defaultOf.set(model.name, model.version as string);
          const parent = versioning.get(dirname(model.folder));
          if (parent) followed.push({ ...parent, name: model.name, current: Number(model.version), served: [], plan, failed: new Map() });
        }
      } else {
        const path = `/predictions/${model.name}`;
        // MLServer's `parameters.version` is the model's version: V2 answers carry it as `model_version`
        // and `/v2/models/<name>/versions/<v>` reaches it; the unversioned routes reach it too (its name's only model).
        await host.register(make(path, model.version));
        model.path = path;
      }
      model.state = 'ready';
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // A pipeline the server refuses (an unknown model, a cycle, a mismatch) is its settings' fault.
      model.reason = plan.runtime.kind === 'pipeline' && !(error instanceof SettingsError) ? new SettingsError(plan.file, 'steps', message).message : message;
    }
  }
  for (const f of followed) f.served = index.filter((m) => m.name === f.name && m.state === 'ready' && m.version !== undefined).map((m) => Number(m.version));
  return { index, followed, traffic, defaults: defaultOf };
}

/**
 * How to make a planned model's endpoint at a path, with or without its
 * version. `result` is the start-up check's answer (what the model takes
 * and answers), needed when the settings declare no inputs.
 */
export function endpointFactory(
  p: Planned,
  result?: Checked,
  schemaOfModel?: (name: string) => Schema<Fields> | undefined,
): (path: string, version?: string) => Endpoint<Fields, string, unknown> {
  const { model, file, runtime, artifact } = p;
  if (runtime.kind === 'pipeline') return pipelineFactory(p, schemaOfModel);
  // A runtime that reports its tensors after load (mlserver.MLModel, MLflow's signature) is taken at its word, as MLServer takes it.
  const settings: ModelSettings = result?.inputs?.length ? { ...p.settings, inputs: result.inputs, outputs: result.outputs ?? p.settings.outputs } : p.settings;
  const features = result?.features ? { count: result.features, names: result.feature_names } : undefined;
  const schema = schemaOf(settings, file, features);
  let outputs: OutputTensor[] | undefined = settings.outputs;
  if (!outputs && runtime.kind === 'python' && runtime.artifact === 'uri' && result?.output) {
    const width = result.output.width;
    outputs = [{ name: runtime.handler, datatype: result.output.datatype, shape: width ? [-1, width] : [-1] }];
  }
  const base = {
    name: model.name,
    // What V2 clients send: the declared inputs, else the one tensor the model takes.
    inputs: settings.inputs ?? (features ? [{ name: 'input-0', datatype: 'FP64', shape: [-1, features.count] }] : undefined),
    outputs,
    schema,
    batch: batchOf(settings),
    predictionCache: settings.cache,
  };
  // MLServer's predict_stream: SSE, V2 generate_stream and gRPC streaming; one request per call, as MLServer
  // (its adaptive batching does not batch streams), so a batch holds one row.
  const streams = runtime.kind === 'python' && result?.stream === true;
  if (streams) {
    base.batch.maxSize = 1;
    base.predictionCache = undefined;
  }
  const client = new FsClient({ basePath: dirname(artifact), pathTemplate: basename(artifact) });
  return (path: string, version?: string): Endpoint<Fields, string, unknown> => {
    if (runtime.kind === 'python') {
      return new Endpoint({
        ...base,
        path,
        version,
        stream: streams,
        cache: new CacheConfig({ client, loadModel: py.loader(`${runtime.module}:load`), maxSize: 1, prefetch: true }),
        handler: py.handler(`${runtime.module}:${streams ? 'predict_stream' : runtime.handler}`, settings.workers === undefined ? {} : { workers: settings.workers }),
      }) as unknown as Endpoint<Fields, string, unknown>;
    }
    if (runtime.kind === 'onnx') {
      // onnxruntime in the core: the cache's artifact is the .onnx file.
      return new Endpoint({
        ...base,
        path,
        version,
        cache: new CacheConfig({ client, loadModel: onnx.loader(), maxSize: 1, prefetch: true }),
        handler: onnx.handler(),
      }) as unknown as Endpoint<Fields, string, unknown>;
    }
    type Module = { load?: (settings: object) => unknown; predict: (batch: unknown, model: unknown) => unknown };
    return new Endpoint({
      ...base,
      path,
      version,
      cache: new CacheConfig<{ module: Module; state: unknown }>({
        client,
        loadModel: async (local) => {
          const module = (await importModule(pathToFileURL(local).href)) as unknown as Module;
          if (typeof module.predict !== 'function') throw new TypeError(`${local} exports no predict(batch, model) function`);
          return { module, state: await module.load?.({ ...settings, folder: p.model.folder }) };
        },
        maxSize: 1,
        prefetch: true,
      }),
      handler: (batch, { model: m }) => m.module.predict(batch, m.state) as never,
    }) as unknown as Endpoint<Fields, string, unknown>;
  };
}
