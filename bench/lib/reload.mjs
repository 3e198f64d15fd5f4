// The version switch of scenario 17: a fresh model repository per run
// (iris version 1, sklearn), a new version dropped in atomically, and the
// latency of the requests around the switch against those before it.
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD, MODELS } from './config.mjs';

const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];

/** A new repository folder holding `iris/1` (the bench's iris model), served with policy latest 1. */
export function freshReloadRepository() {
  mkdirSync(join(BUILD, 'scratch'), { recursive: true });
  const repo = mkdtempSync(join(BUILD, 'scratch', 'reload-'));
  const settings = {
    name: 'iris',
    runtime: 'sklearn',
    parameters: { uri: './model.joblib' },
    inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }],
    columns: COLUMNS,
    max_batch_size: 64,
    versionPolicy: { latest: { num_versions: 1 } },
  };
  mkdirSync(join(repo, 'iris', '1'), { recursive: true });
  writeFileSync(join(repo, 'iris', 'model-settings.json'), `${JSON.stringify(settings, null, 2)}\n`);
  copyFileSync(join(MODELS, 'iris.joblib'), join(repo, 'iris', '1', 'model.joblib'));
  return repo;
}

/** Drops version `version` into the repository at once: written aside, then renamed into place. */
export function addVersion(repo, version) {
  const aside = join(repo, 'iris', `.incoming-${version}`);
  mkdirSync(aside, { recursive: true });
  copyFileSync(join(MODELS, 'iris.joblib'), join(aside, 'model.joblib'));
  renameSync(aside, join(repo, 'iris', String(version)));
}

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);

/** Count, errors (not 200) and p50/p99 of the requests sent in [from, to). */
export function windowStats(requests, from, to) {
  const inside = requests.filter((r) => r.at >= from && r.at < to);
  const latencies = inside.map((r) => r.latencyMs).sort((a, b) => a - b);
  return {
    requests: inside.length,
    errors: inside.filter((r) => r.code !== 200).length,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length ? latencies[latencies.length - 1] : NaN,
  };
}
