/**
 * ONNX models, run by onnxruntime inside the native core (off Node's
 * thread), with no handler code: `handler: onnx.handler('model.onnx')`.
 *
 * onnxruntime itself is a shared library the core opens at run time, from
 * the first of: the `dylib` option, `$ORT_DYLIB_PATH`, the
 * `onnxruntime-node` package that Node resolves from the working directory
 * (`npm install onnxruntime-node`), or a `node_modules/onnxruntime-node`
 * above the working directory.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { OnnxRuntimeSpec } from '../binding';
import type { RuntimeContext } from './runtimes';

/** How to run an ONNX model. */
export interface OnnxOptions {
  /** The onnxruntime shared library (`libonnxruntime.so.1`, `libonnxruntime.1.dylib`). */
  dylib?: string;
  /** Threads onnxruntime may use inside one run (its default: one per core). */
  intraThreads?: number;
}

/** An ONNX model file as a handler (no file: the model cache's artifacts). */
export class OnnxHandler {
  readonly kind = 'onnx-handler';
  constructor(
    readonly path: string | undefined,
    readonly options: OnnxOptions = {},
  ) {
    if (path !== undefined && (typeof path !== 'string' || path.length === 0)) {
      throw new TypeError('onnx.handler takes the path of a .onnx file');
    }
  }

  /** @internal The native runtime (see src/runtimes): its loader must be an {@link OnnxLoader}. */
  nativeRuntime(context: RuntimeContext): OnnxRuntimeSpec {
    const { loader } = context;
    if (loader !== undefined && !(loader instanceof OnnxLoader)) {
      throw new TypeError(`endpoint '${context.path}': an ONNX handler's cache needs onnx.loader()`);
    }
    if (loader === undefined && this.path === undefined) {
      throw new TypeError(`endpoint '${context.path}': onnx.handler() needs a .onnx file (or a cache with onnx.loader())`);
    }
    return onnxRuntime(this, loader, loader !== undefined);
  }
}

/**
 * ONNX model files as a model cache's loader: each artifact the cache
 * fetches is loaded as a model, and the endpoint's `onnx.handler()` runs it.
 */
export class OnnxLoader {
  readonly kind = 'onnx-loader';
  constructor(readonly options: OnnxOptions = {}) {}
}

const LIBRARY: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'libonnxruntime.so.1',
  darwin: 'libonnxruntime.1.dylib',
  win32: 'onnxruntime.dll',
};

/** @internal onnxruntime as the `onnxruntime-node` package Node resolves from the working directory ships it. */
export function resolveOnnxRuntime(): string | undefined {
  const file = LIBRARY[process.platform];
  if (!file) return undefined;
  let root: string;
  try {
    root = dirname(createRequire(resolve('package.json')).resolve('onnxruntime-node/package.json'));
  } catch {
    return undefined;
  }
  const bin = join(root, 'bin');
  if (!existsSync(bin)) return undefined;
  for (const napi of readdirSync(bin).sort().reverse()) {
    const path = join(bin, napi, process.platform, process.arch, file);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** The native runtime spec of an ONNX handler. */
function onnxRuntime(handler: OnnxHandler, loader: OnnxLoader | undefined, cached: boolean): OnnxRuntimeSpec {
  const options = { ...handler.options, ...loader?.options };
  const dylib =
    options.dylib !== undefined
      ? resolve(options.dylib)
      : process.env.ORT_DYLIB_PATH
        ? undefined
        : resolveOnnxRuntime();
  return {
    kind: 'onnx' as const,
    path: cached || handler.path === undefined ? undefined : resolve(handler.path),
    dylib,
    intraThreads: options.intraThreads,
  };
}

export const onnx = {
  /**
   * An ONNX model as the endpoint's handler. Each batch becomes the model's
   * input tensors along the first dimension: one `[N, F]` tensor of all the
   * schema's fields in order when the model has one input, else one tensor
   * per input named after a schema field. The graph's outputs are the
   * predictions: one output gives one value (or array) per row, several give
   * an object per row keyed by output name. Export scikit-learn classifiers
   * with `options={id(model): {'zipmap': False}}`. With a model cache, leave
   * out `path`: the cache's artifacts are the models (see `onnx.loader()`).
   */
  handler(path?: string, options?: OnnxOptions): OnnxHandler {
    return new OnnxHandler(path, options);
  },
  /** The loader of a model cache whose artifacts are `.onnx` files. */
  loader(options?: OnnxOptions): OnnxLoader {
    return new OnnxLoader(options);
  },
};
