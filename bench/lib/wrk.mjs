// Driving a server with wrk and reading wrk/post.lua's summary line.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WRK_SCRIPT } from './config.mjs';
import { pinned } from './proc.mjs';

export function wrkVersion() {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (r.error) return null;
  return `${r.stdout}${r.stderr}`.split('\n')[0].replace(/\s+Copyright.*/, '').replace(/^wrk\s+/, '').trim();
}

/** CPU seconds of this process's exited and waited-for children (wrk, once it has exited). */
export function childCpuSeconds() {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / 100; // cutime + cstime, USER_HZ = 100
}

/**
 * Runs wrk for `seconds` with `connections` connections, one thread, POSTing
 * `bodyFile`. Resolves to post.lua's summary plus derived figures. Only one
 * wrk may run at a time (its CPU time is read from this process's children).
 */
export function runWrk({ url, bodyFile, contentType = 'application/json', connections, seconds, cpus, timeoutS = 10 }) {
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
  ];
  const [cmd, a] = pinned(cpus, 'wrk', args);
  const cpu0 = childCpuSeconds();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    // wrk stops itself after `seconds`; this only guards against a hang.
    const guard = setTimeout(() => p.kill('SIGKILL'), (seconds + timeoutS + 30) * 1000);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(guard);
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (!line) return reject(new Error(`wrk exited ${code} without a result:\n${out.slice(-2000)}`));
      const r = JSON.parse(line.slice('BENCH_RESULT '.length));
      const seconds = r.duration_us / 1e6;
      const errors = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
      resolve({
        ...r,
        seconds,
        rps: r.requests / seconds,
        errorCount: errors,
        meanBatch: r.batch.responses > 0 ? r.batch.sum / r.batch.responses : null,
        // Share of one core wrk itself used: near 100 means the load
        // generator, not the server, may be what limits req/s.
        wrkCpuPct: ((childCpuSeconds() - cpu0) / seconds) * 100,
      });
    });
  });
}
