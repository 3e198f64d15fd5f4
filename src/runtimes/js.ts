/**
 * TypeScript handlers as the native core calls them. The core hands each
 * batch over with a ticket and waits for `answer(ticket, ...)`: a handler
 * that returns synchronously is answered in the same call, with no promise
 * made, and nothing here ever throws back into the core.
 */
import { answer as answerTicket, type BatchView, type StepOutput } from '../../binding';
import { toNative, toNativeError, toNativeStep, type HandlerOutput, type NativeOutput, type StreamStep } from '../output';
import { withTraceContext } from './trace-context';

/** A handler as this module calls it: the endpoint's own, with its types erased. */
type AnyHandler = (batch: unknown, context: { params: Record<string, string>; model: unknown; traceparent?: string }) => unknown;

/** The batch and context a handler sees, from what the core hands over. */
function argsOf(native: BatchView, models: ReadonlyMap<number, unknown>) {
  const batch = { length: native.length, columns: native.columns, nulls: native.nulls };
  const model = native.modelId === undefined || native.modelId === null ? undefined : models.get(native.modelId);
  return [batch, { params: native.params, model, traceparent: native.traceparent ?? undefined }] as const;
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** The function the core calls with each batch of a unary TypeScript handler. */
export function unaryHandler(handler: AnyHandler, models: ReadonlyMap<number, unknown>): (batch: BatchView, ticket: number) => void {
  const answer = (ticket: number, output: HandlerOutput): void => {
    let native: NativeOutput;
    try {
      native = toNative(output);
    } catch (error) {
      native = toNativeError(error);
    }
    answerTicket(ticket, native);
  };
  const fail = (ticket: number, error: unknown): void => answerTicket(ticket, toNativeError(error));
  return (native, ticket) => {
    let output: HandlerOutput | PromiseLike<HandlerOutput>;
    try {
      const args = argsOf(native, models);
      output = withTraceContext(args[1].traceparent, () => handler(...args)) as HandlerOutput | PromiseLike<HandlerOutput>;
    } catch (error) {
      fail(ticket, error);
      return;
    }
    if (isPromiseLike(output)) {
      output.then(
        (value) => answer(ticket, value),
        (error: unknown) => fail(ticket, error),
      );
    } else {
      answer(ticket, output);
    }
  };
}

/**
 * The functions the core calls for a streaming handler: `open` starts a
 * generator for a batch and keeps it by id, `pull` takes its next steps
 * or, with `close`, ends it (running its `finally`). Neither rejects.
 */
export function streamHandler(
  handler: AnyHandler,
  models: ReadonlyMap<number, unknown>,
): { open: (batch: BatchView, ticket: number) => void; pull: (id: number, close: boolean, ticket: number, max: number) => void } {
  type Next = IteratorResult<StreamStep> | { thrown: unknown };
  interface Open {
    iterator: AsyncIterator<StreamStep> | Iterator<StreamStep>;
    rows: number;
    /** A step asked for by an earlier pull that was not ready in time. */
    pending?: Promise<Next>;
  }
  const open = new Map<number, Open>();
  let nextId = 1;
  const NOT_READY = Symbol('not ready');
  const next = (entry: Open): Promise<Next> =>
    Promise.resolve()
      .then(() => entry.iterator.next())
      .then(
        (result) => result,
        (thrown: unknown) => ({ thrown }),
      );
  /**
   * The steps the generator has ready: waits for the first, then takes
   * those it yields before this turn of the event loop ends (no I/O or
   * timer in between), up to `max`. The last may be the end or an error.
   */
  const steps = async (id: number, entry: Open, max: number): Promise<StepOutput[]> => {
    const out: StepOutput[] = [];
    const turnEnds = new Promise<typeof NOT_READY>((resolve) => setImmediate(resolve, NOT_READY));
    let step: Promise<Next> = entry.pending ?? next(entry);
    entry.pending = undefined;
    for (let first = true; ; first = false) {
      const result = first ? await step : await Promise.race([step, turnEnds]);
      if (result === NOT_READY) {
        entry.pending = step;
        break;
      }
      if ('thrown' in result) {
        open.delete(id);
        out.push(toNativeError(result.thrown));
        break;
      }
      if (result.done) {
        open.delete(id);
        out.push({ finished: true });
        break;
      }
      try {
        out.push(toNativeStep(result.value, entry.rows));
      } catch (error) {
        open.delete(id);
        out.push(toNativeError(error));
        break;
      }
      if (out.length >= max) break;
      step = next(entry);
    }
    return out;
  };
  return {
    open: (native, ticket) => {
      try {
        const steps = handler(...argsOf(native, models)) as AsyncIterable<StreamStep> | Iterable<StreamStep>;
        const iterator =
          steps && typeof (steps as AsyncIterable<StreamStep>)[Symbol.asyncIterator] === 'function'
            ? (steps as AsyncIterable<StreamStep>)[Symbol.asyncIterator]()
            : steps && typeof (steps as Iterable<StreamStep>)[Symbol.iterator] === 'function'
              ? (steps as Iterable<StreamStep>)[Symbol.iterator]()
              : undefined;
        if (!iterator) {
          answerTicket(ticket, { error: 'a streaming handler must return an async iterable (use an async function*)' });
          return;
        }
        const id = nextId++;
        open.set(id, { iterator, rows: native.length });
        answerTicket(ticket, { id });
      } catch (error) {
        answerTicket(ticket, toNativeError(error));
      }
    },
    pull: (id, close, ticket, max) => {
      const entry = open.get(id);
      if (!entry) {
        answerTicket(ticket, [{ finished: true }]);
        return;
      }
      if (close) {
        open.delete(id);
        // A step still running finishes first; then its cleanup runs. A failing cleanup is dropped: the rows are gone anyway.
        void Promise.resolve(entry.pending)
          .then(() => entry.iterator.return?.())
          .then(
            () => answerTicket(ticket, [{ finished: true }]),
            () => answerTicket(ticket, [{ finished: true }]),
          );
        return;
      }
      steps(id, entry, Math.max(1, max)).then(
        (out) => answerTicket(ticket, out),
        (error: unknown) => answerTicket(ticket, [toNativeError(error)]),
      );
    },
  };
}
