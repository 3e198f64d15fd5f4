/**
 * Endpoints: a POST path, the schema of its records, batching, and the
 * handler that turns a batch into predictions.
 */
import type { ColumnsOf, Fields, Schema } from './schema';
import { toNative, toNativeError, type HandlerOutput, type NativeOutput } from './output';
import { PythonHandler } from './python';

/** `'/p/{run_id}/{model_id}'` → `{ run_id: string; model_id: string }`. */
export type PathParams<P extends string> = P extends `${string}{${infer Name}}${infer Rest}`
  ? { [K in Name | keyof PathParams<Rest>]: string }
  : {};

/** How requests are grouped into batches. */
export interface BatchOptions {
  /** Rows at which a batch closes (default 64). A larger request runs alone. */
  maxSize?: number;
  /** How long a batch waits for more requests after its first (default 5 ms). */
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
export interface Context<Params = Record<string, string>> {
  /** The path parameters this batch's requests share. */
  readonly params: Params;
}

export type Handler<F extends Fields, Params> = (
  batch: Batch<F>,
  context: Context<Params>,
) => HandlerOutput | Promise<HandlerOutput>;

export interface EndpointOptions<F extends Fields, P extends string> {
  /** POST path; `{name}` segments are path parameters. */
  path: P;
  schema: Schema<F>;
  batch?: BatchOptions;
  /** A TypeScript function, or a Python one: `py.handler('module:function')`. */
  handler: Handler<F, PathParams<P>> | PythonHandler;
}

/** The batch object as the native core hands it over. */
export interface NativeBatch {
  length: number;
  columns: Record<string, unknown>;
  nulls: Record<string, Uint8Array>;
  params: Record<string, string>;
}

export class Endpoint<F extends Fields = Fields, P extends string = string> {
  readonly path: P;
  readonly schema: Schema<F>;
  readonly batch: BatchOptions;
  readonly handler: Handler<F, PathParams<P>> | PythonHandler;

  constructor(options: EndpointOptions<F, P>) {
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
  }

  /** @internal The function the native core calls with each batch. It never rejects. */
  nativeHandler(): (batch: object) => Promise<NativeOutput> {
    const handler = this.handler;
    if (handler instanceof PythonHandler) throw new TypeError('a Python handler has no JavaScript function');
    return async (nativeBatch) => {
      const native = nativeBatch as NativeBatch;
      try {
        const batch = { length: native.length, columns: native.columns, nulls: native.nulls } as unknown as Batch<F>;
        const context = { params: native.params as PathParams<P> };
        return toNative(await handler(batch, context));
      } catch (error) {
        return toNativeError(error);
      }
    };
  }
}
