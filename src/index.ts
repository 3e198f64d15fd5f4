export { Schema, Field } from './schema';
export type { NumericType, TypedArrayOf, RecordOf, ColumnsOf, Fields } from './schema';
export { Endpoint } from './endpoint';
export type { Batch, BatchOptions, Context, EndpointOptions, Handler, PathParams } from './endpoint';
export { Server } from './server';
export type { ServerOptions } from './server';
export type { HandlerOutput, OutputColumn, TypedArray } from './output';
export { py, PythonHandler } from './python';
export type { PythonOptions } from './python';
