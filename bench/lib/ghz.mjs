// Driving a gRPC server with ghz (the gRPC counterpart of wrk.mjs): one
// ModelInfer request, closed loop, a fixed number of connections.
import { join } from 'node:path';
import { ensureGoTools } from '../../scripts/go-tools.mjs';
import { ROOT } from './config.mjs';
import { pinned, runLoadTool } from './proc.mjs';

/** The KServe V2 proto redesmyn builds from; MLServer serves the same service. */
export const INFERENCE_PROTO = join(ROOT, 'crates', 'redesmyn', 'proto', 'inference.proto');
export const MODEL_INFER = 'inference.GRPCInferenceService.ModelInfer';

export function ghzPath() {
  return ensureGoTools(['ghz']).ghz;
}

/** A ModelInfer request carrying one iris row as an FP64 [1, 4] tensor in typed contents. */
export function irisInferRequest(model) {
  return {
    model_name: model,
    inputs: [{ name: 'predict', datatype: 'FP64', shape: [1, 4], contents: { fp64_contents: [5.9, 3.0, 5.1, 1.8] } }],
  };
}

/**
 * Runs ghz against `target` (host:port) for `seconds` with `connections`
 * connections and as many concurrent calls (one in flight per connection,
 * like wrk's closed loop). Resolves to the figures loadOnce reports. Only one
 * ghz may run at a time (its CPU time is read from this process's children).
 */
export async function runGhz({ target, data, connections, seconds, cpus, timeoutS = 10 }) {
  const args = [
    '--insecure',
    '--proto',
    INFERENCE_PROTO,
    '--call',
    MODEL_INFER,
    '-d',
    JSON.stringify(data),
    '-c',
    String(connections),
    '--connections',
    String(connections),
    '-z',
    `${seconds}s`,
    '-t',
    `${timeoutS}s`,
    // Calls in flight when the time is up finish and count (ghz's default
    // cancels them and reports each as an error).
    '--duration-stop',
    'wait',
    '-O',
    'json',
    target,
  ];
  const [cmd, a] = pinned(cpus, ghzPath(), args);
  const run = await runLoadTool(cmd, a, seconds + timeoutS + 30);
  let r;
  try {
    r = JSON.parse(run.out);
  } catch {
    throw new Error(`ghz exited ${run.code} without a JSON report:\n${(run.err || run.out).slice(-2000)}`);
  }
  const pct = (q) => (r.latencyDistribution ?? []).find((d) => d.percentage === q)?.latency ?? Number.NaN;
  const ok = r.statusCodeDistribution?.OK ?? 0;
  const secondsRun = r.total / 1e9;
  return {
    requests: ok,
    seconds: secondsRun,
    rps: ok / secondsRun,
    // ghz reports nanoseconds.
    latency_us: { p50: pct(50) / 1e3, p99: pct(99) / 1e3, p99_9: pct(99.9) / 1e3, mean: r.average / 1e3 },
    errorCount: r.count - ok,
    statuses: r.statusCodeDistribution ?? {},
    firstError: Object.keys(r.errorDistribution ?? {})[0] ?? null,
    meanBatch: null,
    wrkCpuPct: (run.cpuSeconds / secondsRun) * 100,
  };
}
