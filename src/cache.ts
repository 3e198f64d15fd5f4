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
  /**
   * Where the artifacts are: `s3://bucket/prefix`, `gs://bucket/prefix`,
   * `az://container/prefix` (also `abfs://`, `https://ACCOUNT.blob.core.windows.net/container/prefix`)
   * or `http(s)://host/prefix` (read-only; listing, and so `prefetch`, needs WebDAV).
   */
  url: string;
  /** The artifact below the prefix, with `{param}` placeholders. */
  pathTemplate: string;
  /** The store's endpoint, for emulators and S3-compatible servers, e.g. `http://127.0.0.1:9000` (default: the cloud's own). */
  endpoint?: string;
  /** S3 only. */
  region?: string;
  /** S3 only: the access key (default: the `AWS_*` variables, then instance credentials). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Allow plain HTTP endpoints (default: true when `endpoint` or `url` is http://). */
  allowHttp?: boolean;
  /**
   * Further `object_store` options, by their names (`aws_virtual_hosted_style_request`,
   * `google_service_account`, `azure_storage_account_key`, `azure_storage_sas_key`, …).
   * Each cloud's standard variables (`AWS_*`, `GOOGLE_*` and `GOOGLE_APPLICATION_CREDENTIALS`,
   * `AZURE_*`) are read too; these options win over them. See docs/stores.md.
   */
  options?: Record<string, string>;
  /** Objects declared larger than this are refused before downloading (default: no limit). */
  maxBytes?: number;
  /** Where downloaded artifacts are kept (default: `<tmpdir>/redesmyn-artifacts`). */
  cacheDir?: string;
}

/** `object_store` options for a store URL from the common client settings. */
export function storeOptions(o: Omit<ObjectStoreClientOptions, 'pathTemplate' | 'cacheDir' | 'maxBytes'>): Record<string, string> {
  const options: Record<string, string> = { ...o.options };
  const set = (key: string, value: string | undefined) => {
    if (value !== undefined) options[key] ??= value;
  };
  const scheme = o.url.slice(0, o.url.indexOf(':'));
  if (scheme === 's3' || scheme === 's3a') {
    set('aws_endpoint', o.endpoint);
    set('aws_region', o.region ?? (o.endpoint ? 'us-east-1' : undefined));
    set('aws_access_key_id', o.accessKeyId);
    set('aws_secret_access_key', o.secretAccessKey);
    set('aws_session_token', o.sessionToken);
    // S3-compatible servers are usually addressed by path, not virtual host.
    if (o.endpoint) set('aws_virtual_hosted_style_request', 'false');
  } else if (scheme === 'gs') {
    set('google_base_url', o.endpoint);
  } else if (['az', 'abfs', 'abfss', 'adl', 'azure'].includes(scheme) || /^https:\/\/[^/]+\.(blob|dfs)\.core\.windows\.net/.test(o.url)) {
    set('azure_storage_endpoint', o.endpoint);
  }
  const allowHttp = o.allowHttp ?? ((o.endpoint ?? o.url).startsWith('http://') || undefined);
  if (allowHttp) set('allow_http', 'true');
  return options;
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
    return {
      kind: this.kind,
      pathTemplate: o.pathTemplate,
      url: o.url,
      options: storeOptions(o),
      maxBytes: o.maxBytes,
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
