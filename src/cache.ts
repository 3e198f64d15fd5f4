/**
 * Model caches: URL path parameters select a model variant; a client finds
 * its artifact through a path template; a loader turns the artifact into a
 * model the handler receives.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PythonLoader } from './python';
import { OnnxLoader } from './onnx';

/** Artifacts in a local directory, read in place. */
export class FsClient {
  readonly kind = 'fs';
  readonly basePath: string;
  readonly pathTemplate: string;

  /**
   * @param options.basePath the directory artifacts live under (relative paths are from the working directory)
   * @param options.pathTemplate the artifact below it, with `{param}` placeholders named like the endpoint's path parameters
   */
  constructor(options: { basePath: string; pathTemplate: string }) {
    this.basePath = resolve(options.basePath);
    this.pathTemplate = options.pathTemplate;
  }

  /** @internal */
  toSpec() {
    return { kind: this.kind, pathTemplate: this.pathTemplate, basePath: this.basePath };
  }
}

export interface ObjectStoreClientOptions {
  /** `s3://bucket/prefix` (S3 or any S3-compatible store), or `http(s)://host/prefix`. */
  url: string;
  /** The artifact below the prefix, with `{param}` placeholders. */
  pathTemplate: string;
  /** An S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (default: AWS). */
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Allow plain HTTP endpoints (default: true when `endpoint` is http://). */
  allowHttp?: boolean;
  /** Further `object_store` options, by their names (`aws_virtual_hosted_style_request`, …). Environment variables such as `AWS_ACCESS_KEY_ID` are not read: pass credentials here. */
  options?: Record<string, string>;
  /** Where downloaded artifacts are kept (default: `<tmpdir>/redesmyn-artifacts`). */
  cacheDir?: string;
}

/** Artifacts in object storage, downloaded atomically into a local directory before loading. */
export class ObjectStoreClient {
  readonly kind = 'object-store';
  readonly options: ObjectStoreClientOptions;

  constructor(options: ObjectStoreClientOptions) {
    if (!/^[a-z0-9+]+:\/\//.test(options.url)) throw new TypeError(`'${options.url}' is not an object store URL such as s3://bucket/prefix`);
    this.options = { ...options };
  }

  /** @internal */
  toSpec() {
    const o = this.options;
    const options: Record<string, string> = { ...o.options };
    const set = (key: string, value: string | undefined) => {
      if (value !== undefined) options[key] = value;
    };
    if (o.url.startsWith('s3://') || o.url.startsWith('s3a://')) {
      set('aws_endpoint', o.endpoint);
      set('aws_region', o.region ?? (o.endpoint ? 'us-east-1' : undefined));
      set('aws_access_key_id', o.accessKeyId);
      set('aws_secret_access_key', o.secretAccessKey);
      set('aws_session_token', o.sessionToken);
      // S3-compatible servers are usually addressed by path, not virtual host.
      if (o.endpoint) options.aws_virtual_hosted_style_request ??= 'false';
    }
    const allowHttp = o.allowHttp ?? o.endpoint?.startsWith('http://') ?? false;
    if (allowHttp) options.allow_http = 'true';
    return {
      kind: this.kind,
      pathTemplate: o.pathTemplate,
      url: o.url,
      options,
      cacheDir: resolve(o.cacheDir ?? join(tmpdir(), 'redesmyn-artifacts')),
    };
  }
}

/** A TypeScript loader: the artifact's local path and the path parameters in, a model out. */
export type ModelLoader<M> = (localPath: string, params: Record<string, string>) => M | Promise<M>;

export interface RefreshOptions {
  /** Check the artifacts every this many milliseconds. */
  intervalMs?: number;
  /** Or on a cron schedule, 5 fields (or 6 with seconds first), UTC. */
  cron?: string;
  /** Reload even when an artifact did not change (its mtime / ETag). */
  force?: boolean;
}

export interface CacheOptions<M> {
  client: FsClient | ObjectStoreClient;
  /** A TypeScript function, a Python one (`py.loader('joblib:load')`), or `onnx.loader()` for `.onnx` artifacts. */
  loadModel: ModelLoader<M> | PythonLoader | OnnxLoader;
  /** Models kept in memory; the least recently used is evicted (default 8). */
  maxSize?: number;
  /** Reload changed artifacts in the background; the old model serves until the new one is ready. */
  refresh?: RefreshOptions;
  /** Load every artifact the template finds before `/health/ready` says ready. */
  prefetch?: boolean;
  /** Patterns path-parameter values must match (a 422 otherwise), e.g. `{ run_id: /^\d+$/ }`. */
  params?: Record<string, RegExp>;
  /** First wait before a failed load is tried again; doubles per failure up to 30 s (default 1000). */
  retryBackoffMs?: number;
}

export class CacheConfig<M = unknown> {
  readonly options: CacheOptions<M>;

  constructor(options: CacheOptions<M>) {
    if (!(options.client instanceof FsClient) && !(options.client instanceof ObjectStoreClient)) {
      throw new TypeError('a cache needs a client: new FsClient(...) or new ObjectStoreClient(...)');
    }
    if (
      typeof options.loadModel !== 'function' &&
      !(options.loadModel instanceof PythonLoader) &&
      !(options.loadModel instanceof OnnxLoader)
    ) {
      throw new TypeError("a cache needs loadModel: a function, py.loader('module:function') or onnx.loader()");
    }
    if (options.refresh?.cron !== undefined && options.refresh?.intervalMs !== undefined) {
      throw new TypeError('refresh takes intervalMs or cron, not both');
    }
    this.options = { ...options };
  }

  /** @internal */
  toSpec() {
    const o = this.options;
    return {
      client: o.client.toSpec(),
      maxSize: o.maxSize,
      refreshIntervalMs: o.refresh?.intervalMs,
      refreshCron: o.refresh?.cron,
      refreshForce: o.refresh?.force,
      prefetch: o.prefetch,
      params: o.params && Object.fromEntries(Object.entries(o.params).map(([k, v]) => [k, v.source])),
      retryBackoffMs: o.retryBackoffMs,
    };
  }
}

/** What `endpoint.cache.stats()` reports (declared by the binding). */
export type { CacheStatsReport as CacheStats } from '../binding';
