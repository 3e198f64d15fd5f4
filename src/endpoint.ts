/**
 * Endpoints: a POST path, the schema of its records, batching, and the
 * handler that turns a batch into predictions.
 */
import type { ColumnsOf, Fields, RecordOf, Schema } from './schema';
import type { JobReport, NativeCaches, NativeClient, NativeJobs, ScoreSpec } from '../binding';
import { PredictionError } from './errors';
import type { HandlerOutput, StreamStep } from './output';
import { runScore, type ScoreOptions, type ScoreSummary } from './score';
import { PythonHandler } from './python';
import { OnnxHandler } from './onnx';
import { PipelineSteps } from './runtimes/pipeline';
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
  /** Batches of one endpoint and parameter set that may run at once (default 1; with Python workers, their count). */
  maxConcurrent?: number;
  /**
   * Split what is queued evenly over the free batch slots instead of filling
   * one batch first (default: off). Can help when a batch costs in
   * proportion to its rows and several batches run at once (Python worker
   * processes); for a model with a large fixed cost per call, fewer larger
   * batches win, which is why it is off by default.
   */
  spread?: boolean;
  /**
   * When a batch of several requests fails (the handler throws or raises,
   * a worker process crashes, the answer has the wrong length), run its
   * requests again in halves so that only the ones that cause the failure
   * fail and the others are answered (default true). Costs extra handler
   * calls only when a batch fails: at most six per doubling of its requests
   * (enough to find two or three guilty ones), five for a model that fails
   * whatever it is given.
   */
  isolatePoison?: boolean;
  /** Requests that may wait in one queue before new ones get 503 (default 4096). */
  maxQueue?: number;
  /**
   * Time a request may spend queued and in its handler before a 504 (default: none).
   * For a streaming endpoint: the time from a request's arrival to the handler's
   * first step, and then the longest gap between two steps (and the longest a
   * client may leave a full buffer unread before it is cut off).
   */
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
  /**
   * The W3C `traceparent` of the batch's span when a request in it is
   * traced (docs/observability.md). With `@opentelemetry/api`, the handler
   * already runs with that span as its active context.
   */
  readonly traceparent?: string;
}

export type Handler<F extends Fields, Params, M = undefined> = (
  batch: Batch<F>,
  context: Context<Params, M>,
) => HandlerOutput | Promise<HandlerOutput>;

/**
 * A streaming handler: a generator over steps, called once per batch.
 * `async function*` works, as does any function returning an (async) iterable.
 */
export type StreamHandler<F extends Fields, Params, M = undefined> = (
  batch: Batch<F>,
  context: Context<Params, M>,
) => AsyncIterable<StreamStep> | Iterable<StreamStep>;

/** An output tensor a model declares, for V2 metadata and output names. */
export interface OutputTensor {
  name: string;
  /** A V2 datatype: `FP32`, `FP64`, `INT64`, `BYTES`, `BOOL`, … */
  datatype: string;
  /** `-1` marks a variable dimension, e.g. `[-1]` for one value per row. */
  shape: number[];
}

/**
 * The prediction cache: answers remembered row by row, so a record seen
 * before skips the queue and the handler. Keyed by the model (name and
 * version), the path parameters and every field's value; invalidated when
 * the model's artifact is reloaded. Bounded by rows and bytes, whichever
 * is reached first. Not for streaming endpoints.
 */
export interface PredictionCacheOptions {
  /** Rows remembered at most. */
  maxEntries: number;
  /** Memory held at most, in bytes, approximately (default 64 MiB). */
  maxBytes?: number;
  /** How long an answer is reused, in milliseconds (default: until evicted or invalidated). */
  ttlMs?: number;
}

/** Counters of a prediction cache. */
export interface PredictionCacheStats {
  /** Rows answered from the cache. */
  hits: number;
  /** Rows that went to the handler. */
  misses: number;
  /** Rows held. */
  entries: number;
  /** Memory held, approximately. */
  bytes: number;
}

/** The prediction cache of a serving endpoint. */
export interface EndpointPredictionCache {
  stats(): PredictionCacheStats;
  /** Forgets every remembered answer. */
  clear(): void;
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
  /**
   * Declared input tensors that V2 metadata lists instead of the schema's
   * fields, e.g. one `[-1, 4]` tensor that the V2 door reads as four fields.
   */
  inputs?: OutputTensor[];
  schema: Schema<F>;
  batch?: BatchOptions;
  /** Model variants selected by the path parameters. */
  cache?: CacheConfig<M>;
  /** Remember answers per record (off by default); see {@link PredictionCacheOptions}. */
  predictionCache?: PredictionCacheOptions;
  /**
   * The handler yields its output step by step (see {@link StreamStep}):
   * requests get Server-Sent Events, V2 `generate_stream` and gRPC
   * `ModelStreamInfer` answers, and `predictStream()` works.
   */
  stream?: boolean;
  /**
   * A TypeScript function, a Python one (`py.handler('module:function')`),
   * or an ONNX model (`onnx.handler('model.onnx')`).
   * With `stream: true`, a generator function (TypeScript `async function*`,
   * Python `def` with `yield` or `async def` with `yield`).
   */
  handler: Handler<F, PathParams<P>, M> | StreamHandler<F, PathParams<P>, M> | PythonHandler | OnnxHandler | PipelineSteps;
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

/** One event of `endpoint.predictStream()`: a chunk for a row, or the end of a row. */
export type StreamEvent<T = unknown> = { row: number; prediction: T } | { row: number; done: true };

export { PredictionError } from './errors';

/** @internal How a server answers for a registered endpoint: the native server's handles. */
export interface EndpointBinding {
  caches: NativeCaches;
  jobs: NativeJobs;
  client: NativeClient;
}

/** A job's state: `queued` → `running` → `succeeded` | `failed`, or `queued` → `cancelled`. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** What `endpoint.poll()` and `GET /jobs/{id}` tell about a job. */
export interface JobStatus<T = unknown> {
  id: string;
  state: JobState;
  model: string;
  /** When succeeded: the online answer's body, `{ id, predictions }`. */
  result: { id: string; predictions: T[] } | null;
  /** When failed: why. */
  error: string | null;
  telemetry: {
    submitted_at: string;
    started_at: string | null;
    finished_at: string | null;
    /** Time from submission to the handler (job queue and model queue). */
    queue_ms: number | null;
    handler_ms: number | null;
    /** Rows of the batch the job ran in. */
    batch_size: number | null;
    request_id: string;
    params: Record<string, string>;
  };
}

export class Endpoint<F extends Fields = Fields, P extends string = string, M = undefined> {
  readonly path: P;
  readonly schema: Schema<F>;
  readonly batch: BatchOptions;
  readonly handler: Handler<F, PathParams<P>, M> | StreamHandler<F, PathParams<P>, M> | PythonHandler | OnnxHandler | PipelineSteps;
  readonly stream: boolean;
  readonly cacheConfig: CacheConfig<M> | undefined;
  readonly predictionCacheConfig: PredictionCacheOptions | undefined;
  readonly name: string | undefined;
  readonly version: string | undefined;
  readonly outputs: OutputTensor[] | undefined;
  readonly inputs: OutputTensor[] | undefined;
  #binding: EndpointBinding | undefined;

  constructor(options: EndpointOptions<F, P, M>) {
    if (typeof options.path !== 'string' || !options.path.startsWith('/')) {
      throw new TypeError(`endpoint path must start with '/', got ${JSON.stringify(options.path)}`);
    }
    if (
      typeof options.handler !== 'function' &&
      !(options.handler instanceof PythonHandler) &&
      !(options.handler instanceof OnnxHandler) &&
      !(options.handler instanceof PipelineSteps)
    ) {
      throw new TypeError(
        `endpoint '${options.path}' needs a handler: a function, py.handler('module:function') or onnx.handler('model.onnx')`,
      );
    }
    if (options.handler instanceof OnnxHandler && options.stream === true) {
      throw new TypeError(`endpoint '${options.path}': an ONNX model answers each batch once; it cannot stream`);
    }
    this.path = options.path;
    this.schema = options.schema;
    this.batch = { ...options.batch };
    this.handler = options.handler;
    this.stream = options.stream === true;
    this.cacheConfig = options.cache;
    if (options.predictionCache !== undefined && this.stream) {
      throw new TypeError(`endpoint '${options.path}': a streaming endpoint cannot have a predictionCache`);
    }
    this.predictionCacheConfig = options.predictionCache && { ...options.predictionCache };
    this.name = options.name;
    this.version = options.version;
    this.outputs = options.outputs?.map((o) => ({ ...o, shape: [...o.shape] }));
    this.inputs = options.inputs?.map((o) => ({ ...o, shape: [...o.shape] }));
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
      keys: () => registered().caches.keys(path),
      stats: () => registered().caches.stats(path),
      refresh: (force) => registered().caches.refresh(path, force),
    };
  }

  /** The prediction cache, once the server serves (undefined without one). */
  get predictionCache(): EndpointPredictionCache | undefined {
    if (!this.predictionCacheConfig) return undefined;
    const path = this.path;
    const binding = this.#binding;
    const registered = () => {
      if (!binding) throw new Error(`endpoint '${path}' is not registered with a server yet`);
      return binding;
    };
    return {
      stats: () => registered().caches.predictionStats(path),
      clear: () => registered().caches.predictionClear(path),
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
    const out = await binding.client.predict(this.path, (options.params ?? {}) as Record<string, string>, JSON.stringify(records));
    if (out.error) throw PredictionError.of(out.error);
    return {
      predictions: JSON.parse(out.predictions ?? '[]') as T[],
      id: out.id,
      queueMs: out.queueMs,
      handlerMs: out.handlerMs,
      totalMs: out.totalMs,
      batchSize: out.batchSize,
    };
  }

  /**
   * Schedules an asynchronous job (needs the server's `jobs` option): the
   * records are checked now and kept in the job store, then run through
   * the same queue, batches and handler as requests, below them in
   * priority. Resolves with the job's id.
   */
  async schedule(
    records: RecordOf<F> | readonly RecordOf<F>[],
    options: { params?: PathParams<P>; requestId?: string } = {},
  ): Promise<string> {
    const out = await this.#bound().jobs.schedule(
      this.path,
      (options.params ?? {}) as Record<string, string>,
      JSON.stringify(records),
      options.requestId,
    );
    return (jobAnswer(out) as { id: string }).id;
  }

  /** A job's state, result (once done) and telemetry. */
  async poll<T = unknown>(jobId: string): Promise<JobStatus<T>> {
    return jobAnswer(await this.#bound().jobs.get(jobId)) as JobStatus<T>;
  }

  /**
   * Waits for a job to end (polling every `intervalMs`, default 20) and
   * resolves with its predictions; rejects with a {@link PredictionError}
   * if it failed or was cancelled.
   */
  async result<T = unknown>(jobId: string, options: { intervalMs?: number } = {}): Promise<T[]> {
    for (;;) {
      const status = await this.poll<T>(jobId);
      if (status.state === 'succeeded' && status.result) return status.result.predictions;
      if (status.state === 'failed') throw new PredictionError(500, status.error ?? 'the job failed');
      if (status.state === 'cancelled') throw new PredictionError(409, `job '${jobId}' was cancelled`);
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 20));
    }
  }

  /** Cancels a job that has not started; rejects with status 409 once it has. */
  async cancel(jobId: string): Promise<void> {
    jobAnswer(await this.#bound().jobs.cancel(jobId));
  }

  #bound(): EndpointBinding {
    if (!this.#binding) throw new Error(`endpoint '${this.path}' is not registered with a serving server`);
    return this.#binding;
  }

  /**
   * Scores a file through this endpoint: rows are read a chunk of
   * `batchSize` at a time (memory stays bounded whatever the file's size),
   * checked by the endpoint's schema, and sent through the same queue,
   * batching, handler and model cache as requests. The output holds the
   * input's columns (or `columns`) and the prediction column(s) (`prediction`
   * for a single output). Rows that do not fit the schema, and the rows of a
   * chunk whose handler failed twice, go to the rejects file with their row
   * number and reason; the run goes on. The output appears under its name
   * only when the run completes.
   */
  async score(options: ScoreOptions<P>): Promise<ScoreSummary> {
    const binding = this.#bound();
    if (this.stream) throw new Error(`endpoint '${this.path}' streams; only unary endpoints score files`);
    const spec: ScoreSpec = { input: options.input, output: options.output };
    if (options.batchSize !== undefined) spec.batchSize = options.batchSize;
    if (options.columns !== undefined) spec.columns = [...options.columns];
    if (options.rejects !== undefined) spec.rejects = options.rejects;
    if (options.storeOptions !== undefined) spec.storeOptions = options.storeOptions;
    if (options.inputFormat !== undefined) spec.inputFormat = options.inputFormat;
    if (options.outputFormat !== undefined) spec.outputFormat = options.outputFormat;
    if (options.params !== undefined) spec.params = options.params as Record<string, string>;
    return runScore(binding.client.scoreRun(this.path, spec), options);
  }

  /**
   * Streams in-process from a streaming endpoint: the records go through the
   * same parsing, queue, batching and handler as SSE requests. Yields each
   * row's chunks (`{ row, prediction }`) and ends (`{ row, done: true }`) as
   * the handler produces them; rows are numbered within `records`. Throws a
   * {@link PredictionError} if the stream fails (before or after its first
   * chunk). Leaving the loop early (`break`) gives the rows up, like a client
   * that disconnects.
   */
  async *predictStream<T = unknown>(
    records: RecordOf<F> | readonly RecordOf<F>[],
    options: { params?: PathParams<P> } = {},
  ): AsyncGenerator<StreamEvent<T>, void, undefined> {
    const binding = this.#binding;
    if (!binding) throw new Error(`endpoint '${this.path}' is not registered with a serving server`);
    const stream = binding.client.openStream(this.path, (options.params ?? {}) as Record<string, string>, JSON.stringify(records));
    try {
      for (;;) {
        const event = await stream.next();
        if (event === null || event === undefined) return;
        if (event.error) throw PredictionError.of(event.error);
        for (const e of JSON.parse(event.events ?? '[]') as StreamEvent<T>[]) yield e;
      }
    } finally {
      stream.close();
    }
  }
}

/** The body of a job report, or its error as a {@link PredictionError}. */
function jobAnswer(out: JobReport): unknown {
  if (out.error) throw PredictionError.of(out.error);
  return JSON.parse(out.body ?? 'null') as unknown;
}
