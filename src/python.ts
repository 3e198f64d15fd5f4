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

/** Where the embedded interpreter finds its packages and your modules. */
export interface PythonOptions {
  /** A virtual environment (made with the Python redesmyn embeds). Relative paths are from the working directory. Default: `$VIRTUAL_ENV`. */
  venv?: string;
  /** A Python executable whose installation or venv to use, instead of `venv`. */
  executable?: string;
  /** Directories to import your modules from, searched before site-packages. */
  path?: string[];
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
