/**
 * A pipeline's steps as its native runtime (`{ kind: 'pipeline', steps }`):
 * the core checks them against the server's models at registration and
 * runs them on each batch (crates/redesmyn/src/pipeline).
 */
import type { PipelineRuntimeSpec, PipelineStepSpec } from '../../binding';
import type { RuntimeContext, RuntimeSource } from './index';

/** The steps of a pipeline, as the handler of its endpoint. */
export class PipelineSteps implements RuntimeSource {
  constructor(readonly steps: readonly PipelineStepSpec[]) {}

  nativeRuntime(context: RuntimeContext): PipelineRuntimeSpec {
    if (context.stream) throw new TypeError(`pipeline '${context.path}' answers each batch once; it cannot stream`);
    if (context.loader !== undefined) throw new TypeError(`pipeline '${context.path}': a pipeline has no model cache; its steps' models have theirs`);
    return { kind: 'pipeline', steps: this.steps.map((s) => ({ ...s })) };
  }
}
