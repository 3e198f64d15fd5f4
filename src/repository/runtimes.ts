/**
 * The runtime table: a model's `runtime` (or MLServer's `implementation`)
 * to the code that serves it. Python runtimes are modules of the
 * `redesmyn_runtimes` package shipped in this npm package (python/).
 */
import type { ModelSettings } from './settings';

/** A Python package a runtime imports, and what to pip install for it. */
export interface Requirement {
  import: string;
  pip: string;
}

export type Runtime =
  | {
      kind: 'python';
      name: string;
      /** `module` of `redesmyn_runtimes` with `load(path)` and the handler function. */
      module: string;
      handler: string;
      /** The loader's artifact: the file `parameters.uri` names, or the settings file itself (custom classes). */
      artifact: 'uri' | 'settings';
      requires: Requirement[];
    }
  | { kind: 'typescript'; name: string }
  | { kind: 'onnx'; name: string }
  | { kind: 'pipeline'; name: string };

const BASE: Requirement[] = [
  { import: 'polars', pip: 'polars' },
  { import: 'numpy', pip: 'numpy' },
];

/** MLServer's runtime classes and the redesmyn runtime each maps to. */
export const MLSERVER_RUNTIMES: Record<string, string> = {
  'mlserver_sklearn.SKLearnModel': 'sklearn',
  'mlserver_xgboost.XGBoostModel': 'xgboost',
  'mlserver_lightgbm.LightGBMModel': 'lightgbm',
  'mlserver_mlflow.MLflowRuntime': 'mlflow',
};

export const RUNTIMES = ['sklearn', 'xgboost', 'lightgbm', 'tensorflow', 'mlflow', 'python', 'typescript', 'onnx', 'pipeline'] as const;

/** The runtime of a model's settings, or an error message saying what was expected. */
export function resolveRuntime(settings: ModelSettings): Runtime | { error: string; key: string } {
  let name = settings.runtime;
  if (settings.implementation !== undefined) {
    name = MLSERVER_RUNTIMES[settings.implementation];
    if (name === undefined) {
      if (!/^[\w.]+[.:]\w+$/.test(settings.implementation)) {
        return {
          key: 'implementation',
          error: `unknown runtime ${JSON.stringify(settings.implementation)}; expected one of ${Object.keys(MLSERVER_RUNTIMES).join(', ')} or a custom Python class 'module.Class'`,
        };
      }
      // Any other class, MLServer's own runtimes included (mlserver_huggingface, …): an mlserver.MLModel served
      // through the adapter (python/redesmyn_runtimes/_mlmodel.py) when its package is installed.
      name = 'python';
    }
  }
  switch (name) {
    case 'sklearn':
      return {
        kind: 'python',
        name,
        module: 'redesmyn_runtimes.sklearn',
        handler: settings.method ?? 'predict',
        artifact: 'uri',
        requires: [...BASE, { import: 'sklearn', pip: 'scikit-learn' }, { import: 'joblib', pip: 'joblib' }],
      };
    case 'xgboost':
      return { kind: 'python', name, module: 'redesmyn_runtimes.xgboost', handler: 'predict', artifact: 'uri', requires: [...BASE, { import: 'xgboost', pip: 'xgboost-cpu' }] };
    case 'lightgbm':
      return { kind: 'python', name, module: 'redesmyn_runtimes.lightgbm', handler: 'predict', artifact: 'uri', requires: [...BASE, { import: 'lightgbm', pip: 'lightgbm' }] };
    case 'tensorflow':
      // A Keras file or a SavedModel (its folder is the uri: the artifact is its saved_model.pb).
      return { kind: 'python', name, module: 'redesmyn_runtimes.tensorflow', handler: 'predict', artifact: 'uri', requires: [...BASE, { import: 'tensorflow', pip: 'tensorflow-cpu' }] };
    case 'mlflow':
      // An MLflow model folder (parameters.uri, default the model's folder) served by MLServer's
      // MLflowRuntime through the mlserver.MLModel adapter; the schema comes from its signature.
      return { kind: 'python', name, module: 'redesmyn_runtimes.mlflow', handler: 'predict', artifact: 'settings', requires: [...BASE, { import: 'mlflow', pip: 'mlflow' }] };
    case 'python':
      if (settings.implementation === undefined) return { key: 'implementation', error: "the python runtime needs 'implementation': 'module.Class'" };
      return { kind: 'python', name, module: 'redesmyn_runtimes.custom', handler: 'predict', artifact: 'settings', requires: BASE };
    case 'typescript':
      return { kind: 'typescript', name };
    case 'onnx':
      // onnxruntime inside the core (crates/redesmyn-onnx); the schema comes from the declared `inputs`.
      return { kind: 'onnx', name };
    case 'pipeline':
      // Other models of the repository run as steps in one process (crates/redesmyn/src/pipeline).
      return { kind: 'pipeline', name };
    default:
      return { key: 'runtime', error: `unknown runtime ${JSON.stringify(name)}; expected one of ${RUNTIMES.join(', ')}` };
  }
}
