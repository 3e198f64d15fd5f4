/**
 * Repository settings files: the root `settings.json` and each model's
 * `model-settings.json`, read strictly. MLServer's keys are accepted under
 * their own names so existing folders work; redesmyn's own keys are
 * camelCase. An unknown key, a wrong type or malformed JSON is a
 * {@link SettingsError} naming the file, the key and what was expected.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { TelemetryOptions } from '../telemetry';

export class SettingsError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    message: string,
  ) {
    super(key === undefined ? `${file}: ${message}` : `${file}: '${key}': ${message}`);
    this.name = 'SettingsError';
  }
}

/** A V2 tensor as declared in `inputs` / `outputs`. */
export interface TensorSettings {
  name: string;
  datatype: string;
  shape: number[];
}

/** The root `settings.json`. */
export interface ServerSettings {
  host?: string;
  port?: number;
  grpcPort?: number;
  workers?: number;
  /** MLServer's `parallel_workers`: Python worker processes per Python model (0: in-process). */
  pythonWorkers?: number;
  metrics?: boolean;
  logLevel?: string;
  /** The management API (off unless set). */
  management?: { token: string; host?: string; port?: number };
  /** OpenTelemetry traces (the `Server` option of the same name); the core checks the values. */
  telemetry?: TelemetryOptions;
}

/** One model's `model-settings.json`. */
export interface ModelSettings {
  name?: string;
  /** MLServer's class path (`mlserver_sklearn.SKLearnModel`, or a custom `module.Class`). */
  implementation?: string;
  /** redesmyn's runtime name (`sklearn`, `xgboost`, `lightgbm`, `python`, `onnx`). */
  runtime?: string;
  parameters: { uri?: string; version?: string; extra?: Record<string, unknown> };
  maxBatchSize?: number;
  /** Seconds, as MLServer. */
  maxBatchTime?: number;
  inputs?: TensorSettings[];
  outputs?: TensorSettings[];
  /** sklearn: `predict` (default) or `predict_proba`. */
  method?: string;
  /** Field names for a single `[-1, F]` input, in order. */
  columns?: string[];
  timeoutMs?: number;
  maxQueue?: number;
  maxConcurrent?: number;
  /** MLServer's `parallel_workers`: this model's Python worker processes (0: in-process; default: the server's). */
  workers?: number;
  /** Which numbered version folders to serve (Triton's shape); default `{ latest: { num_versions: 1 } }`. */
  versionPolicy?: VersionPolicy;
  /** The version the unversioned routes serve (default: the highest served). */
  defaultVersion?: string;
  /** Traffic weights between served versions, e.g. `{ "1": 0.9, "2": 0.1 }`. */
  traffic?: Record<string, number>;
  /** The prediction cache (the endpoint's `predictionCache`): off unless given. */
  cache?: PredictionCacheSettings;
  /** `"runtime": "pipeline"`: its steps, other models of the repository or ensembles (docs/pipelines.md). */
  steps?: StepSettings[];
}

/** One step of a pipeline's `steps`: a model of the repository, or an ensemble of earlier outputs. */
export interface StepSettings {
  name: string;
  model?: string;
  version?: string;
  /** The step's field -> what it reads (`score`, `classify.label`, `classify`). */
  inputs?: Record<string, string>;
  combine?: 'mean' | 'vote' | 'weighted_sum' | 'concat';
  of?: string[];
  weights?: number[];
}

/** `cache` in a `model-settings.json`: answers remembered per record. */
export interface PredictionCacheSettings {
  maxEntries: number;
  maxBytes?: number;
  ttlMs?: number;
}

export type VersionPolicy = { latest: { num_versions: number } } | { all: Record<string, never> } | { specific: { versions: number[] } };

export const V2_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64', 'BYTES'];

type Check = (value: unknown, key: string) => unknown;

class Reader {
  constructor(readonly file: string) {}

  fail(key: string | undefined, message: string): never {
    throw new SettingsError(this.file, key, message);
  }

  json(): Record<string, unknown> {
    if (!existsSync(this.file)) this.fail(undefined, 'file not found');
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (error) {
      this.fail(undefined, `malformed JSON: ${(error as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(undefined, 'expected a JSON object');
    return value as Record<string, unknown>;
  }

  /** Every key of `object` must be in `known` (a map key -> checker). */
  object(object: Record<string, unknown>, known: Record<string, Check>, prefix = ''): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(object)) {
      const check = known[key];
      const path = `${prefix}${key}`;
      if (!check) this.fail(path, `unknown key; expected one of: ${Object.keys(known).join(', ')}`);
      out[key] = check(value, path);
    }
    return out;
  }

  string: Check = (v, key) => (typeof v === 'string' ? v : this.fail(key, `expected a string, got ${JSON.stringify(v)}`));
  boolean: Check = (v, key) => (typeof v === 'boolean' ? v : this.fail(key, `expected true or false, got ${JSON.stringify(v)}`));
  port: Check = (v, key) =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) < 65536 ? v : this.fail(key, `expected a port number 0-65535, got ${JSON.stringify(v)}`);
  positive: Check = (v, key) =>
    Number.isInteger(v) && (v as number) > 0 ? v : this.fail(key, `expected a positive integer, got ${JSON.stringify(v)}`);
  seconds: Check = (v, key) =>
    typeof v === 'number' && v >= 0 ? v : this.fail(key, `expected a number of seconds >= 0, got ${JSON.stringify(v)}`);
  milliseconds: Check = (v, key) =>
    typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : this.fail(key, `expected a number of milliseconds > 0, got ${JSON.stringify(v)}`);
  any: Check = (v) => v;
  stringList: Check = (v, key) =>
    Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : this.fail(key, `expected a list of strings, got ${JSON.stringify(v)}`);
  tensors: Check = (v, key) => {
    if (!Array.isArray(v)) this.fail(key, `expected a list of tensors {name, datatype, shape}, got ${JSON.stringify(v)}`);
    return v.map((t, i) => {
      const at = `${key}[${i}]`;
      if (typeof t !== 'object' || t === null || Array.isArray(t)) this.fail(at, 'expected a tensor {name, datatype, shape}');
      const o = this.object(t as Record<string, unknown>, { name: this.string, datatype: this.string, shape: this.any, parameters: this.any }, `${at}.`);
      if (o.name === undefined) this.fail(`${at}.name`, 'missing; expected a string');
      if (!V2_DATATYPES.includes(o.datatype as string)) this.fail(`${at}.datatype`, `expected one of ${V2_DATATYPES.join(', ')}, got ${JSON.stringify(o.datatype)}`);
      const shape = o.shape;
      if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d >= -1)) {
        this.fail(`${at}.shape`, `expected a list of dimensions (-1 for any), got ${JSON.stringify(shape)}`);
      }
      return { name: o.name as string, datatype: o.datatype as string, shape: shape as number[] };
    });
  };
}

/** Reads the root `settings.json` (MLServer's `http_port`, `grpc_port`, `parallel_workers`, `debug`, `metrics_endpoint` too). */
export function readServerSettings(file: string): ServerSettings {
  const r = new Reader(file);
  const o = r.object(r.json(), {
    host: r.string,
    port: r.port,
    http_port: r.port,
    grpcPort: r.port,
    grpc_port: r.port,
    workers: r.positive,
    parallel_workers: (v, key) => (Number.isInteger(v) && (v as number) >= 0 ? v : r.fail(key, `expected an integer >= 0, got ${JSON.stringify(v)}`)),
    metrics: r.boolean,
    metrics_endpoint: (v, key) => (v === null || typeof v === 'string' ? v : r.fail(key, `expected a path or null, got ${JSON.stringify(v)}`)),
    management: (v, key) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) r.fail(key, 'expected an object {token, host?, port?}');
      const m = r.object(v as Record<string, unknown>, { token: r.string, host: r.string, port: r.port }, `${key}.`);
      if (typeof m.token !== 'string' || m.token.length < 16) r.fail(`${key}.token`, 'expected a string of at least 16 characters');
      return m;
    },
    telemetry: (v, key) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) r.fail(key, 'expected an object {enabled?, endpoint?, protocol?, serviceName?, sampler?, samplerArg?, maxQueue?, exportDelayMs?}');
      return r.object(
        v as Record<string, unknown>,
        {
          enabled: r.boolean,
          endpoint: r.string,
          protocol: r.string,
          serviceName: r.string,
          sampler: r.string,
          samplerArg: (n, k) => (typeof n === 'number' && n >= 0 && n <= 1 ? n : r.fail(k, `expected a ratio between 0 and 1, got ${JSON.stringify(n)}`)),
          maxQueue: r.positive,
          exportDelayMs: r.positive,
        },
        `${key}.`,
      );
    },
    logLevel: (v, key) =>
      typeof v === 'string' && /^(error|warn|info|debug|trace)$/i.test(v) ? v.toLowerCase() : r.fail(key, `expected error, warn, info, debug or trace, got ${JSON.stringify(v)}`),
    debug: r.boolean,
  });
  return {
    host: o.host as string | undefined,
    port: (o.port ?? o.http_port) as number | undefined,
    grpcPort: (o.grpcPort ?? o.grpc_port) as number | undefined,
    workers: o.workers as number | undefined,
    pythonWorkers: o.parallel_workers as number | undefined,
    metrics: o.metrics !== undefined ? (o.metrics as boolean) : o.metrics_endpoint === null ? false : undefined,
    logLevel: (o.logLevel as string | undefined) ?? (o.debug === true ? 'debug' : undefined),
    management: o.management as ServerSettings['management'],
    telemetry: o.telemetry as ServerSettings['telemetry'],
  };
}

/** Reads one `model-settings.json`. */
export function readModelSettings(file: string): ModelSettings {
  const r = new Reader(file);
  return modelSettingsFrom(r.json(), file);
}

/**
 * Checks a `model-settings.json` object (a file's, or a management call's
 * `config`): `file` names where it came from in errors.
 */
export function modelSettingsFrom(json: Record<string, unknown>, file: string): ModelSettings {
  const r = new Reader(file);
  const o = r.object(json, {
    name: r.string,
    implementation: r.string,
    runtime: r.string,
    platform: r.string,
    versions: r.stringList,
    parameters: (v, key) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) r.fail(key, 'expected an object');
      return r.object(v as Record<string, unknown>, { uri: r.string, version: r.string, format: r.string, extra: r.any, content_type: r.string }, `${key}.`);
    },
    max_batch_size: r.positive,
    max_batch_time: r.seconds,
    parallel_workers: (v, key) => (Number.isInteger(v) && (v as number) >= 0 ? v : r.fail(key, `expected an integer >= 0, got ${JSON.stringify(v)}`)),
    inputs: r.tensors,
    outputs: r.tensors,
    method: (v, key) => (v === 'predict' || v === 'predict_proba' ? v : r.fail(key, `expected "predict" or "predict_proba", got ${JSON.stringify(v)}`)),
    columns: r.stringList,
    timeoutMs: r.positive,
    maxQueue: r.positive,
    maxConcurrent: r.positive,
    versionPolicy: (v, key) => {
      const bad = () => r.fail(key, `expected {"latest": {"num_versions": N}}, {"all": {}} or {"specific": {"versions": [1, 2]}}, got ${JSON.stringify(v)}`);
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length !== 1) bad();
      const o = v as Record<string, Record<string, unknown>>;
      if ('latest' in o) {
        if (!Number.isInteger(o.latest?.num_versions) || (o.latest.num_versions as number) < 1 || Object.keys(o.latest).length !== 1) bad();
      } else if ('all' in o) {
        if (typeof o.all !== 'object' || o.all === null || Object.keys(o.all).length !== 0) bad();
      } else if ('specific' in o) {
        const versions = o.specific?.versions;
        if (!Array.isArray(versions) || versions.length === 0 || !versions.every((n) => Number.isInteger(n) && n >= 0) || Object.keys(o.specific).length !== 1) bad();
      } else bad();
      return v;
    },
    cache: (v, key) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) r.fail(key, `expected an object {maxEntries, maxBytes?, ttlMs?}, got ${JSON.stringify(v)}`);
      const c = r.object(v as Record<string, unknown>, { maxEntries: r.positive, maxBytes: r.positive, ttlMs: r.milliseconds }, `${key}.`);
      if (c.maxEntries === undefined) r.fail(`${key}.maxEntries`, 'missing; expected a positive integer (rows remembered at most)');
      return c;
    },
    steps: (v, key) => {
      if (!Array.isArray(v) || v.length === 0) r.fail(key, `expected a list of steps {name, model | combine, ...}, got ${JSON.stringify(v)}`);
      return (v as unknown[]).map((s, i) => {
        const at = `${key}[${i}]`;
        if (typeof s !== 'object' || s === null || Array.isArray(s)) r.fail(at, 'expected a step {name, model | combine, inputs?, of?, weights?}');
        const o = r.object(
          s as Record<string, unknown>,
          {
            name: r.string,
            model: r.string,
            version: (v, k) => (typeof v === 'string' || Number.isInteger(v) ? String(v) : r.fail(k, `expected a version, got ${JSON.stringify(v)}`)),
            inputs: (v, k) =>
              typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string')
                ? v
                : r.fail(k, `expected an object of field -> column, got ${JSON.stringify(v)}`),
            combine: (v, k) => (['mean', 'vote', 'weighted_sum', 'concat'].includes(v as string) ? v : r.fail(k, `expected mean, vote, weighted_sum or concat, got ${JSON.stringify(v)}`)),
            of: r.stringList,
            weights: (v, k) => (Array.isArray(v) && v.every((w) => typeof w === 'number' && Number.isFinite(w)) ? v : r.fail(k, `expected a list of numbers, got ${JSON.stringify(v)}`)),
          },
          `${at}.`,
        );
        if (o.name === undefined) r.fail(`${at}.name`, 'missing; expected the step\'s name');
        if ((o.model === undefined) === (o.combine === undefined)) r.fail(at, "expected 'model' (a model of the repository) or 'combine' with 'of', not both");
        if (o.combine !== undefined && o.of === undefined) r.fail(`${at}.of`, 'missing; expected the outputs the ensemble combines');
        return o as unknown as StepSettings;
      });
    },
    defaultVersion: (v, key) => (typeof v === 'string' || Number.isInteger(v) ? String(v) : r.fail(key, `expected a version number, got ${JSON.stringify(v)}`)),
    traffic: (v, key) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length === 0) {
        r.fail(key, `expected an object of version -> weight, e.g. {"1": 0.9, "2": 0.1}, got ${JSON.stringify(v)}`);
      }
      for (const [version, weight] of Object.entries(v as Record<string, unknown>)) {
        if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) r.fail(`${key}.${version}`, `expected a finite number >= 0, got ${JSON.stringify(weight)}`);
      }
      if (Object.values(v as Record<string, number>).reduce((a, b) => a + b, 0) <= 0) r.fail(key, 'expected weights adding up to more than 0');
      return v;
    },
  });
  if (o.implementation !== undefined && o.runtime !== undefined) r.fail('runtime', "give 'implementation' (MLServer) or 'runtime', not both");
  if (o.implementation === undefined && o.runtime === undefined) r.fail('runtime', "missing; expected 'runtime' (sklearn, xgboost, lightgbm, python, typescript, onnx, pipeline) or MLServer's 'implementation'");
  if ((o.runtime === 'pipeline') !== (o.steps !== undefined)) r.fail('steps', o.steps === undefined ? "missing; a pipeline lists its 'steps'" : "only a pipeline (\"runtime\": \"pipeline\") has 'steps'");
  return {
    name: o.name as string | undefined,
    implementation: o.implementation as string | undefined,
    runtime: o.runtime as string | undefined,
    parameters: (o.parameters ?? {}) as ModelSettings['parameters'],
    maxBatchSize: o.max_batch_size as number | undefined,
    maxBatchTime: o.max_batch_time as number | undefined,
    inputs: o.inputs as TensorSettings[] | undefined,
    outputs: o.outputs as TensorSettings[] | undefined,
    method: o.method as string | undefined,
    columns: o.columns as string[] | undefined,
    timeoutMs: o.timeoutMs as number | undefined,
    maxQueue: o.maxQueue as number | undefined,
    maxConcurrent: o.maxConcurrent as number | undefined,
    workers: o.parallel_workers as number | undefined,
    versionPolicy: o.versionPolicy as VersionPolicy | undefined,
    defaultVersion: o.defaultVersion as string | undefined,
    traffic: o.traffic as Record<string, number> | undefined,
    cache: o.cache as PredictionCacheSettings | undefined,
    steps: o.steps as StepSettings[] | undefined,
  };
}
