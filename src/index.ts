import './native'; // first: a clear error when no prebuilt binary fits this machine
export { Schema, Field } from './schema';
export type { NumericType, TypedArrayOf, RecordOf, ColumnsOf, Fields } from './schema';
export { Endpoint, PredictionError } from './endpoint';
export type {
  Batch,
  BatchOptions,
  Context,
  EndpointCache,
  EndpointOptions,
  EndpointPredictionCache,
  Handler,
  JobState,
  JobStatus,
  OutputTensor,
  PathParams,
  Prediction,
  PredictionCacheOptions,
  PredictionCacheStats,
  StreamEvent,
  StreamHandler,
} from './endpoint';
export type { ScoreFormat, ScoreOptions, ScoreProgress, ScoreSummary } from './score';
export { Pipeline } from './pipeline';
export type { Combine, EnsembleStep, ModelStep, PipelineOptions, PipelineStep } from './pipeline';
export { Server } from './server';
export type { EmfOptions, JobsOptions, LogOptions, ManagementOptions, MetricsOptions, ServerOptions } from './server';
export type { TelemetryOptions } from './telemetry';
export type { HandlerOutput, OutputColumn, StreamStep, TypedArray } from './output';
export { py, PythonHandler, PythonLoader } from './python';
export type { PythonHandlerOptions, PythonWorkers } from './python';
export { onnx, OnnxHandler, OnnxLoader } from './onnx';
export type { OnnxOptions } from './onnx';
export { CacheConfig, FsClient, ObjectStoreClient } from './cache';
export type { CacheOptions, CacheStats, ModelLoader, ObjectStoreClientOptions, RefreshOptions } from './cache';
export type { PythonOptions } from './python';
export { SettingsError, readServerSettings, readModelSettings, MLSERVER_RUNTIMES, RUNTIMES } from './repository';
export type { RepositoryModel, ServerSettings, ModelSettings, TensorSettings, PredictionCacheSettings } from './repository';
