// Driving a gRPC server with h2load (nghttp2's HTTP/2 load generator): a
// pre-encoded ModelInfer call POSTed as raw HTTP/2, closed loop, one stream
// in flight per connection like wrk. ghz checks the calls answer OK before a
// run (gRPC reports errors in trailers, which h2load does not read); h2load
// carries the load because it costs a fraction of ghz's CPU per call, so it
// is not the limit at 64 connections.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH, BUILD, PY } from './config.mjs';
import { median } from './report.mjs';
import { pinned, runLoadTool } from './proc.mjs';

export function h2loadVersion() {
  const r = spawnSync('h2load', ['--version'], { encoding: 'utf8' });
  return r.error ? null : r.stdout.trim().split('\n')[0].replace(/^h2load\s+/, '');
}

/** The gRPC-framed ModelInfer body for `model`, written once by peers/grpc_body.py. */
export function grpcBody(model) {
  const file = join(BUILD, 'scratch', `model-infer-${model}.bin`);
  if (!existsSync(file)) {
    const r = spawnSync(PY, [join(BENCH, 'peers', 'grpc_body.py'), model, file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`grpc_body.py failed: ${r.stderr}`);
  }
  return file;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))];
}

/**
 * Runs h2load against `url` (http://host:port/package.Service/Method) for
 * `seconds` with `connections` connections, one stream each. Latency
 * percentiles come from h2load's per-request log.
 */
export async function runH2load({ url, bodyFile, connections, seconds, cpus, timeoutS = 10 }) {
  const log = join(BUILD, 'scratch', `h2load-${process.pid}.log`);
  rmSync(log, { force: true });
  const args = [
    '-c',
    String(connections),
    '-m',
    '1',
    '-t',
    '1',
    '-D',
    String(seconds),
    '-T',
    String(timeoutS),
    '-d',
    bodyFile,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    '--log-file',
    log,
    url,
  ];
  const [cmd, a] = pinned(cpus, 'h2load', args);
  const run = await runLoadTool(cmd, a, seconds + timeoutS + 30);
  const out = `${run.out}${run.err}`;
  const done = out.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
  const finished = out.match(/finished in ([\d.]+)(m?s)/);
  if (!done || !finished || !existsSync(log)) throw new Error(`h2load exited ${run.code} without a summary:\n${out.slice(-2000)}`);
  const secondsRun = Number(finished[1]) / (finished[2] === 'ms' ? 1000 : 1);
  const rows = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t').map(Number));
  const ok = rows.filter(([, status]) => status === 200).map(([, , us]) => us).sort((x, y) => x - y);
  const mean = ok.reduce((sum, x) => sum + x, 0) / Math.max(1, ok.length);
  rmSync(log, { force: true });
  return {
    requests: ok.length,
    seconds: secondsRun,
    rps: ok.length / secondsRun,
    latency_us: { p50: median(ok), p99: percentile(ok, 99), p99_9: percentile(ok, 99.9), mean },
    errorCount: Math.max(Number(done[5]) + Number(done[6]) + Number(done[7]), rows.length - ok.length),
    meanBatch: null,
    wrkCpuPct: (run.cpuSeconds / secondsRun) * 100,
  };
}
