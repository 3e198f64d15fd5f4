/**
 * Python, in-process: handlers (and, with a model cache, loaders) named as
 * `'module:function'`, run by the embedded interpreter.
 */

/** A Python prediction handler, `def predict(df: pl.DataFrame) -> pl.Series`. */
export class PythonHandler {
  readonly kind = 'python-handler';
  constructor(readonly target: string) {
    if (!/^[\w.]+:[\w.]+$/.test(target)) {
      throw new TypeError(`'${target}' is not a Python reference of the form 'module:function'`);
    }
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
   * outputs), a numpy array or a list: one prediction per row.
   */
  handler(target: string): PythonHandler {
    return new PythonHandler(target);
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
