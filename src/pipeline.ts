/**
 * Pipelines: a model whose steps are other models of the server (any
 * runtime: TypeScript, Python, ONNX) or ensembles of their outputs, run
 * in one process on the batch's columns. A pipeline is registered like an
 * endpoint and served like any model: its path, V2 name, metadata, metrics
 * and `predict()`.
 */
import { Endpoint, type BatchOptions, type OutputTensor, type PredictionCacheOptions } from './endpoint';
import type { Fields, Schema } from './schema';
import type { PipelineStepSpec } from '../binding';
import { PipelineSteps } from './runtimes/pipeline';

/** How an ensemble step combines the outputs it names. */
export type Combine = 'mean' | 'vote' | 'weighted_sum' | 'concat';

/**
 * A step that runs a model of the server: an endpoint registered before
 * the pipeline, or a model's name (a repository's, one added while serving).
 * `inputs` maps the model's fields to what they read: a pipeline input or
 * an earlier step's output by name (`score`), a step's named output
 * (`classify.label`), or a step's first output (`classify`). A field left
 * out reads the column of its own name.
 */
export interface ModelStep<S extends Fields = Fields> {
  name: string;
  model: Endpoint<S, string, any> | string;
  /** The model's version (default: the one unversioned requests reach). */
  version?: string;
  inputs?: { [K in keyof S & string]?: string };
}

/**
 * A step that combines earlier outputs row by row: `mean` and
 * `weighted_sum` (one weight per output) of numbers, `vote` (the most
 * common value; a tie goes to the first listed), or `concat` (an object
 * per row keyed by output).
 */
export interface EnsembleStep {
  name: string;
  combine: Combine;
  of: readonly string[];
  weights?: readonly number[];
}

export type PipelineStep = ModelStep<any> | EnsembleStep;

export interface PipelineOptions<F extends Fields, P extends string> {
  /** The pipeline's model name (V2 and errors). */
  name: string;
  /** Its native path (default `/predictions/<name>`). */
  path?: P;
  version?: string;
  /**
   * What its requests carry (default: the first step's fields; a step
   * given by name then needs `inputs` here, as only the server knows it).
   */
  inputs?: Schema<F>;
  /** In any order; the last one listed answers for the pipeline. */
  steps: readonly PipelineStep[];
  /** Batching at the pipeline's entry; each step gets the whole batch. */
  batch?: BatchOptions;
  /** Declared outputs (default: the last step's, when known). */
  outputs?: OutputTensor[];
  predictionCache?: PredictionCacheOptions;
}

/** A step's model name as the server knows it. */
function modelName(model: Endpoint<Fields, string, unknown> | string): string {
  if (typeof model === 'string') return model;
  if (model.name !== undefined) return model.name;
  // As the core names a model after its path: its literal segments joined with '-'.
  const literals = model.path.split('/').filter((s) => s !== '' && !s.startsWith('{'));
  return literals.length === 0 ? 'model' : literals.join('-');
}

function isEnsemble(step: PipelineStep): step is EnsembleStep {
  return (step as EnsembleStep).combine !== undefined;
}

/** The binding's form of a step. */
function stepSpec(step: PipelineStep): PipelineStepSpec {
  if (isEnsemble(step)) return { name: step.name, combine: step.combine, of: [...step.of], weights: step.weights && [...step.weights] };
  const inputs = step.inputs === undefined ? undefined : (Object.fromEntries(Object.entries(step.inputs).filter(([, v]) => v !== undefined)) as Record<string, string>);
  return { name: step.name, model: modelName(step.model as Endpoint<Fields, string, unknown> | string), version: step.version, inputs };
}

/**
 * A model made of steps. The server checks it at registration: every
 * step's model exists, every input a step reads is a pipeline input or a
 * step's output of a fitting type, the steps form no cycle; the error
 * names the step and the column.
 *
 * ```ts
 * const pipeline = new Pipeline({
 *   name: 'iris-pipeline',
 *   steps: [
 *     { name: 'features', model: features },            // a TypeScript endpoint
 *     { name: 'classify', model: 'iris-onnx' },          // reads the features' columns by name
 *     { name: 'decide', model: rule, inputs: { label: 'classify.label' } },
 *   ],
 * });
 * server.register(features).register(rule).register(pipeline);
 * ```
 */
export class Pipeline<F extends Fields = Fields, P extends string = string> extends Endpoint<F, P, undefined> {
  readonly steps: readonly PipelineStep[];

  constructor(options: PipelineOptions<F, P>) {
    if (!Array.isArray(options.steps) || options.steps.length === 0) {
      throw new TypeError(`pipeline '${options.name}' needs at least one step`);
    }
    const first = options.steps[0];
    const schema = options.inputs ?? (!isEnsemble(first) && typeof first.model !== 'string' ? (first.model.schema as unknown as Schema<F>) : undefined);
    if (schema === undefined) {
      throw new TypeError(`pipeline '${options.name}': its first step names its model by name, so declare the pipeline's inputs`);
    }
    super({
      path: (options.path ?? `/predictions/${options.name}`) as P,
      name: options.name,
      version: options.version,
      schema,
      batch: options.batch,
      outputs: options.outputs,
      predictionCache: options.predictionCache,
      handler: new PipelineSteps(options.steps.map(stepSpec)),
    });
    this.steps = options.steps;
  }

  /** A step over `model`, with its `inputs` typed by the model's fields. */
  static step<S extends Fields>(name: string, model: Endpoint<S, string, any>, options: { inputs?: ModelStep<S>['inputs']; version?: string } = {}): ModelStep<S> {
    return { name, model, ...options };
  }
}
