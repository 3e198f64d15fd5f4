// The environment every cargo build of this project runs with.
//
// - CARGO_TARGET_DIR defaults to a folder outside the clone, so builds from
//   different clones (CI's included) reuse each other's work.
// - PYO3_PYTHON names the interpreter. Without it PyO3's build script looks
//   for `python3` on PATH and reruns whenever PATH changes; npm puts the
//   clone's node_modules/.bin first on PATH, so every new clone, and every
//   switch between `cargo test` and `npm run build`, recompiled PyO3 and all
//   that depends on it, Polars included.
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The real path of the base interpreter `python3` runs (venvs and shims resolved). */
function basePython(env) {
  const found = spawnSync(
    'python3',
    ['-c', 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'],
    { env, encoding: 'utf8' },
  );
  const path = found.status === 0 ? found.stdout.trim() : '';
  return path || undefined;
}

export function cargoEnv(base = process.env) {
  const env = { ...base };
  env.CARGO_TARGET_DIR ??= join(homedir(), '.cache', 'redesmyn-target');
  if (!env.PYO3_PYTHON) {
    const python = basePython(env);
    if (python) env.PYO3_PYTHON = python;
  }
  return env;
}
