/**
 * Errors of in-process calls (`endpoint.predict()`, `predictStream()`,
 * jobs), and the one map from the core's error kinds to the status an HTTP
 * client would have had for the same request (what `PredictionError.status`
 * says). The binding reports kinds, never HTTP statuses.
 */
import type { ErrorReport } from '../binding';

/** The HTTP status of each kind the core reports (as `/predictions/...` answers). */
const STATUS: Record<string, number> = {
  malformed: 400,
  invalid_argument: 422,
  not_found: 404,
  unsupported: 405,
  too_large: 413,
  unsupported_format: 415,
  resource_exhausted: 503,
  unavailable: 503,
  deadline_exceeded: 504,
  cancelled: 499,
  internal: 500,
  conflict: 409,
};

/** The status an HTTP request would have had for an error of `kind`. */
export function statusOf(kind: string): number {
  return STATUS[kind] ?? 500;
}

/** An in-process prediction that failed, with the HTTP status an HTTP request would have had. */
export class PredictionError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: unknown[] = [],
    /** The core's kind of error: `invalid_argument`, `not_found`, `unavailable`, … */
    readonly kind: string = 'internal',
    /** When waiting helps (a full queue, a model that failed to load): how long, in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'PredictionError';
  }

  /** The error the binding reported. */
  static of(report: ErrorReport): PredictionError {
    const details = report.details.map((d) => {
      const detail: Record<string, unknown> = {};
      if (d.record !== undefined && d.record !== null) detail.record = d.record;
      if (d.field !== undefined && d.field !== null) detail.field = d.field;
      detail.message = d.message;
      return detail;
    });
    return new PredictionError(statusOf(report.kind), report.message, details, report.kind, report.retryAfterMs ?? undefined);
  }
}
