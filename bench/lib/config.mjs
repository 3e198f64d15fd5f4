// Paths and the settings every contender shares.
import { join } from 'node:path';
import { homedir } from 'node:os';

export const BENCH = join(import.meta.dirname, '..');
export const ROOT = join(BENCH, '..');
export const VENV = join(BENCH, '.venv-peers');
export const PY = join(VENV, 'bin', 'python');
export const MODELS = join(BENCH, '.models');
export const BUILD = join(BENCH, '.build');
export const RESULTS = join(BENCH, 'results');
export const BODIES = join(BENCH, 'bodies');
export const WRK_SCRIPT = join(BENCH, 'wrk', 'post.lua');

/**
 * Cargo target dir of the benchmark's own builds (the actix echo and
 * redesmyn's release addon). Separate from the one the tests build in, so a
 * long release build never holds the lock a developer's `cargo test` waits on.
 */
export const BENCH_TARGET = process.env.BENCH_CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'redesmyn-bench-target');

/**
 * Batching. redesmyn runs with its defaults: 64 rows, no window (a batch
 * takes what is queued when the handler is free). MLServer's adaptive
 * batching needs a window to batch at all: 64 rows or 2 ms.
 */
export const BATCH = { maxSize: 64, maxDelayMs: 0 };
export const MLSERVER_BATCH = { maxSize: 64, maxDelayMs: 2 };

/** MLServer's inference pool: 0 = predict in the server process (faster on one core, see README). */
export const MLSERVER_PARALLEL_WORKERS = Number(process.env.BENCH_MLSERVER_WORKERS ?? 0);

/**
 * Environment for every server: one thread for BLAS / OpenMP pools (each
 * server gets one core), no Python bytecode writes into the tree.
 */
export const SERVER_ENV = {
  OMP_NUM_THREADS: '1',
  OPENBLAS_NUM_THREADS: '1',
  MKL_NUM_THREADS: '1',
  POLARS_MAX_THREADS: '1',
  PYTHONDONTWRITEBYTECODE: '1',
  PYTHONUNBUFFERED: '1',
  NODE_ENV: 'production',
};
