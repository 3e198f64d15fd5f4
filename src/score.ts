/**
 * File scoring: `endpoint.score()` reads a file a chunk at a time, checks
 * each row with the endpoint's schema and sends the rows through the same
 * queue, batching, handler and model cache as requests; predictions are
 * written as they come back (crates/redesmyn/src/score does the work).
 */
import type { NativeScoreRun, ScoreProgressReport } from '../binding';

/** A file format by name; by default the file's extension decides. */
export type ScoreFormat = 'csv' | 'parquet' | 'ndjson' | 'arrow';

/** Options of {@link Endpoint.score}. */
export interface ScoreOptions<P extends string = string> {
  /**
   * The file to score: `.csv`, `.parquet`, `.ndjson`/`.jsonl` or `.arrow`/`.ipc`/`.feather`;
   * a path, or a store URL (`s3://`, `gs://`, `az://`, `http(s)://`), downloaded first.
   */
  input: string;
  /** Where the scored rows go (same formats): a path, or a store URL uploaded when the run succeeds (not `http(s)://`). */
  output: string;
  /** `object_store` options for store URLs, on top of the cloud's standard variables (see docs/stores.md). */
  storeOptions?: Record<string, string>;
  /** Rows per chunk, and so per handler call (default 10 000). */
  batchSize?: number;
  /** Input columns copied to the output before the prediction column(s) (default: all). */
  columns?: readonly string[];
  /** Where rejected rows go as CSV `row,reason` (default `<output>.rejects.csv`, written only if a row is rejected). */
  rejects?: string;
  /** Override the formats the extensions imply. */
  inputFormat?: ScoreFormat;
  outputFormat?: ScoreFormat;
  /** Values of the endpoint's path parameters: which model variant scores. */
  params?: Record<P, string>;
  /** Called as the run goes (about every `progressIntervalMs`) and once at the end. */
  onProgress?: (progress: ScoreProgress) => void;
  /** Default 250. */
  progressIntervalMs?: number;
}

/** Where a scoring run stands. */
export interface ScoreProgress {
  /** Rows dealt with so far: scored or rejected. Row numbers count from 1, the first record after any header. */
  rows: number;
  scored: number;
  rejected: number;
  /** Rows in the input, when its metadata says (Parquet). */
  totalRows?: number;
  rowsPerSecond: number;
  elapsedMs: number;
  /** Chunks whose handler call failed once and was tried again. */
  retried: number;
}

/** The end of a scoring run. */
export interface ScoreSummary extends ScoreProgress {
  output: string;
  /** The rejects file, when one was written. */
  rejects?: string;
}

function progressOf(p: ScoreProgressReport): ScoreProgress {
  const out: ScoreProgress = {
    rows: p.rows,
    scored: p.scored,
    rejected: p.rejected,
    rowsPerSecond: p.rowsPerSecond,
    elapsedMs: p.elapsedMs,
    retried: p.retried,
  };
  if (p.totalRows !== undefined && p.totalRows !== null) out.totalRows = p.totalRows;
  return out;
}

/** @internal Runs a prepared native run, polling its progress for `onProgress`. */
export async function runScore(run: NativeScoreRun, options: ScoreOptions): Promise<ScoreSummary> {
  const onProgress = options.onProgress;
  let last = -1;
  const tick = () => {
    const p = progressOf(run.progress());
    if (onProgress && p.rows !== last) {
      last = p.rows;
      onProgress(p);
    }
  };
  const timer = onProgress ? setInterval(tick, options.progressIntervalMs ?? 250) : undefined;
  try {
    const summary = await run.run();
    const out: ScoreSummary = { ...progressOf(summary.progress), output: summary.output };
    if (summary.rejects !== undefined && summary.rejects !== null) out.rejects = summary.rejects;
    if (onProgress) onProgress(progressOf(summary.progress));
    return out;
  } finally {
    if (timer) clearInterval(timer);
  }
}
