/**
 * Endpoints: a POST path, the schema of its records, batching, and the
 * handler that turns a batch into predictions.
 */
import type { ColumnsOf, Fields, RecordOf, Schema } from './schema';
import type { NativeServer } from '../binding';
import { toNative, toNativeError, type HandlerOutput, type NativeOutput } from './output';
import { PythonHandler } from './python';
import type { CacheConfig, CacheStats } from './cache';

/** `'/p/{run_id}/{model_id}'` → `{ run_id: string; model_id: string }`. */
export type PathParams<P extends string> = P extends `${string}{${infer Name}}${infer Rest}`
  ? { [K in Name | keyof PathParams<Rest>]: string }
  : {};

/** How requests are grouped into batches. */
export interface BatchOptions {
  /** Rows at which a batch closes (default 64). A larger request runs alone. */
  maxSize?: number;
  /**
   * How long a batch waits for more requests after its first (default 0: a
   * batch takes what is queued when the handler is free; under load, requests
   * pile up while the handler runs, so batches still fill).
   */
  maxDelayMs?: number;
  /** Batches of one endpoint and parameter set that may run at once (default 1). */
  maxConcurrent?: number;
  /** Requests that may wait in one queue before new ones get 503 (default 4096). */
  maxQueue?: number;
  /** Time a request may spend queued and in its handler before a 504 (default: none). */
  timeoutMs?: number;
}

/** A batch as a handler sees it. */
export interface Batch<F extends Fields = Fields> {
  /** Number of rows (records) in the batch. */
  readonly length: number;
  /** One column per field. Numeric columns are typed arrays over the batch's memory (no copy). */
  readonly columns: ColumnsOf<F>;
  /** For columns with nulls in this batch: a Uint8Array, 1 where the value is null. */
  readonly nulls: { readonly [K in keyof F]?: Uint8Array };
}

/** What else a handler gets besides the batch. */
export interface Context<Params = Record<string, string>, M = undefined> {
  /** The path parameters this batch's requests share. */
  readonly params: Params;
  /** The model these parameters select, when the endpoint has a cache. */
  readonly model: M;
}

export type Handler<F extends Fields, Params, M = undefined> = (
  batch: Batch<F>,
  context: Context<Params, M>,
) => HandlerOutput | Promise<HandlerOutput>;

/** An output tensor a model declares, for V2 metadata and output names. */
export interface OutputTensor {
  name: string;
  /** A V2 datatype: `FP32`, `FP64`, `INT64`, `BYTES`, `BOOL`, … */
  datatype: string;
  /** `-1` marks a variable dimension, e.g. `[-1]` for one value per row. */
  shape: number[];
}

export interface EndpointOptions<F extends Fields, P extends string, M> {
  /** POST path; `{name}` segments are path parameters. */
  path: P;
  /**
   * The model's name for the Open Inference Protocol (V2 REST and gRPC).
   * Default: the path's literal segments joined with `-`
   * (`/predictions/iris/{run_id}` is `predictions-iris`).
   */
  name?: string;
  /** The V2 model version (`/v2/models/{name}/versions/{version}`). */
  version?: string;
  /** Declared output tensors: their names replace the default `output-0`, in order. */
  outputs?: OutputTensor[];
  schema: Schema<F>;
  batch?: BatchOptions;
  /** Model variants selected by the path parameters. */
  cache?: CacheConfig<M>;
  /** A TypeScript function, or a Python one: `py.handler('module:function')`. */
  handler: Handler<F, PathParams<P>, M> | PythonHandler;
}

/** The model cache of a registered endpoint. */
export interface EndpointCache {
  /** Path parameters of the models in memory. */
  keys(): Promise<Record<string, string>[]>;
  stats(): Promise<CacheStats>;
  /** Check every cached model's artifact now; reload what changed (everything with `force`). */
  refresh(force?: boolean): Promise<void>;
}

/** What `endpoint.predict()` resolves with. */
export interface Prediction<T = unknown> {
  /** One prediction per record, in order. */
  predictions: T[];
  /** The request id (as an HTTP request would get). */
  id: string;
  /** Time waiting for the batch, in the handler, and in all. */
  queueMs: number;
  handlerMs: number;
  totalMs: number;
  /** Rows of the batch this call rode in. */
  batchSize: number;
}

/** An in-process prediction that failed, with the HTTP status an HTTP request would have had. */
export class PredictionError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: unknown[] = [],
  ) {
    super(message);
    this.name = 'PredictionError';
  }
}

/** @internal How a server answers for a registered endpoint: the native server's own methods. */
export type EndpointBinding = Pick<NativeServer, 'cacheKeys' | 'cacheStats' | 'cacheRefresh' | 'predict'>;

/** The batch object as the native core hands it over (built in crates/redesmyn-node/src/to_js.rs). */
export interface NativeBatch {
  length: number;
  columns: Record<string, unknown>;
  nulls: Record<string, Uint8Array>;
  params: Record<string, string>;
  modelId?: number;
}

export class Endpoint<F extends Fields = Fields, P extends string = string, M = undefined> {
  readonly path: P;
  readonly schema: Schema<F>;
  readonly batch: BatchOptions;
  readonly handler: Handler<F, PathParams<P>, M> | PythonHandler;
  readonly cacheConfig: CacheConfig<M> | undefined;
  readonly name: string | undefined;
  readonly version: string | undefined;
  readonly outputs: OutputTensor[] | undefined;
  #binding: EndpointBinding | undefined;

  constructor(options: EndpointOptions<F, P, M>) {
    if (typeof options.path !== 'string' || !options.path.startsWith('/')) {
      throw new TypeError(`endpoint path must start with '/', got ${JSON.stringify(options.path)}`);
    }
    if (typeof options.handler !== 'function' && !(options.handler instanceof PythonHandler)) {
      throw new TypeError(`endpoint '${options.path}' needs a handler: a function or py.handler('module:function')`);
    }
    this.path = options.path;
    this.schema = options.schema;
    this.batch = { ...options.batch };
    this.handler = options.handler;
    this.cacheConfig = options.cache;
    this.name = options.name;
    this.version = options.version;
    this.outputs = options.outputs?.map((o) => ({ ...o, shape: [...o.shape] }));
  }

  /** The model cache, once the endpoint is registered with a server (undefined without a cache). */
  get cache(): EndpointCache | undefined {
    const binding = this.#binding;
    if (!this.cacheConfig) return undefined;
    const path = this.path;
    const registered = () => {
      if (!binding) throw new Error(`endpoint '${path}' is not registered with a server yet`);
      return binding;
    };
    return {
      keys: () => registered().cacheKeys(path),
      stats: () => registered().cacheStats(path),
      refresh: (force) => registered().cacheRefresh(path, force),
    };
  }

  /** @internal */
  bind(binding: EndpointBinding): void {
    this.#binding = binding;
  }

  /**
   * Predicts in-process, without HTTP: the records go through the same
   * parsing, queue, batching and handler as requests to this endpoint, so
   * concurrent calls share batches. Rejects with a {@link PredictionError}
   * carrying the status an HTTP request would have had.
   */
  async predict<T = unknown>(
    records: RecordOf<F> | readonly RecordOf<F>[],
    options: { params?: PathParams<P> } = {},
  ): Promise<Prediction<T>> {
    const binding = this.#binding;
    if (!binding) throw new Error(`endpoint '${this.path}' is not registered with a serving server`);
    const out = await binding.predict(this.path, (options.params ?? {}) as Record<string, string>, JSON.stringify(records));
    if (out.status !== 200) {
      const body = out.error ? (JSON.parse(out.error) as { error: string; details: unknown[] }) : { error: 'prediction failed', details: [] };
      throw new PredictionError(out.status, body.error, body.details);
    }
    return {
      predictions: JSON.parse(out.predictions ?? '[]') as T[],
      id: out.id,
      queueMs: out.queueMs,
      handlerMs: out.handlerMs,
      totalMs: out.totalMs,
      batchSize: out.batchSize,
    };
  }

  /** @internal The function the native core calls with each batch. It never rejects. */
  nativeHandler(models: ReadonlyMap<number, unknown>): (batch: object) => Promise<NativeOutput> {
    const handler = this.handler;
    if (handler instanceof PythonHandler) throw new TypeError('a Python handler has no JavaScript function');
    return async (nativeBatch) => {
      const native = nativeBatch as NativeBatch;
      try {
        const batch = { length: native.length, columns: native.columns, nulls: native.nulls } as unknown as Batch<F>;
        const model = (native.modelId === undefined ? undefined : models.get(native.modelId)) as M;
        const context = { params: native.params as PathParams<P>, model };
        return toNative(await handler(batch, context));
      } catch (error) {
        return toNativeError(error);
      }
    };
  }
}
