/**
 * Turns whatever a handler returned into the column form the native core
 * reads. That form (`HandlerOutput`, `OutputColumn`, `ColumnKind`) is
 * declared once, in crates/redesmyn-node/src/output.rs, and typed here
 * through the generated binding.d.ts.
 */
import {
  ColumnKind,
  type HandlerOutput as NativeOutput,
  type ColumnOutput as NativeColumn,
  type StepOutput,
} from '../binding';

export type { NativeOutput, NativeColumn };

export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/** A column of predictions: a typed array or an array of JSON-able values. */
export type OutputColumn = TypedArray | readonly unknown[];

/**
 * What a handler may return: one prediction per row, as a typed array or an
 * array, or an object of such columns (several outputs per row).
 */
export type HandlerOutput = OutputColumn | { readonly [name: string]: OutputColumn };

export function isTypedArray(value: unknown): value is TypedArray {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

function nullMask(values: readonly unknown[]): Uint8Array | undefined {
  let mask: Uint8Array | undefined;
  for (let i = 0; i < values.length; i++) {
    if (values[i] === null || values[i] === undefined) {
      mask ??= new Uint8Array(values.length);
      mask[i] = 1;
    }
  }
  return mask;
}

function every(values: readonly unknown[], test: (v: unknown) => boolean): boolean {
  for (const v of values) if (v !== null && v !== undefined && !test(v)) return false;
  return true;
}

const isNumberLike = (v: unknown) => typeof v === 'number';

function columnOf(name: string, values: OutputColumn): NativeColumn {
  if (isTypedArray(values)) return { name, kind: ColumnKind.Num, data: values };
  if (!Array.isArray(values)) {
    throw new TypeError(`output '${name || 'predictions'}' must be a typed array or an array`);
  }
  const nulls = nullMask(values);
  if (every(values, isNumberLike)) {
    const data = Float64Array.from(values, (v) => (typeof v === 'number' ? v : 0));
    const int = data.every((v) => Number.isSafeInteger(v));
    return { name, kind: int ? ColumnKind.Int : ColumnKind.Num, data, nulls };
  }
  if (every(values, (v) => typeof v === 'string')) {
    return textColumn(name, ColumnKind.Str, values.map((v) => (typeof v === 'string' ? v : '')), nulls);
  }
  if (every(values, (v) => typeof v === 'boolean')) {
    return { name, kind: ColumnKind.Bool, data: Uint8Array.from(values, (v) => (v === true ? 1 : 0)), nulls };
  }
  if (every(values, (v) => typeof v === 'bigint')) {
    return { name, kind: ColumnKind.Num, data: BigInt64Array.from(values, (v) => (typeof v === 'bigint' ? v : 0n)), nulls };
  }
  if (every(values, (v) => isTypedArray(v) || (Array.isArray(v) && every(v, isNumberLike)))) {
    return listColumn(name, values as readonly (ArrayLike<number> | null)[], nulls);
  }
  // Anything else (objects, mixed values) travels as JSON text.
  return textColumn(name, ColumnKind.Json, values.map((v) => (v === undefined ? '' : JSON.stringify(v))), nulls);
}

/**
 * Texts as one UTF-8 buffer and n + 1 byte offsets: two values cross to the
 * core instead of one per row (a batch of tokens per stream step costs one
 * conversion, not 64). Null rows are empty texts under the null mask.
 */
function textColumn(name: string, kind: ColumnKind, texts: string[], nulls?: Uint8Array): NativeColumn {
  const joined = texts.join('');
  const data = Buffer.from(joined, 'utf8');
  const offsets = new Uint32Array(texts.length + 1);
  // As many bytes as UTF-16 units means every character is ASCII: a text's bytes are its length.
  const ascii = data.length === joined.length;
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    offsets[i] = at;
    at += ascii ? texts[i].length : Buffer.byteLength(texts[i], 'utf8');
  }
  offsets[texts.length] = at;
  return { name, kind, data, offsets, nulls };
}

function listColumn(name: string, rows: readonly (ArrayLike<number> | null)[], nulls?: Uint8Array): NativeColumn {
  const offsets = new Uint32Array(rows.length + 1);
  let total = 0;
  rows.forEach((row, i) => {
    total += row ? row.length : 0;
    offsets[i + 1] = total;
  });
  const data = new Float64Array(total);
  let int = true;
  rows.forEach((row, i) => {
    if (!row) return;
    data.set(row as ArrayLike<number>, offsets[i]);
  });
  for (const v of data) if (!Number.isSafeInteger(v)) int = false;
  const first = rows.find((r) => r !== null);
  // Keep float32 outputs float32; whole numbers print as integers.
  const typed = first instanceof Float32Array ? Float32Array.from(data) : int ? BigInt64Array.from(data, BigInt) : data;
  return { name, kind: ColumnKind.List, data: typed, offsets, nulls };
}

/** Normalises a handler's return value. */
export function toNative(output: HandlerOutput): NativeOutput {
  if (isTypedArray(output) || Array.isArray(output)) {
    return { single: true, columns: [columnOf('', output as OutputColumn)] };
  }
  if (output === null || typeof output !== 'object') {
    throw new TypeError(`a handler must return a typed array, an array or an object of columns, got ${output === null ? 'null' : typeof output}`);
  }
  const columns = Object.entries(output as Record<string, OutputColumn>).map(([name, values]) => columnOf(name, values));
  if (columns.length === 0) throw new TypeError('a handler returned an object with no columns');
  return { single: false, columns };
}

/**
 * One step of a streaming handler. Either an array with one entry per batch
 * row (`null` or `undefined` where a row has nothing this step), or an object
 * `{ chunks?, done? }` whose `done` lists the rows (batch indices) that end
 * after this step. A row that ended gets nothing more; when the generator
 * returns, every row still open ends.
 */
export type StreamStep =
  | OutputColumn
  | { readonly chunks?: OutputColumn | { readonly [name: string]: OutputColumn }; readonly done?: readonly number[] };

/** Normalises a streaming handler's step for a batch of `rows` rows. */
export function toNativeStep(step: StreamStep, rows: number): StepOutput {
  try {
    if (isTypedArray(step) || Array.isArray(step)) return toNative(step as OutputColumn);
    if (step === null || typeof step !== 'object') {
      throw new TypeError(`a streaming handler must yield an array (one value per row) or { chunks, done }, got ${step === null ? 'null' : typeof step}`);
    }
    const { chunks, done } = step as { chunks?: HandlerOutput; done?: readonly number[] };
    const ended = done === undefined ? undefined : Array.from(done, (row) => {
      if (!Number.isInteger(row) || row < 0 || row >= rows) throw new RangeError(`done: ${row} is not a row of this batch of ${rows}`);
      return row;
    });
    return { ...(chunks === undefined ? {} : toNative(chunks)), ended };
  } catch (error) {
    return toNativeError(error);
  }
}

/** The message and stack of anything thrown. */
export function toNativeError(error: unknown): NativeOutput {
  if (error instanceof Error) return { error: `${error.name}: ${error.message}`, stack: error.stack };
  return { error: String(error) };
}
