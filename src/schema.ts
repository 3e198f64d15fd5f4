/**
 * Record schemas: which fields a request carries, their JSON types, and the
 * column types a handler receives.
 */

/** Numeric element types. 64-bit integers arrive as BigInt64Array / BigUint64Array. */
export type NumericType = 'i8' | 'i16' | 'i32' | 'i64' | 'u8' | 'u16' | 'u32' | 'u64' | 'f32' | 'f64';

/** The typed array a numeric column arrives as. */
export interface TypedArrayOf {
  i8: Int8Array;
  i16: Int16Array;
  i32: Int32Array;
  i64: BigInt64Array;
  u8: Uint8Array;
  u16: Uint16Array;
  u32: Uint32Array;
  u64: BigUint64Array;
  f32: Float32Array;
  f64: Float64Array;
}

/** How a field is described to the native core. */
export interface FieldSpec {
  type: NumericType | 'bool' | 'str' | 'list' | 'array';
  item?: NumericType;
  size?: number;
  nullable: boolean;
}

/**
 * One field of a schema. `J` is its JSON value type in a request, `C` the
 * column type the handler sees, `N` whether it may be null or missing.
 */
export class Field<J, C, N extends boolean = false> {
  /** Phantom members carrying the types; never set at run time. */
  declare readonly _json: J;
  declare readonly _column: C;

  constructor(readonly spec: FieldSpec & { nullable: N }) {}

  /** The same field, allowing `null` or a missing key (stored as null). */
  nullable(): Field<J, C, true> {
    return new Field<J, C, true>({ ...this.spec, nullable: true });
  }
}

/** Any field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyField = Field<any, any, boolean>;
export type Fields = Record<string, AnyField>;

type NullableKeys<F extends Fields> = { [K in keyof F]: F[K] extends Field<unknown, unknown, true> ? K : never }[keyof F];
type RequiredKeys<F extends Fields> = Exclude<keyof F, NullableKeys<F>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** A record as a client sends it. */
export type RecordOf<F extends Fields> = Simplify<
  { [K in RequiredKeys<F>]: F[K]['_json'] } & { [K in NullableKeys<F>]?: F[K]['_json'] | null }
>;

/** The columns of a batch, keyed by field name. */
export type ColumnsOf<F extends Fields> = {
  [K in keyof F]: F[K] extends Field<unknown, infer C, true>
    ? C extends readonly (infer E)[]
      ? (E | null)[]
      : C
    : F[K]['_column'];
};

const numeric =
  <T extends NumericType>(type: T) =>
  (): Field<T extends 'i64' | 'u64' ? number | bigint : number, TypedArrayOf[T]> =>
    new Field({ type, nullable: false });

/** An ordered set of named fields. Column order follows declaration order. */
export class Schema<F extends Fields = Fields> {
  readonly fields: F;

  constructor(fields: F) {
    if (Object.keys(fields).length === 0) throw new TypeError('a schema needs at least one field');
    for (const [name, field] of Object.entries(fields)) {
      if (!(field instanceof Field)) throw new TypeError(`field '${name}' must be built with Schema.<type>()`);
    }
    this.fields = fields;
  }

  static bool = (): Field<boolean, Uint8Array> => new Field({ type: 'bool', nullable: false });
  static str = (): Field<string, string[]> => new Field({ type: 'str', nullable: false });
  static i8 = numeric('i8');
  static i16 = numeric('i16');
  static i32 = numeric('i32');
  static i64 = numeric('i64');
  static u8 = numeric('u8');
  static u16 = numeric('u16');
  static u32 = numeric('u32');
  static u64 = numeric('u64');
  static f32 = numeric('f32');
  static f64 = numeric('f64');

  /** A variable-length list of numbers; each row arrives as a typed-array view. */
  static list<T extends NumericType>(item: T): Field<number[], TypedArrayOf[T][]> {
    return new Field({ type: 'list', item, nullable: false });
  }

  /** A fixed-size array of numbers (an embedding, a small tensor). */
  static array<T extends NumericType>(item: T, size: number): Field<number[], TypedArrayOf[T][]> {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`array size must be a positive integer, got ${size}`);
    return new Field({ type: 'array', item, size, nullable: false });
  }

  /** The field list for the native core. */
  toSpec(): ({ name: string } & FieldSpec)[] {
    return Object.entries(this.fields).map(([name, f]) => ({ name, ...f.spec }));
  }
}

// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace Schema {
  /** The record type of a schema: `Schema.Infer<typeof Iris>`. */
  type Infer<S extends Schema> = S extends Schema<infer F> ? RecordOf<F> : never;
  /** The column types a handler receives for a schema. */
  type Columns<S extends Schema> = S extends Schema<infer F> ? ColumnsOf<F> : never;
}
