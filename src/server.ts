/** The server: endpoints in, HTTP out. */
import { resolve } from 'node:path';
import { NativeServer, type EndpointSpec, type LoadOutput } from '../binding';
import type { Endpoint } from './endpoint';
import { pythonExecutable, RUNTIMES_PATH, type PythonOptions } from './python';
import { nativeRuntime, type NativeRuntime } from './runtimes';
import { registerRepository, type RepositoryModel } from './repository';
import { RemoteRepository, type StoreAccess } from './repository/remote';
import { RepositoryWatcher, type WatchOptions } from './repository/watch';
import { isStoreUrl } from './location';
import { deploy as deployModel, persist, type Change, type DeploySpec } from './repository/manage';
import type { ModelLoader } from './cache';
import type { Fields } from './schema';
import type { TelemetryOptions } from './telemetry';

export interface ServerOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one, see `server.port`). */
  port?: number;
  /**
   * gRPC port for the Open Inference Protocol (KServe V2): off unless set;
   * 0 picks a free one, see `server.grpcPort`.
   */
  grpcPort?: number;
  /** HTTP worker threads (default: one per CPU). */
  workers?: number;
  /** Largest request body in bytes (default 8 MiB); larger bodies get 413. */
  bodyLimit?: number;
  /** How long `stop()` waits for open connections (default 10 000 ms). */
  shutdownTimeoutMs?: number;
  /** The Python environment for Python handlers (the interpreter starts only if one is registered). */
  python?: PythonOptions;
  /** Metrics: Prometheus at `GET /metrics` (on by default; `false` records nothing), and optional AWS EMF logs. */
  metrics?: boolean | MetricsOptions;
  /** Structured logs on stderr (JSON lines by default). `REDESMYN_LOG` overrides the level. */
  log?: LogOptions;
  /**
   * Asynchronous jobs: `POST <path>/jobs`, `POST /v2/models/{m}/jobs`,
   * `GET /jobs/{id}`, `DELETE /jobs/{id}` and `endpoint.schedule()`. Off unless
   * set; jobs are kept in a SQLite file in `dir` and survive a restart.
   */
  jobs?: JobsOptions;
  /**
   * The management API (deploy, list, version, split traffic, remove models
   * while serving; README "Managing models"): off unless set.
   */
  management?: ManagementOptions;
  /** The header whose value keeps a client on one version under traffic weights (default `x-routing-key`). */
  routingHeader?: string;
  /**
   * OpenTelemetry traces over OTLP (docs/observability.md): off unless set
   * here or `OTEL_TRACES_EXPORTER=otlp` is in the environment; fields left
   * out fall back to the standard `OTEL_*` variables.
   */
  telemetry?: TelemetryOptions;
}

export interface ManagementOptions {
  /** Every call needs `Authorization: Bearer <token>` (at least 16 characters). */
  token: string;
  /** Its own interface (with `port`; default: `host`). */
  host?: string;
  /** Its own port (0 picks one, see `server.managementPort`); by default the inference port. */
  port?: number;
  /**
   * The folder a deploy's `path` may name files in. Default: the repository
   * `registerRepository` serves (whose settings files then record each change).
   */
  root?: string;
}

export interface JobsOptions {
  /** Data directory for the SQLite file (created when missing). */
  dir: string;
  /** How long a finished job and its result are kept (default 86 400 s). */
  retentionSeconds?: number;
  /** Jobs that may be queued at once; more get 503 (default 100 000). */
  maxQueued?: number;
  /** Largest result kept, in bytes of JSON; a larger one fails its job (default 16 MiB). */
  maxResultBytes?: number;
  /** Jobs handed to the model queues at once (default 64): the most job requests an online request can find ahead of it. */
  maxRunning?: number;
  /** When set, every job route needs `Authorization: Bearer <token>`. Without it, a job's id is its only key. */
  token?: string;
}

export interface MetricsOptions {
  /** Serve and record metrics (default true). */
  enabled?: boolean;
  /** AWS CloudWatch Embedded Metric Format documents, one per endpoint per interval. */
  emf?: EmfOptions;
}

export interface EmfOptions {
  namespace: string;
  /** Extra dimensions added to `Endpoint`, e.g. `{ Service: 'iris' }`. */
  dimensions?: Record<string, string>;
  /** `'stdout'` (default) or a file to append JSON lines to. */
  output?: 'stdout' | string;
  /** Flush interval (default 60 000 ms); also flushed at `stop()`. */
  intervalMs?: number;
}

export interface LogOptions {
  /** `error`, `warn` (default), `info` (one line per request), `debug`, `trace`, or a filter like `warn,redesmyn::request=info`. */
  level?: string;
  /** `json` (default) or `text`. */
  format?: 'json' | 'text';
}

export class Server {
  readonly #native: NativeServer;
  readonly #endpoints: Endpoint<Fields, string, unknown>[] = [];
  /** Models made by TypeScript loaders, by id; the core releases ids it no longer holds. */
  readonly #models = new Map<number, unknown>();
  #nextModelId = 1;
  #keepAlive: NodeJS.Timeout | undefined;
  readonly #python: PythonOptions;
  readonly #watchers: RepositoryWatcher[] = [];
  /** The repository being served, where management changes are persisted. */
  #repository: string | undefined;
  #managed = false;

  constructor(options: ServerOptions = {}) {
    this.#python = options.python ?? {};
    this.#native = new NativeServer({
      host: options.host,
      port: options.port,
      grpcPort: options.grpcPort,
      workers: options.workers,
      bodyLimit: options.bodyLimit,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      metrics: typeof options.metrics === 'boolean' ? options.metrics : options.metrics?.enabled,
      emf: typeof options.metrics === 'object' && options.metrics.emf
        ? {
            namespace: options.metrics.emf.namespace,
            dimensions: options.metrics.emf.dimensions,
            output: options.metrics.emf.output === undefined || options.metrics.emf.output === 'stdout' ? 'stdout' : resolve(options.metrics.emf.output),
            intervalMs: options.metrics.emf.intervalMs,
          }
        : undefined,
      log: options.log,
      jobs: options.jobs && { ...options.jobs, dir: resolve(options.jobs.dir) },
      management: options.management && { ...options.management, root: options.management.root === undefined ? undefined : resolve(options.management.root) },
      routingHeader: options.routingHeader,
      telemetry: options.telemetry,
      python: {
        venv: options.python?.venv === undefined ? undefined : resolve(options.python.venv),
        executable: options.python?.executable === undefined ? undefined : resolve(options.python.executable),
        path: [...(options.python?.path?.map((p) => resolve(p)) ?? []), RUNTIMES_PATH],
      },
    });
    this.#managed = options.management !== undefined;
    if (options.management) {
      this.#native.setDeployer(
        (spec) => this.#answer(() => deployModel(this.#manageHost(), JSON.parse(spec) as DeploySpec)),
        (change) =>
          this.#answer(async () => {
            if (this.#repository !== undefined) persist(this.#repository, JSON.parse(change) as Change);
          }),
      );
    }
  }

  /** Runs a management step for the core; never rejects. */
  async #answer(step: () => Promise<void>): Promise<{ error?: string }> {
    try {
      await step();
      return {};
    } catch (error) {
      return { error: error instanceof Error ? error.message : String(error) };
    }
  }

  #manageHost() {
    return {
      add: async (endpoint: Endpoint<Fields, string, unknown>) => {
        const ticket = this.#prepare(endpoint);
        await this.#native.models().addPrepared(ticket);
      },
      setTraffic: (name: string, weights: Record<string, number>) => this.setTraffic(name, weights),
      setDefault: (name: string, version: string) => this.#native.models().setDefault(name, version),
      pythonExecutable: () => pythonExecutable(this.#python),
    };
  }

  /**
   * Traffic weights between the versions of model `name`, e.g.
   * `{ '1': 0.9, '2': 0.1 }`: unversioned requests go to a version at
   * random by weight, or by the hash of the routing-key header when sent
   * (the same key, the same version, while the weights stand). `{}` clears
   * them. Before `serve()` they are checked at start; after, at once.
   */
  setTraffic(name: string, weights: Record<string, number>): this {
    this.#native.models().setTraffic(name, weights);
    return this;
  }

  /** Adds an endpoint. Call before `serve()`. */
  register<F extends Fields, P extends string, M>(endpoint: Endpoint<F, P, M>): this {
    this.#convert((spec, runtime) => this.#native.register(spec, runtime), endpoint);
    endpoint.bind({ caches: this.#native.caches(), jobs: this.#native.jobs(), client: this.#native.client() });
    this.#endpoints.push(endpoint as unknown as Endpoint<Fields, string, unknown>);
    return this;
  }

  /** Builds an endpoint's model for adding while serving; returns the core's ticket. */
  #prepare<F extends Fields, P extends string, M>(endpoint: Endpoint<F, P, M>): number {
    let ticket = 0;
    this.#convert((spec, runtime) => {
      ticket = this.#native.models().prepare(spec, runtime);
    }, endpoint);
    return ticket;
  }

  /** Converts an endpoint to the binding's spec and runtime and hands them to `to`. */
  #convert<F extends Fields, P extends string, M>(to: (spec: EndpointSpec, runtime: NativeRuntime) => void, endpoint: Endpoint<F, P, M>): void {
    const cache = endpoint.cacheConfig;
    const spec: EndpointSpec = {
      path: endpoint.path,
      name: endpoint.name,
      version: endpoint.version,
      outputs: endpoint.outputs,
      inputs: endpoint.inputs,
      fields: endpoint.schema.toSpec(),
      batch: endpoint.batch,
      cache: cache?.toSpec(),
      predictionCache: endpoint.predictionCacheConfig,
    };
    const runtime = nativeRuntime(endpoint.handler, {
      path: endpoint.path,
      stream: endpoint.stream,
      loader: cache?.options.loadModel,
      pythonWorkers: this.#python.workers,
      models: this.#models,
      nativeLoader: (load) => this.#nativeLoader(load as ModelLoader<unknown>),
    });
    to(spec, runtime);
  }

  /**
   * Serves a model repository: every subfolder of `dir` with a
   * `model-settings.json` (MLServer's layout) becomes an endpoint at
   * `/predictions/<name>` and a V2 model. Resolves with the index: each
   * model ready, or failed with the reason (a failed model never stops the
   * others). Call before `serve()`.
   *
   * With `watch`, the folder is polled while serving: when the version
   * policy selects a newer version folder, it is loaded and checked, added
   * beside the others, then the model's default version moves to it (the
   * old version answers until then, and keeps answering if the new one
   * fails); versions the policy no longer selects are then unloaded.
   *
   * With `models`, only the models of those names are read, checked and
   * registered (the index lists only them).
   *
   * `dir` may be a store URL (`s3://bucket/models`, `gs://…`, `az://…`):
   * the repository is copied into a local folder (`store.cacheDir`), each
   * new or changed file downloaded and verified before any appears, and
   * with `watch` the copy is brought up to date before each poll (see
   * docs/stores.md).
   */
  async registerRepository(
    dir: string,
    options: { watch?: boolean | WatchOptions; models?: readonly string[]; store?: StoreAccess; remote?: RemoteRepository } = {},
  ): Promise<RepositoryModel[]> {
    // A store URL: served from a local copy, synced before each watch poll.
    const remote = options.remote ?? (isStoreUrl(dir) ? await RemoteRepository.open(dir, options.store) : undefined);
    if (remote) dir = remote.dir;
    const python = () => pythonExecutable(this.#python);
    const { index, followed, traffic, defaults } = await registerRepository(
      { register: (endpoint) => this.register(endpoint), pythonExecutable: python },
      dir,
      { models: options.models },
    );
    for (const [name, version] of defaults) this.#native.models().setDefault(name, version);
    for (const [name, weights] of traffic) this.setTraffic(name, weights);
    if (this.#repository === undefined) {
      this.#repository = resolve(dir);
      if (this.#managed) this.#native.setManagementRoot(this.#repository);
    }
    if (options.watch) {
      const host = {
        ...this.#manageHost(),
        remove: (name: string, version: string) => this.#native.models().remove(name, version),
      };
      const watch = options.watch === true ? {} : options.watch;
      const watcher = new RepositoryWatcher(followed, index, host, remote ? { sync: () => remote.sync(), ...watch } : watch);
      this.#watchers.push(watcher);
    }
    return index;
  }

  /** A loader that keeps its models here and hands the core their ids. It never rejects. */
  #nativeLoader(load: ModelLoader<unknown>) {
    return async (path: string, params: Record<string, string>): Promise<LoadOutput> => {
      try {
        const model = await load(path, params);
        const id = this.#nextModelId++;
        this.#models.set(id, model);
        return { id };
      } catch (error) {
        return { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
      }
    };
  }

  /** Starts listening; resolves once the port is bound. */
  async serve(): Promise<void> {
    await this.#native.serve();
    for (const watcher of this.#watchers) watcher.start();
    // Like a listening socket, a serving server keeps Node running.
    this.#keepAlive = setInterval(() => {}, 1 << 30);
  }

  /**
   * Reports not ready at once (`/health/ready`, `/v2/health/ready`, the
   * models' V2 readiness, gRPC `ServerReady`) while still answering every
   * request: call it when a rollout's drain begins, so load balancers take
   * this replica out before {@link Server.stop}.
   */
  drain(): void {
    this.#native.drain();
  }

  /** Stops gracefully: every accepted request is answered, then Node may exit. */
  async stop(): Promise<void> {
    for (const watcher of this.#watchers) watcher.stop();
    try {
      await this.#native.stop();
    } finally {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  /** The bound port (after `serve()`). */
  get port(): number {
    const port = this.#native.port;
    if (port === null || port === undefined) throw new Error('the server is not serving yet');
    return port;
  }

  /** The management API's own port (after `serve()`), or undefined when it shares the inference port or is off. */
  get managementPort(): number | undefined {
    return this.#native.managementPort ?? undefined;
  }

  /** The bound gRPC port (after `serve()`), or undefined when gRPC is off. */
  get grpcPort(): number | undefined {
    return this.#native.grpcPort ?? undefined;
  }

  /** The endpoints registered so far. */
  get endpoints(): readonly Endpoint<Fields, string, unknown>[] {
    return this.#endpoints;
  }
}
