// Open-loop load with vegeta: requests leave at a fixed rate whether or not
// earlier ones were answered, so a slow answer shows up in the latency of
// every request scheduled behind it (no coordinated omission, unlike a
// closed-loop run where a stalled server also stalls the load generator).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureGoTools } from '../../scripts/go-tools.mjs';
import { BUILD } from './config.mjs';
import { pinned, runLoadTool } from './proc.mjs';

/**
 * vegeta's workers and connections, bounded. Unbounded (its default), vegeta
 * on one core meets a rate it cannot sustain by starting ever more workers
 * and connections and collapses: at 15 000 req/s against the actix echo it
 * sent 2 600 req/s with a p50 of 4.7 s. Bounded at 64 (the closed-loop
 * scenarios' connection count) it sends 25 000 req/s at p50 0.85 ms and tops
 * out near 33 000 req/s; at 256 its own overhead put p50 at 6.5 ms. When a
 * server falls behind, the 64 in-flight requests cap what vegeta sends, and
 * "sent req/s" below the rate says so.
 */
const IN_FLIGHT = 64;

/**
 * POSTs `bodyFile` to `url` at `rate` requests/s for `seconds`. Resolves to
 * the achieved rate, latency percentiles (ms) over every request sent, and
 * the share that failed.
 */
export async function runVegeta({ url, bodyFile, contentType = 'application/json', rate, seconds, cpus, timeoutS = 10 }) {
  const vegeta = ensureGoTools(['vegeta']).vegeta;
  const targets = join(BUILD, 'scratch', `vegeta-${process.pid}.targets`);
  writeFileSync(targets, `POST ${url}\nContent-Type: ${contentType}\n@${bodyFile}\n`);
  const script = [
    `${vegeta} attack -targets=${targets} -rate=${Math.round(rate)}/s -duration=${seconds}s -timeout=${timeoutS}s -keepalive=true` +
      ` -workers=${IN_FLIGHT} -max-workers=${IN_FLIGHT} -connections=${IN_FLIGHT} -max-connections=${IN_FLIGHT}`,
    `${vegeta} report -type=json`,
  ].join(' | ');
  const [cmd, a] = pinned(cpus, 'sh', ['-c', script]);
  const run = await runLoadTool(cmd, a, seconds + timeoutS + 30);
  let r;
  try {
    r = JSON.parse(run.out);
  } catch {
    throw new Error(`vegeta exited ${run.code} without a report:\n${(run.err || run.out).slice(-2000)}`);
  }
  const msOf = (ns) => ns / 1e6;
  return {
    targetRps: rate,
    // Requests sent per second: below the target when vegeta itself could not keep up.
    sentRps: r.rate,
    rps: r.throughput,
    p50Ms: msOf(r.latencies['50th']),
    p90Ms: msOf(r.latencies['90th']),
    p99Ms: msOf(r.latencies['99th']),
    maxMs: msOf(r.latencies.max),
    errors: r.requests - Math.round(r.requests * r.success),
    requests: r.requests,
    loadCpuPct: (run.cpuSeconds / seconds) * 100,
  };
}

/**
 * Like {@link runVegeta}, but keeps every request: resolves to
 * `[{ at, code, latencyMs }]` (`at`: ms since the epoch when the request was
 * sent), for scenarios that cut a run into windows. `onStart` runs once
 * vegeta has started, with the epoch ms of the start.
 */
export async function runVegetaRequests({ url, bodyFile, contentType = 'application/json', rate, seconds, cpus, timeoutS = 10, onStart }) {
  const vegeta = ensureGoTools(['vegeta']).vegeta;
  const targets = join(BUILD, 'scratch', `vegeta-${process.pid}.targets`);
  const out = join(BUILD, 'scratch', `vegeta-${process.pid}.jsonl`);
  writeFileSync(targets, `POST ${url}\nContent-Type: ${contentType}\n@${bodyFile}\n`);
  const script = [
    `${vegeta} attack -targets=${targets} -rate=${Math.round(rate)}/s -duration=${seconds}s -timeout=${timeoutS}s -keepalive=true` +
      ` -workers=${IN_FLIGHT} -max-workers=${IN_FLIGHT} -connections=${IN_FLIGHT} -max-connections=${IN_FLIGHT}`,
    `${vegeta} encode -to=json -output=${out}`,
  ].join(' | ');
  const [cmd, a] = pinned(cpus, 'sh', ['-c', script]);
  const started = Date.now();
  const running = runLoadTool(cmd, a, seconds + timeoutS + 30);
  await onStart?.(started);
  const run = await running;
  if (run.code !== 0) throw new Error(`vegeta exited ${run.code}:\n${(run.err || run.out).slice(-2000)}`);
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const r = JSON.parse(line);
      return { at: Date.parse(r.timestamp), code: r.code, latencyMs: r.latency / 1e6 };
    });
}
