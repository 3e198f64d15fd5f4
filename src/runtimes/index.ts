/**
 * Which native runtime predicts for an endpoint: one lookup. A handler
 * object (`py.handler()`, `onnx.handler()`) names its own runtime through
 * {@link RuntimeSource.nativeRuntime}; a TypeScript function becomes the
 * `js` (or `js-stream`) runtime here. Each runtime checks the loader it
 * takes; what combines with what beyond that is the core's model builder's
 * rule (crates/redesmyn/src/model/builder.rs).
 */
import type { JsRuntimeSpec, JsStreamRuntimeSpec, LoadOutput, OnnxRuntimeSpec, PipelineRuntimeSpec, PythonRuntimeSpec } from '../../binding';
import { streamHandler, unaryHandler } from './js';

export type NativeRuntime = JsRuntimeSpec | JsStreamRuntimeSpec | PythonRuntimeSpec | OnnxRuntimeSpec | PipelineRuntimeSpec;

/** What a runtime is made from, besides its handler. */
export interface RuntimeContext {
  /** The endpoint's path, for error messages. */
  path: string;
  stream: boolean;
  /** The model cache's loader, when the endpoint has a cache. */
  loader: unknown;
  /** The server's default Python worker processes (`python.workers`). */
  pythonWorkers: unknown;
  /** Models made by TypeScript loaders, by id. */
  models: Map<number, unknown>;
  /** A TypeScript loader as the core calls it (keeps the models it makes in `models`). */
  nativeLoader: (load: (path: string, params: Record<string, string>) => unknown) => (path: string, params: Record<string, string>) => Promise<LoadOutput>;
}

/** A handler that is not a TypeScript function: it names its native runtime. */
export interface RuntimeSource {
  nativeRuntime(context: RuntimeContext): NativeRuntime;
}

function isSource(handler: unknown): handler is RuntimeSource {
  return typeof (handler as Partial<RuntimeSource> | null)?.nativeRuntime === 'function';
}

/** The native runtime of an endpoint's handler. */
export function nativeRuntime(handler: unknown, context: RuntimeContext): NativeRuntime {
  if (isSource(handler)) return handler.nativeRuntime(context);
  if (typeof handler !== 'function') throw new TypeError(`endpoint '${context.path}' has no handler`);
  return typeScript(handler as Parameters<typeof unaryHandler>[0], context);
}

/** A TypeScript handler, with its TypeScript loader when the endpoint has a cache. */
function typeScript(handler: Parameters<typeof unaryHandler>[0], context: RuntimeContext): JsRuntimeSpec | JsStreamRuntimeSpec {
  const { loader, models } = context;
  if (loader !== undefined && typeof loader !== 'function') {
    throw new TypeError(`endpoint '${context.path}': a TypeScript handler needs a TypeScript loadModel function`);
  }
  const hooks = loader
    ? { load: context.nativeLoader(loader as (path: string, params: Record<string, string>) => unknown), release: (id: number) => void models.delete(id) }
    : {};
  if (context.stream) return { kind: 'js-stream', ...streamHandler(handler, models), ...hooks };
  return { kind: 'js', handler: unaryHandler(handler, models), ...hooks };
}
