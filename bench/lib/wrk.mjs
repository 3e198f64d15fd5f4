// Driving a server with wrk and reading wrk/post.lua's summary line.
import { spawnSync } from 'node:child_process';
import { WRK_SCRIPT } from './config.mjs';
import { pinned, runLoadTool } from './proc.mjs';

export function wrkVersion() {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (r.error) return null;
  return `${r.stdout}${r.stderr}`.split('\n')[0].replace(/\s+Copyright.*/, '').replace(/^wrk\s+/, '').trim();
}

/**
 * Runs wrk for `seconds` with `connections` connections, one thread, POSTing
 * `bodyFile` (with `repeat`, a pool: see post.lua). Resolves to post.lua's summary plus derived figures. Only one
 * wrk may run at a time (its CPU time is read from this process's children).
 */
export async function runWrk({ url, bodyFile, contentType = 'application/json', repeat = null, connections, seconds, cpus, timeoutS = 10 }) {
  const args = [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    `--timeout`,
    `${timeoutS}s`,
    '-s',
    WRK_SCRIPT,
    url,
    '--',
    bodyFile,
    contentType,
    ...(repeat == null ? [] : [String(repeat)]),
  ];
  const [cmd, a] = pinned(cpus, 'wrk', args);
  // wrk stops itself after `seconds`; the limit only guards against a hang.
  const run = await runLoadTool(cmd, a, seconds + timeoutS + 30);
  const text = `${run.out}${run.err}`;
  const line = text.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (!line) throw new Error(`wrk exited ${run.code} without a result:\n${text.slice(-2000)}`);
  const r = JSON.parse(line.slice('BENCH_RESULT '.length));
  const secondsRun = r.duration_us / 1e6;
  const errors = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
  return {
    ...r,
    seconds: secondsRun,
    rps: r.requests / secondsRun,
    errorCount: errors,
    meanBatch: r.batch.responses > 0 ? r.batch.sum / r.batch.responses : null,
    // Share of one core wrk itself used: near 100 means the load
    // generator, not the server, may be what limits req/s.
    wrkCpuPct: (run.cpuSeconds / secondsRun) * 100,
  };
}
