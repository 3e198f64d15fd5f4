// What the numbers were measured on.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { BENCH, PY, ROOT } from './config.mjs';
import { wrkVersion } from './wrk.mjs';
import { h2loadVersion } from './h2load.mjs';

const run = (cmd, args, opts) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return r.status === 0 ? r.stdout.trim() : null;
};

const read = (f) => {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
};

function npmVersion(dir, name) {
  try {
    return JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

function pythonVersions() {
  if (!existsSync(PY)) return {};
  const code = `
import json, sys, importlib.metadata as m
out = {"python": sys.version.split()[0]}
for p in ["mlserver", "mlserver-sklearn", "fastapi", "uvicorn", "scikit-learn", "polars", "numpy"]:
    try: out[p] = m.version(p)
    except Exception: pass
print(json.dumps(out))`;
  const s = run(PY, ['-c', code]);
  return s ? JSON.parse(s) : {};
}

export function describeMachine() {
  const cpuinfo = read('/proc/cpuinfo');
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const mhz = cpuinfo.match(/^cpu MHz\s*:\s*(.+)$/m)?.[1];
  const osName = read('/etc/os-release').match(/^PRETTY_NAME="?([^"\n]+)"?/m)?.[1] ?? os.type();
  const governor = read('/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor').trim() || null;
  const commit = run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT });
  const dirty = commit ? run('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT }) : null;
  return {
    cpu: model,
    cpuMHz: mhz ? Number(mhz) : null,
    cores: os.cpus().length, // all CPUs, not this process's affinity (the harness pins itself)
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    os: osName,
    governor,
    versions: {
      node: process.versions.node,
      rustc: run('rustc', ['--version'])?.replace(/^rustc /, '') ?? null,
      wrk: wrkVersion(),
      h2load: h2loadVersion(),
      fastify: npmVersion(BENCH, 'fastify'),
      'onnxruntime-node': npmVersion(BENCH, 'onnxruntime-node'),
      ...pythonVersions(),
    },
    redesmyn: commit ? `${commit}${dirty ? ' (uncommitted changes)' : ''}` : 'no commit yet',
  };
}

export function machineMarkdown(m) {
  const v = Object.entries(m.versions)
    .filter(([, x]) => x)
    .map(([k, x]) => `${k} ${x}`)
    .join(', ');
  return [
    `- **CPU**: ${m.cpu}${m.cpuMHz ? ` (${Math.round(m.cpuMHz)} MHz)` : ''}, ${m.cores} cores${m.governor ? `, governor ${m.governor}` : ''}`,
    `- **Memory**: ${m.memoryGiB} GiB`,
    `- **OS**: ${m.os}, ${m.kernel}`,
    `- **redesmyn**: ${m.redesmyn}`,
    `- **Versions**: ${v}`,
  ].join('\n');
}
