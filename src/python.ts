import type { PythonRuntimeSpec } from '../binding';
import type { RuntimeContext } from './runtimes';

/**
 * Python: handlers (and, with a model cache, loaders) named as
 * `'module:function'`, run by the embedded interpreter, or with `workers`
 * in a pool of Python worker processes.
 */

/**
 * A pool of Python worker processes for an endpoint: `count` processes of
 * the same environment, each importing the handler's module and loading its
 * own copy of the models. Batches cross in shared memory as Arrow IPC.
 */
export interface PythonWorkers {
  /** Worker processes (0: in-process). */
  count: number;
  /** A worker whose resident memory exceeds this many MiB after a batch is replaced (the batch still succeeds). */
  maxRssMiB?: number;
  /** A batch running longer than this fails with 500 and its worker is killed and replaced. */
  timeoutMs?: number;
}

/** Options of `py.handler`. */
export interface PythonHandlerOptions {
  /**
   * Run the handler in `N` worker processes (or a {@link PythonWorkers}
   * object) instead of in-process; `0` keeps it in-process even when the
   * server's `python.workers` says otherwise.
   */
  workers?: number | PythonWorkers;
}

/** `workers` as a {@link PythonWorkers}, or `undefined` for in-process. */
export function workersOf(workers: number | PythonWorkers | undefined): PythonWorkers | undefined {
  if (workers === undefined) return undefined;
  const spec = typeof workers === 'number' ? { count: workers } : workers;
  if (!Number.isInteger(spec.count) || spec.count < 0) {
    throw new TypeError(`python workers must be a whole number of processes, not ${spec.count}`);
  }
  return spec.count === 0 ? undefined : spec;
}

/** A Python prediction handler, `def predict(df: pl.DataFrame) -> pl.Series`. */
export class PythonHandler {
  readonly kind = 'python-handler';
  constructor(
    readonly target: string,
    readonly options: PythonHandlerOptions = {},
  ) {
    if (!/^[\w.]+:[\w.]+$/.test(target)) {
      throw new TypeError(`'${target}' is not a Python reference of the form 'module:function'`);
    }
    workersOf(options.workers);
  }

  /** @internal The native runtime (see src/runtimes): its loader must be a {@link PythonLoader}. */
  nativeRuntime(context: RuntimeContext): PythonRuntimeSpec {
    const { loader } = context;
    if (loader !== undefined && !(loader instanceof PythonLoader)) {
      throw new TypeError(`endpoint '${context.path}': a Python handler needs a Python loader (py.loader)`);
    }
    const workers = workersOf(
      (this.options.workers ?? (context.stream ? undefined : context.pythonWorkers)) as number | PythonWorkers | undefined,
    );
    return {
      kind: 'python',
      handler: this.target,
      loader: loader?.target,
      stream: context.stream,
      workers: workers && { count: workers.count, maxRssMib: workers.maxRssMiB, timeoutMs: workers.timeoutMs },
    };
  }
}

/** A Python model loader, `def load(path: str) -> model` (`joblib:load` works as is). */
export class PythonLoader {
  readonly kind = 'python-loader';
  constructor(readonly target: string) {
    if (!/^[\w.]+:[\w.]+$/.test(target)) {
      throw new TypeError(`'${target}' is not a Python reference of the form 'module:function'`);
    }
  }
}

/**
 * Which Python environment to embed (CPython 3.10 to 3.13, built as a shared
 * library), and where your modules are. The environment is the first of:
 * `venv`, `executable`, `$VIRTUAL_ENV`, `python3` on `PATH`.
 */
export interface PythonOptions {
  /** A virtual environment directory. Relative paths are from the working directory. Wins over `executable`. */
  venv?: string;
  /** A Python executable whose installation (or venv) to use when `venv` is not given. */
  executable?: string;
  /** Directories to import your modules from, searched before site-packages. */
  path?: string[];
  /**
   * Run every Python handler of this server in worker processes (a number,
   * or a {@link PythonWorkers} object) unless its `py.handler` options say
   * otherwise. Streaming handlers stay in-process. Default: in-process.
   */
  workers?: number | PythonWorkers;
}

import { join } from 'node:path';

/** The built-in runtimes (`redesmyn_runtimes`), shipped in this package and always on the Python path. */
export const RUNTIMES_PATH = join(__dirname, '..', 'python');

/** The Python executable of these options (the first of venv, executable, $VIRTUAL_ENV, python3). */
export function pythonExecutable(options: PythonOptions = {}): string {
  if (options.venv !== undefined) return join(options.venv, 'bin', 'python');
  if (options.executable !== undefined) return options.executable;
  if (process.env.VIRTUAL_ENV) return join(process.env.VIRTUAL_ENV, 'bin', 'python');
  return 'python3';
}

export const py = {
  /**
   * A Python function as a handler. It is called with the batch as a
   * `polars.DataFrame` (and the model first, when the endpoint has a model
   * cache); a `params` keyword argument, if it takes one, gets the path
   * parameters. It returns a `polars.Series`, a `polars.DataFrame` (several
   * outputs), a numpy array or a list: one prediction per row. With
   * `{ workers: N }` it runs in N worker processes (see README, "Python
   * worker processes").
   */
  handler(target: string, options?: PythonHandlerOptions): PythonHandler {
    return new PythonHandler(target, options);
  },
  /**
   * A Python function as a model loader: called with the artifact's local
   * path (and a `params` keyword argument, if it takes one); what it returns
   * is the model the handler gets first: `predict(model, df)`.
   */
  loader(target: string): PythonLoader {
    return new PythonLoader(target);
  },
};
